"""``tq.fit``: the one front door to fitting a cohort.

``tq.fit(model, cohort, population=PopulationModel(...), method=NUTS(...), seed=0)``: the
population model says *what* is fitted, the method object *how* (see
:mod:`twin_uq.inference.methods`). The keyword arguments of earlier releases (``chains=``,
``covariate_effects=``, ``backend=``, ``cluster=`` ...) still work: they build the same
objects, so a fit gives the same draws either way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from twin_uq._config import require_x64
from twin_uq.data import Cohort, read_cohort
from twin_uq.inference.centering import default_centering
from twin_uq.inference.methods import (
    NUTS,
    SVI,
    FitMethod,
    FitOptions,
    FitSettings,
    FitSettingsError,
    Laplace,
    PyMC,
)
from twin_uq.inference.population import PopulationModel
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.load import load_model
from twin_uq.posterior.cohort import CohortPosterior

__all__ = ["FitSettings", "fit", "method_from_options"]

#: String shortcuts of the one-machine methods (the command line's ``--method``).
METHODS = ("nuts", "svi", "laplace")

# The method keywords of the flat signature.
_METHOD_KEYS = (
    "chains", "warmup", "draws", "target_accept", "max_tree_depth", "dense_mass", "svi_steps",
    "learning_rate", "guide", "chain_method", "backend", "sampler", "cluster",
)  # fmt: skip


def method_from_options(method: str = "nuts", **options: Any) -> FitMethod:
    """The method object for a string shortcut and the flat keyword options.

    ``method`` is ``"nuts"``, ``"svi"`` or ``"laplace"``; ``backend="pymc"`` (with
    ``sampler=``) gives :class:`PyMC`; ``cluster=`` gives
    :class:`twin_uq.distributed.TwoStage` with this method for stage 1. Options that the
    chosen method does not use are refused, naming them.
    """
    opts = dict(options)
    backend = opts.pop("backend", "numpyro")
    sampler = opts.pop("sampler", None)
    cluster = opts.pop("cluster", None)
    if method not in METHODS:
        raise FitSettingsError(f"Unknown method {method!r}; choose one of {METHODS}.")
    if backend not in ("numpyro", "pymc"):
        raise FitSettingsError(f"Unknown backend {backend!r}; choose 'numpyro' or 'pymc'.")
    if backend == "pymc":
        if method != "nuts":
            raise FitSettingsError(f"backend='pymc' supports method='nuts' only, got {method!r}.")
        if cluster is not None:
            raise FitSettingsError("cluster= supports backend='numpyro' only.")
        built: FitMethod = _build(
            PyMC, opts, sampler=sampler, names=("chains", "warmup", "draws", "target_accept",
                                                "max_tree_depth"),
        )  # fmt: skip
    elif method == "nuts":
        names = ("chains", "warmup", "draws", "target_accept", "max_tree_depth", "dense_mass",
                 "chain_method")  # fmt: skip
        built = _build(NUTS, opts, names=names)
    elif method == "svi":
        built = _build(SVI, _renamed(opts), names=("steps", "learning_rate", "guide", "draws"))
    else:
        built = _build(Laplace, _renamed(opts), names=("steps", "learning_rate", "draws"))
    if cluster is not None:
        import twin_uq  # the distributed layer sits above inference: resolved at call time

        return twin_uq.TwoStage(cluster=cluster, population_method=built)
    return built


def _renamed(opts: dict[str, Any]) -> dict[str, Any]:
    out = dict(opts)
    if "svi_steps" in out:
        out["steps"] = out.pop("svi_steps")
    return out


# Flat-signature defaults that a method which does not use them may silently receive.
_IGNORED_DEFAULTS = {
    "chains": 4, "warmup": 1000, "target_accept": 0.9, "max_tree_depth": 10,
    "dense_mass": False, "steps": 3000, "learning_rate": 0.01, "guide": "lowrank",
    "chain_method": "auto",
}  # fmt: skip


def _build(cls, opts: dict[str, Any], *, names: tuple[str, ...], sampler: str | None = None):
    used = {k: v for k, v in opts.items() if k in names}
    unused = sorted(k for k, v in opts.items() if k not in names and _IGNORED_DEFAULTS.get(k) != v)
    if unused:
        raise FitSettingsError(
            f"method {cls.name!r} ({cls.__name__}) does not use {', '.join(unused)}; "
            f"its settings are {', '.join(names)}."
        )
    if sampler is not None:
        used["sampler"] = sampler
    return cls(**used)


def fit(
    model: str | Path | Model,
    cohort: Cohort | str | Path | pd.DataFrame,
    *,
    population: PopulationModel | None = None,
    method: FitMethod | str = "nuts",
    seed: int = 0,
    solver: SolverSettings | None = None,
    progress: bool | None = None,
    covariate_effects: Mapping[str, Sequence[str]] | None = None,
    correlation: str | None = None,
    centering: float | str | None = None,
    error: Mapping[str, str] | None = None,
    priors: Mapping[str, object] | None = None,
    prior_check: str | None = None,
    iov: Sequence[str] | None = None,
    shape_buckets: bool = False,
    **method_options: Any,
) -> CohortPosterior:
    """Fit a hierarchical Bayesian model to every patient of a cohort at once.

    Parameters
    ----------
    model
        A built-in model name, a path to a model file, or a :class:`Model`.
    cohort
        A :class:`Cohort`, or anything :func:`twin_uq.read_cohort` reads.
    population
        The population model (:class:`PopulationModel`): covariate effects, correlation,
        centring, residual error, priors. Default: the model's own defaults.
    method
        A fit method object: :class:`NUTS` (exact MCMC, default), :class:`SVI` or
        :class:`Laplace` (approximate, labelled so in every output), :class:`PyMC` (the
        second backend), :class:`twin_uq.distributed.TwoStage` (large cohorts on Dask);
        or the shortcut ``"nuts"``, ``"svi"``, ``"laplace"``.
    seed
        Seeds the method and the posterior predictive replicates.

    Rarely needed
    -------------
    solver
        Override the model's ODE solver settings.
    progress
        Show a progress bar (default: when running in a terminal).
    shape_buckets
        Pad the cohort up to shape buckets (patients and observations per patient, in
        steps of at most 25 %: :func:`twin_uq.data.arrays.bucket_size`) with ghost
        patients and masked observations, so that a later cohort of another size in the
        same buckets reuses every compiled program (in this process, and through the
        persistent compilation cache in a new one). The posterior is that of the real
        patients (ghosts are independent standard normals, cut before any output), but the
        draws differ from an unpadded fit's for the same seed, and each gradient costs up
        to 25 % more. Ignored by ``PyMC`` and ``TwoStage``.
    covariate_effects, correlation, centering, error, priors, prior_check, iov
        The population model as keywords (instead of ``population=``); with ``iov`` the
        default centring is 0 (non-centred; ``"auto"`` does not handle occasions).
    **method_options
        With a string ``method``: that method's settings as keywords (``chains``,
        ``warmup``, ``draws``, ``target_accept``, ``max_tree_depth``, ``dense_mass``,
        ``chain_method``; ``svi_steps``, ``learning_rate``, ``guide``), ``backend="pymc"``
        with ``sampler=``, or ``cluster=`` for a two-stage fit.

    Returns
    -------
    CohortPosterior
    """
    unknown = sorted(set(method_options) - set(_METHOD_KEYS))
    if unknown:
        raise TypeError(f"fit() got unexpected keyword argument(s): {', '.join(unknown)}.")
    if isinstance(method, FitMethod):
        if method_options:
            raise FitSettingsError(
                f"method={type(method).__name__}(...) carries its own settings; pass "
                f"{', '.join(sorted(method_options))} to it instead of to fit()."
            )
        chosen = method
    else:
        chosen = method_from_options(method, **method_options)
    require_x64("tq.fit")
    model = load_model(model)
    if not isinstance(cohort, Cohort):
        cohort = read_cohort(cohort)
    spec = _population(
        model, population, covariate_effects, correlation, centering, error, priors, prior_check,
        iov,
    )  # fmt: skip
    if progress is None:
        progress = os.isatty(2) if hasattr(os, "isatty") else False
    return chosen.fit_cohort(
        spec,
        cohort,
        FitOptions(solver=solver, seed=seed, progress=progress, shape_buckets=bool(shape_buckets)),
    )


def _population(
    model, population, covariate_effects, correlation, centering, error, priors, prior_check, iov
):
    flat = {
        "iov": None if iov is None else tuple(iov),
        "covariate_effects": covariate_effects,
        "correlation": correlation,
        "centering": centering,
        "error": error,
        "priors": priors,
        "prior_check": prior_check,
    }
    given = {k: v for k, v in flat.items() if v is not None}
    if population is not None:
        if given:
            raise FitSettingsError(
                f"population=PopulationModel(...) carries the population model; pass "
                f"{', '.join(sorted(given))} to it instead of to fit()."
            )
        if population.model is not model and population.model.name != model.name:
            raise FitSettingsError(
                f"population= is a population model of {population.model.name!r}, but the "
                f"model fitted is {model.name!r}."
            )
        return population
    return PopulationModel(
        model=model,
        covariate_effects=dict(covariate_effects or {}),
        correlation=correlation or "diagonal",
        # "auto" centring does not handle occasion effects: with iov the default is 0.
        centering=default_centering(iov or ()) if centering is None else centering,
        error=dict(error or {}),
        priors=dict(priors or {}),
        prior_check=prior_check or "adapt",
        iov=tuple(iov or ()),
    )
