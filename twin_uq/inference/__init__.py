"""Hierarchical Bayesian fitting of cohorts: population model, fit methods, backends.

Names are loaded on first use (PEP 562), so that importing a low-level module of this
package (the residual model, the population model) does not import the fit front door.
The result of a fit lives one layer up, in :mod:`twin_uq.posterior`.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import TYPE_CHECKING, Any

_LAZY = {
    "fit": "twin_uq.inference.fit",
    "FitSettings": "twin_uq.inference.fit",
    "PopulationModel": "twin_uq.inference.population",
}
# Names that moved to twin_uq.posterior: they still work, with a warning saying where.
_MOVED = {
    "CohortPosterior": "twin_uq.posterior",
    "Diagnostics": "twin_uq.posterior",
    "PosteriorLoadError": "twin_uq.posterior",
    "load_posterior": "twin_uq.posterior",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MOVED:
        warnings.warn(
            f"twin_uq.inference.{name} moved to {_MOVED[name]}.{name} (also tq.{name}); "
            "the old name will be removed in a later release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'twin_uq.inference' has no attribute {name!r}")


class _Package(types.ModuleType):
    # Importing the submodule ``fit`` makes Python set ``twin_uq.inference.fit = <module>``;
    # the public name is the function of that module, which must not be hidden.
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "fit" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from twin_uq.inference.fit import FitSettings as FitSettings, fit as fit
    from twin_uq.inference.population import PopulationModel as PopulationModel
