"""The base of every error twin_uq raises for its users' input or data."""

from __future__ import annotations

__all__ = ["TwinUQError"]


class TwinUQError(Exception):
    """An error about the user's input, data, model or files (not a bug in twin_uq).

    The command line prints these as one line; anything else prints with its traceback.
    """
