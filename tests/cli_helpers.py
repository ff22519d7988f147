"""Helpers shared by the command-line tests (tests/cli and the bad-input campaign)."""


def one_error_line(result) -> str:
    """The single stderr line of a failed command (exit status 1, one line, no traceback)."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]
