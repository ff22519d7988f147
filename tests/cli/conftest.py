"""Fixtures of the CLI tests: the shared oral fit saved once as a netCDF file."""

import pytest
from typer.testing import CliRunner

from twin_uq.cli import app


@pytest.fixture(scope="session")
def fit_file(oral_fit, tmp_path_factory):
    """The session's ``oral_fit`` written to a .nc file (no refit)."""
    return oral_fit.save(tmp_path_factory.mktemp("cli_fit") / "fit.nc")


@pytest.fixture
def cli():
    """Invoke the typer app in-process; returns a function ``cli(*args) -> Result``."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def one_error_line(result) -> str:
    """The single stderr line of a failed command (asserts there is exactly one)."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]
