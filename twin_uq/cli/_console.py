"""Rich consoles (summaries to stdout, spinners to stderr) and a spinner helper."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console

__all__ = ["err_console", "out_console", "spinner"]

out_console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@contextlib.contextmanager
def spinner(text: str, *, quiet: bool = False) -> Iterator[None]:
    """Show a spinner on stderr (in a terminal) while the block runs, then its duration."""
    start = time.perf_counter()
    if quiet or not err_console.is_terminal:
        yield
    else:
        with err_console.status(text, spinner="dots"):
            yield
    if not quiet:
        # The done line goes to stdout: stderr is kept for spinners and the one error line.
        out_console.print(f"[green]✓[/green] {text} ({time.perf_counter() - start:.1f} s)")
