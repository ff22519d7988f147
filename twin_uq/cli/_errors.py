"""Error reporting for every command: one line for bad input, a traceback for a bug.

A problem twin_uq found and described (any :class:`~twin_uq.TwinUQError`: an invalid
cohort table, an unknown model, a corrupt fit file, a bad option value) or one the
operating system reports about a file the user named (an ``OSError``: missing, not
readable, disk full) ends the command with exit status 1 and ONE line on stderr that says
what is wrong and where; ``--verbose`` adds the full message and the traceback.

Anything else (a ``TypeError``, ``KeyError``, ``ValueError``... escaping from twin_uq or a
model's code) is a bug, not bad input: its traceback is printed always, then one
``error:`` line that says so.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer

from twin_uq.errors import InputError, TwinUQError

__all__ = ["CLIError", "handle_errors", "one_line"]


class CLIError(InputError):
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


# Errors that mean "the input (or the machine) is wrong": one line without a traceback.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (TwinUQError, OSError)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: one ``error:`` line (after a traceback for a bug) and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = bool(kwargs.get("verbose", False))
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as err:
            bug = not isinstance(err, _INPUT_ERRORS)
            if verbose or bug:
                traceback.print_exc(file=sys.stderr)
            line = one_line(err)
            if bug:
                line = (
                    f"unexpected {type(err).__name__}: {line} (a bug in twin_uq or in the "
                    "model's code, not a problem with the input: the traceback above shows "
                    "where; please report it)"
                )
            sys.stderr.write(f"error: {line}\n")
            sys.stderr.flush()
            raise typer.Exit(1) from None

    return wrapper
