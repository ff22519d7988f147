"""Errors of the model layer: a model that cannot be loaded, or that fails its checks."""

from __future__ import annotations

from twin_uq.errors import InputError

__all__ = ["ModelCheckError", "ModelLoadError"]


class ModelLoadError(InputError):
    """A model name or file could not be turned into a usable :class:`~twin_uq.Model`."""


class ModelCheckError(ModelLoadError):
    """A model's declaration or functions fail :func:`twin_uq.testing.check_model`.

    A :class:`ModelLoadError`, so code that handles load failures (the command line, a
    user's ``except``) handles a model that loads but is wrong in the same way.
    """
