"""The exceptions twin_uq raises on purpose, all under one base :class:`TwinUQError`.

``except tq.TwinUQError`` catches every problem twin_uq found and described (bad input,
an unusable fit file, a fit that could not start, a setting that can no longer be
applied); anything else that escapes twin_uq is a bug to report, and the command line
prints its traceback. Each error also keeps the builtin base it had before this base
existed (``ValueError``, ``KeyError``, ``RuntimeError``), so code that catches those keeps
working.

This module imports nothing, so any layer may import it without a cycle.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DependencyError",
    "InputError",
    "TwinUQError",
    "UnavailableError",
]


class TwinUQError(Exception):
    """Base of every error twin_uq raises about the user's input, files or environment."""


class InputError(TwinUQError, ValueError):
    """A value the caller gave is invalid (an option, a time grid, a dose, a name).

    The message names the argument and the value, and says what is accepted.
    """


class UnavailableError(TwinUQError, RuntimeError):
    """The request is valid but cannot be carried out with this data or fit.

    For example every draw's ODE solve failed, or an optimiser could not find a finite
    starting point; the message names the patients or draws concerned.
    """


class DependencyError(TwinUQError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


class ConfigurationError(TwinUQError, RuntimeError):
    """A process-wide setting (see :func:`twin_uq.configure`) can no longer be applied."""
