"""One-line error reporting for every command.

Bad input (an invalid cohort table, an unknown model, a corrupt fit file, a bad option
value, a missing file) ends the command with exit status 1 and ONE line on stderr that
says what is wrong and where. ``--verbose`` adds the full message and the traceback.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer

__all__ = ["CLIError", "handle_errors", "one_line"]


class CLIError(ValueError):
    """A problem with the command's arguments, found by the CLI itself."""


def one_line(err: BaseException) -> str:
    """The error as one line: the first problem of a cohort table, prefixed by its file."""
    problems = getattr(err, "problems", None)
    if problems:
        source = getattr(err, "source", None)
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip().startswith("- ")]
        first = lines[0][2:] if lines else problems[0].describe()
        text = f"{source} {first}" if source else first
        if len(problems) > 1:
            text += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}; --verbose lists them)"
    else:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        if isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in text:
            text = f"{text}: {err.filename}"
        if not text:
            text = type(err).__name__
    return " ".join(text.split())


# Errors that mean "the input is wrong": reported as one line without a traceback.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, KeyError, TypeError)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: turn exceptions into one ``error:`` line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = bool(kwargs.get("verbose", False))
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as err:
            if verbose:
                traceback.print_exc(file=sys.stderr)
            line = one_line(err)
            if not isinstance(err, _INPUT_ERRORS):
                line = f"{type(err).__name__}: {line}"
                if not verbose:
                    line += " (run again with --verbose for the traceback)"
            sys.stderr.write(f"error: {line}\n")
            sys.stderr.flush()
            raise typer.Exit(1) from None

    return wrapper
