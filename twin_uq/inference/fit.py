"""``tq.fit``: the one front door to fitting a cohort."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import pandas as pd

from twin_uq.data import Cohort, read_cohort
from twin_uq.distributed.twostage import fit_from_fit_args
from twin_uq.inference.backends import BackendResult, run_laplace, run_nuts, run_svi
from twin_uq.inference.idata import build_idata
from twin_uq.inference.nuts_kernel import CHAIN_METHODS
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.posterior import CohortPosterior
from twin_uq.inference.postprocess import derive_draw_quantities
from twin_uq.inference.prepare import prepare_fit
from twin_uq.inference.solver_check import check_fit_draws
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.load import load_model

__all__ = ["FitSettings", "fit"]

METHODS = ("nuts", "svi", "laplace")


@dataclass(frozen=True)
class FitSettings:
    """Settings of a fit, stored with the result for reproducibility."""

    method: str = "nuts"
    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    seed: int = 0
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = False
    svi_steps: int = 3000
    learning_rate: float = 0.01
    guide: str = "lowrank"
    chain_method: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}; choose one of {METHODS}.")
        if self.chain_method not in CHAIN_METHODS:
            raise ValueError(
                f"chain_method must be one of {CHAIN_METHODS}, got {self.chain_method!r}."
            )
        for name in ("chains", "draws", "svi_steps", "max_tree_depth"):
            if not _whole(getattr(self, name), 1):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        if not _whole(self.warmup, 0):
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}.")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"target_accept must lie in (0, 1), got {self.target_accept}.")


def _whole(value: object, low: int) -> bool:
    """Whether ``value`` is a whole number >= ``low`` (``3`` and ``3.0``; not ``2.5``, ``True``)."""
    if isinstance(value, bool):
        return False
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return number.is_integer() and number >= low


def fit(
    model: str | Path | Model,
    cohort: Cohort | str | Path | pd.DataFrame,
    *,
    method: str = "nuts",
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    covariate_effects: Mapping[str, Sequence[str]] | None = None,
    correlation: str = "diagonal",
    centering: float | str = "auto",
    error: Mapping[str, str] | None = None,
    priors: Mapping[str, object] | None = None,
    solver: SolverSettings | None = None,
    target_accept: float = 0.9,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    svi_steps: int = 3000,
    learning_rate: float = 0.01,
    guide: str = "lowrank",
    chain_method: str = "auto",
    progress: bool | None = None,
    backend: str = "numpyro",
    sampler: str = "pymc",
    cluster: object = None,
) -> CohortPosterior:
    """Fit a hierarchical Bayesian model to every patient of a cohort at once.

    Parameters
    ----------
    model
        A built-in model name, a path to a model file, or a :class:`Model`.
    cohort
        A :class:`Cohort`, or anything :func:`twin_uq.read_cohort` reads.
    method
        ``"nuts"`` (exact MCMC, default), ``"svi"`` (variational, approximate) or
        ``"laplace"`` (MAP + Hessian, approximate). Approximate methods are labelled so in
        every output.
    chains, warmup, draws, seed
        MCMC settings; chains run in parallel on CPU cores. For SVI/Laplace, ``draws`` is
        the number of draws from the approximation (one "chain").
    covariate_effects, correlation, centering, error, priors
        The population model, see :class:`PopulationModel`.

    Rarely needed
    -------------
    solver
        Override the model's ODE solver settings.
    target_accept, max_tree_depth, dense_mass
        NUTS tuning.
    svi_steps, learning_rate, guide
        Optimisation settings of SVI/Laplace; ``guide`` is ``"lowrank"`` or ``"mvn"``.
    chain_method
        How NUTS chains share the hardware: ``"parallel"`` (one chain per device, the CPU
        default), ``"vectorized"`` (all chains batched on one device, the default on a
        single GPU) or ``"auto"``.
    progress
        Show a progress bar (default: when running in a terminal).
    backend, sampler
        ``backend="pymc"`` compiles the same population model to PyMC and samples it with
        ``sampler`` = ``"pymc"``, ``"nutpie"``, ``"numpyro"`` or ``"blackjax"`` (NUTS only;
        see :mod:`twin_uq.inference.pymc_backend`).

    Returns
    -------
    CohortPosterior
    """
    if cluster is not None:  # two-stage fit on Dask workers (twin_uq.distributed)
        return fit_from_fit_args(locals())
    settings = FitSettings(
        method=method,
        chains=chains,
        warmup=warmup,
        draws=draws,
        seed=seed,
        target_accept=target_accept,
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
        svi_steps=svi_steps,
        learning_rate=learning_rate,
        guide=guide,
        chain_method=chain_method,
    )
    model = load_model(model)
    if not isinstance(cohort, Cohort):
        cohort = read_cohort(cohort)
    spec = PopulationModel(
        model=model,
        covariate_effects=dict(covariate_effects or {}),
        correlation=correlation,
        centering=centering,
        error=dict(error or {}),
        priors=dict(priors or {}),
    )
    if progress is None:
        progress = os.isatty(2) if hasattr(os, "isatty") else False
    prepared = prepare_fit(spec, cohort, solver)
    args = (prepared.data, prepared.priors)
    init = prepared.init_values()
    key = jax.random.key(seed)
    k_fit, k_post = jax.random.split(key)
    result: BackendResult
    if backend not in ("numpyro", "pymc"):
        raise ValueError(f"Unknown backend {backend!r}; choose 'numpyro' or 'pymc'.")
    if backend == "pymc":
        if method != "nuts":
            raise ValueError(f"backend='pymc' supports method='nuts' only, got {method!r}.")
        from twin_uq.inference.pymc_backend import run_pymc

        result = run_pymc(
            prepared, sampler=sampler, chains=chains, warmup=warmup, draws=draws, seed=seed,
            target_accept=target_accept, max_tree_depth=max_tree_depth, progress=progress,
        )  # fmt: skip
    elif method == "nuts":
        result = run_nuts(
            prepared.structure, prepared.data, prepared.priors, init, key=k_fit, chains=chains,
            warmup=warmup, draws=draws, target_accept=target_accept,
            max_tree_depth=max_tree_depth, dense_mass=dense_mass, chain_method=chain_method,
            mass=prepared.posterior_variance_guess(), progress=progress,
        )  # fmt: skip
    elif method == "svi":
        with _explained_invalid_start(prepared, init, method):
            result = run_svi(
                prepared.structure,
                args,
                init,
                key=k_fit,
                draws=draws,
                steps=svi_steps,
                learning_rate=learning_rate,
                guide=guide,
                progress=progress,
            )
    else:
        with _explained_invalid_start(prepared, init, method):
            result = run_laplace(
                prepared.structure,
                args,
                init,
                key=k_fit,
                draws=draws,
                steps=svi_steps,
                learning_rate=learning_rate,
                progress=progress,
            )
    t0 = time.perf_counter()
    derived = derive_draw_quantities(prepared.structure, result.samples, prepared.data, k_post)
    result.timings["postprocess"] = time.perf_counter() - t0
    check = check_fit_draws(prepared, result.samples, derived)
    idata = build_idata(prepared, result, derived, settings_json=json.dumps(asdict(settings)))
    if check is not None:
        idata.attrs["fixed_step_check"] = json.dumps(check)
    return CohortPosterior(idata=idata, model=model, cohort=cohort, prepared=prepared)


@contextlib.contextmanager
def _explained_invalid_start(prepared, init: Mapping[str, object], method: str):
    """Turn NumPyro's bare "Cannot find valid initial parameters" into a diagnosis.

    The optimisers start every patient at the population median; when the log density is
    not finite there, the patients whose solve fails or whose likelihood is not finite at
    that point are named (computed only on failure, so a good fit pays nothing).
    """
    try:
        yield
    except RuntimeError as err:
        if "Cannot find valid initial parameters" not in str(err):
            raise
        import numpy as np

        from twin_uq.inference.likelihood import cohort_loglik
        from twin_uq.inference.postprocess import residual_from_draw

        data, structure = prepared.data, prepared.structure
        theta = np.exp(np.asarray(data.allometric) + np.asarray(init["mu"]))
        residual = residual_from_draw(structure, dict(init), data.error_code.shape[0])
        ll, ok = cohort_loglik(structure.model, structure.settings, theta, data, residual)
        bad_mask = ~np.asarray(ok) | ~np.isfinite(np.asarray(ll).sum(axis=1))
        ids = [pid for pid, b in zip(prepared.cohort.ids, bad_mask, strict=True) if b]
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        who = (
            f"patients whose model solve fails or whose likelihood is not finite there: {shown} "
            f"(of {len(bad_mask)})"
            if ids
            else "every patient's likelihood is finite there, so a prior or residual term is not"
        )
        raise RuntimeError(
            f"method={method!r} could not start: the log density is not finite at the starting "
            f"point (every patient at the population median of the priors); {who}. Check the "
            "model's equations for NaN/inf (simulate one patient with tq.simulate) and the "
            "priors' medians."
        ) from err
