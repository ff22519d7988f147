"""Two-stage fitting of large cohorts on Dask.

Stage 1 fits the hierarchical model to a random subsample of patients (or takes a given
population posterior). Stage 2 computes every patient's posterior *conditional on* the
stage-1 population posterior — the mixture-prior NUTS of :mod:`twin_uq.twin.update` —
which is embarrassingly parallel: batches of patients run on Dask workers, one compiled
sampler per worker process. The pieces are gathered into one
:class:`~twin_uq.inference.CohortPosterior` with the layout of a single-machine fit.

What the result is (and is not)
-------------------------------
* Each patient's ``theta`` draws are exact draws of ``p(theta_i | y_i, stage-1 posterior)``.
  Patients outside the subsample do not inform the population parameters; patients inside
  it count their data twice (prior and likelihood). Both effects shrink as the subsample
  grows; the result is labelled ``approximate`` and ``method="two-stage"``.
* Population variables (``mu``, ``omega``, ``sigma_*`` ...) at draw ``d`` are stage-1 draws
  (evenly thinned to the stage-2 draw count): their marginals are the stage-1 posterior,
  but a patient's ``theta`` at draw ``d`` is paired with the population draw
  ``two_stage.pop_draw[d, patient]``, not with ``mu[d]``. Joint (population, patient)
  statements must use that index.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.data import Cohort, read_cohort
from twin_uq.distributed.cluster import gather_all, get_client, worker_task
from twin_uq.errors import InputError, TwinUQError
from twin_uq.model.base import Model
from twin_uq.model.load import load_model

__all__ = ["IncompleteResultError", "PopulationDraws", "fit_two_stage", "population_draws"]

log = logging.getLogger(__name__)


class IncompleteResultError(TwinUQError, RuntimeError):
    """Some patients are missing from (or duplicated in) a distributed result."""

    def __init__(self, message: str, missing: list[str], failures: dict[str, str]):
        super().__init__(message)
        self.missing = missing
        self.failures = failures


class PopulationDraws(dict):
    """Flat population draws (leading axis S) of a fit: mu, omega, beta, sigma_*, nu, corr."""


def population_draws(post) -> PopulationDraws:
    """Population variables of a CohortPosterior with (chain, draw) flattened to S."""
    from twin_uq.twin.population import flat_draws  # here: twin -> inference -> this module

    return PopulationDraws(flat_draws(post))


def _model_ref(model: Model) -> Any:
    """A built-in model travels by name (workers load it); a user's model by pickle."""
    from twin_uq.model.load import model_source_hash

    try:
        builtin = load_model(model.name)
        if model_source_hash(builtin) == model_source_hash(model):
            return model.name
    except Exception:  # not a built-in name
        pass
    return model


def _restandardise(draws: PopulationDraws, stage1_design, full_design, model: Model):
    """Re-express ``mu``/``beta`` in the full cohort's covariate standardisation.

    Stage 1 standardises covariates with the subsample's median and SD; the result is
    stored with the full cohort's. For a numeric term ``beta (x - c1)/s1`` equals
    ``beta s/s1 (x - c)/s + beta (c - c1)/s1``: the slope rescales and the offset moves
    into ``mu``. Indicator terms need the same reference level in both.
    """
    if "beta" not in draws:
        return draws
    if tuple(stage1_design.effects) != tuple(full_design.effects):
        raise InputError(
            "The stage-1 subsample and the full cohort give different covariate terms "
            f"({stage1_design.effect_labels} vs {full_design.effect_labels}): a category level "
            "or reference level is missing from the subsample; enlarge `subsample`."
        )
    out = PopulationDraws(draws)
    mu, beta = draws["mu"].copy(), draws["beta"].copy()
    for e, (par, term) in enumerate(stage1_design.effects):
        q = stage1_design.terms.index(term)
        c1, s1 = stage1_design.centre[q], stage1_design.scale[q]
        c, s = full_design.centre[q], full_design.scale[q]
        k = model.parameter_names.index(par)
        mu[:, k] = mu[:, k] + beta[:, e] * (c - c1) / s1
        beta[:, e] = beta[:, e] * s / s1
    out["mu"], out["beta"] = mu, beta
    return out


def _patient_means(draws: PopulationDraws, data, index: np.ndarray) -> np.ndarray:
    """``(B, S, K)`` population mean of log theta for patients ``index`` at every draw."""
    allo = np.asarray(data.allometric)[index]  # (B, K)
    mean = allo[:, None, :] + draws["mu"][None, :, :]
    if "beta" in draws:
        design = np.asarray(data.design)[index][:, np.asarray(data.effect_term)]  # (B, E)
        onehot = np.eye(draws["mu"].shape[1])[np.asarray(data.effect_param)]  # (E, K)
        mean = mean + np.einsum("be,se,ek->bsk", design, draws["beta"], onehot)
    return mean


def _chol(draws: PopulationDraws) -> np.ndarray:
    omega = draws["omega"]
    if "corr" in draws:
        return np.linalg.cholesky(draws["corr"]) * omega[:, :, None]
    return np.einsum("sk,kl->skl", omega, np.eye(omega.shape[1]))


def _residuals(structure, draws: PopulationDraws, n_out: int):
    from twin_uq.inference.postprocess import residuals_of_draws

    return residuals_of_draws(structure, draws, n_out)


def _thin(n_from: int, n_to: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_from - 1, min(n_to, n_from)).round().astype(int))


def fit_two_stage(
    model: str | Path | Model,
    cohort: Cohort | str | Path | pd.DataFrame,
    *,
    subsample: int = 200,
    population_method: str = "nuts",
    population: Any = None,
    population_kwargs: Mapping[str, Any] | None = None,
    cluster: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 200,
    draws: int = 250,
    population_draws_used: int = 256,
    retries: int = 2,
):
    """Fit a large cohort in two stages; stage 2 runs on Dask workers.

    Parameters
    ----------
    model, cohort
        As for :func:`twin_uq.fit`.
    subsample
        Patients (drawn at random with ``seed``) whose hierarchical fit gives the
        population posterior. ``subsample >= n_patients`` fits everyone.
    population_method
        ``"nuts"`` (default) or ``"svi"`` / ``"laplace"`` for stage 1. With an approximate
        method, ``subsample`` may be the whole cohort.
    population
        A :class:`~twin_uq.CohortPosterior` to use as stage 1 (skips stage 1, e.g. last
        month's fit, or a fit of the same cohort to compare against).
    population_kwargs
        Passed to :func:`twin_uq.fit` in stage 1: ``chains``, ``warmup``, ``draws`` and the
        population model (``covariate_effects``, ``correlation``, ``error``, ``priors``...).
        Stage 2 uses the same population model.
    cluster
        ``None`` (a local 2-process cluster), a scheduler address, a ``Client`` or a cluster.
    batch_size
        Patients per task. Each task loops over its patients with one compiled sampler.
    seed
        Seeds the subsample and every patient (patient ``i`` uses ``seed``-derived stream
        ``i``, so results do not depend on batching or on which worker ran what).
    chains, warmup, draws
        Stage-2 NUTS per patient; the result has ``chains x draws`` draws.
    population_draws_used
        Stage-1 draws (evenly thinned) that form each patient's mixture prior; cost is
        linear in it.
    retries
        Resubmissions of a failed task (``client.submit(retries=...)``); a lost worker's
        tasks are rescheduled by Dask in addition.

    Returns
    -------
    CohortPosterior
        ``method == "two-stage"``, ``approximate``; extra group ``two_stage`` with the
        paired population draw per patient draw (``pop_draw``), per-patient sampler
        diagnostics, subsample membership and the worker that ran each patient.

    Raises
    ------
    IncompleteResultError
        If any patient's batch failed after its retries, or a patient came back twice:
        the message names every missing patient and the error of its batch.
    """
    from twin_uq.inference.fit import fit
    from twin_uq.inference.prepare import prepare_fit

    t0 = time.perf_counter()
    model = load_model(model)
    if not isinstance(cohort, Cohort):
        cohort = read_cohort(cohort)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}.")
    if min(chains, warmup, draws) < 1:
        raise InputError(f"chains, warmup, draws must be >= 1, got {chains}, {warmup}, {draws}.")
    ids = list(cohort.ids)
    P = len(ids)
    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    # ---- stage 1 --------------------------------------------------------------------
    if population is None:
        n_sub = min(int(subsample), P)
        if n_sub < 2:
            raise InputError(f"subsample must be >= 2 patients, got {subsample}.")
        sub_ids = [ids[i] for i in np.sort(rng.choice(P, n_sub, replace=False))]
        kwargs = {"progress": False} | dict(population_kwargs or {})
        stage1 = fit(
            model, cohort.select(sub_ids) if n_sub < P else cohort,
            method=population_method, seed=seed, **kwargs,
        )  # fmt: skip
    else:
        stage1 = population
        if stage1.model.name != model.name:
            raise InputError(
                f"The population posterior is of model {stage1.model.name!r}, not {model.name!r}."
            )
        sub_ids = list(stage1.patient_ids)
    timings["stage1"] = time.perf_counter() - t0
    spec = stage1.prepared.spec
    settings = stage1.prepared.structure.settings
    # Stage 2 samples each patient on its own (no population latents to centre), so the
    # cohort-wide Fisher information of "auto" centring would be wasted work here.
    no_centering = np.zeros((cohort.n_patients, len(model.parameters)))
    prepared = prepare_fit(spec, cohort, settings, centering=no_centering)
    flat = _restandardise(population_draws(stage1), stage1.prepared.design, prepared.design, model)
    S1 = flat["mu"].shape[0]
    keep = _thin(S1, population_draws_used)
    mix = PopulationDraws({k: v[keep] for k, v in flat.items()})
    n_out = len(model.outputs)
    add, prop, nu = _residuals(stage1.prepared.structure, mix, n_out)
    chol = _chol(mix)
    error_code = np.asarray(prepared.data.error_code)
    arrays = prepared.data.arrays
    N = int(arrays.obs_time.shape[1])
    # ---- stage 2 on the cluster -----------------------------------------------------
    table = cohort.table
    batches = [list(range(i, min(i + batch_size, P))) for i in range(0, P, batch_size)]
    ref = _model_ref(model)
    t1 = time.perf_counter()
    with get_client(cluster) as client:
        n_workers = len(client.scheduler_info()["workers"])
        common = {
            "model": ref, "settings": settings, "chol": chol, "add": add, "prop": prop,
            "nu": nu, "error_code": error_code, "n_obs": N,
            "chains": chains, "warmup": warmup, "draws": draws,
        }  # fmt: skip
        from twin_uq.distributed._worker import conditional_batch

        futures = {}
        for b, index in enumerate(batches):
            bids = [ids[i] for i in index]
            payload = common | {
                "ids": bids,
                "table": table[table["id"].isin(bids)].reset_index(drop=True),
                "mean": _patient_means(mix, prepared.data, np.asarray(index)),
                "seeds": np.asarray([seed * 1_000_003 + 7919 * i + 1 for i in index]),
            }
            futures[b] = client.submit(
                worker_task(conditional_batch), payload, retries=retries, pure=False,
                key=f"twin-uq-stage2-{seed}-{b}-{time.time_ns()}",
            )  # fmt: skip
        done, failed = gather_all(client, futures)
    timings["stage2"] = time.perf_counter() - t1
    post = _assemble(
        model, cohort, prepared, stage1, flat, keep, done, failed, batches, ids,
        chains=chains, draws=draws, warmup=warmup, sub_ids=sub_ids, seed=seed,
        population_method=stage1.method, batch_size=batch_size, n_workers=n_workers,
        timings=timings, population_draws_used=len(keep),
    )  # fmt: skip
    return post


def check_complete(ids: list[str], done: dict, failed: dict, batches: list[list[int]]) -> None:
    """Raise :class:`IncompleteResultError` unless every patient came back exactly once."""
    got = Counter(pid for r in done.values() for pid in r["ids"])
    missing = [p for p in ids if got[p] == 0]
    twice = sorted(p for p, n in got.items() if n > 1)
    unknown = sorted(set(got) - set(ids))
    failures = {ids[i]: failed[b] for b, idx in enumerate(batches) if b in failed for i in idx}
    if missing or twice or unknown:
        parts = []
        if missing:
            reasons = sorted(set(failures.values()))
            parts.append(
                f"{len(missing)} of {len(ids)} patients missing (e.g. {missing[:5]}); "
                f"batch errors: {reasons[:3]}"
            )
        if twice:
            parts.append(f"patients returned more than once: {twice[:5]}")
        if unknown:
            parts.append(f"unknown patients returned: {unknown[:5]}")
        raise IncompleteResultError("Distributed stage 2 incomplete: " + "; ".join(parts),
                                    missing, failures)  # fmt: skip


def _assemble(model, cohort, prepared, stage1, flat, keep, done, failed, batches, ids, *,
              chains, draws, warmup, sub_ids, seed, population_method, batch_size, n_workers,
              timings, population_draws_used):  # fmt: skip
    """One CohortPosterior from stage-1 draws and the gathered stage-2 batches."""
    from twin_uq.inference.backends import BackendResult
    from twin_uq.inference.idata import build_idata
    from twin_uq.inference.postprocess import DrawQuantities
    from twin_uq.inference.solver_check import check_fit_draws

    check_complete(ids, done, failed, batches)
    P, K, C, D = len(ids), len(model.parameters), chains, draws
    arrays = prepared.data.arrays
    mask = np.asarray(arrays.obs_mask)
    N = mask.shape[1]
    pos = {p: i for i, p in enumerate(ids)}
    theta = np.empty((C, D, P, K))
    f = np.full((C, D, P, N), np.nan)
    y_rep = np.full((C, D, P, N), np.nan)
    ll = np.zeros((C, D, P, N))
    ok = np.zeros((C, D, P), bool)
    pop_draw = np.empty((C, D, P), np.int64)
    diag = {k: np.empty(P) for k in ("r_hat", "ess_bulk", "divergences", "seconds")}
    worker = np.empty(P, np.int64)
    for r in done.values():
        for j, pid in enumerate(r["ids"]):
            i = pos[pid]
            theta[:, :, i] = r["theta"][j]
            pop_draw[:, :, i] = keep[r["draw_index"][j]].reshape(C, D)
            f[:, :, i] = r["f"][j].reshape(C, D, N)
            y_rep[:, :, i] = r["y_rep"][j].reshape(C, D, N)
            ll[:, :, i] = r["loglik"][j].reshape(C, D, N)
            ok[:, :, i] = r["ok"][j].reshape(C, D)
            for k in diag:
                diag[k][i] = r[k][j]
            worker[i] = r["pid"]
    # Population variables at output draw d: stage-1 draws evenly spread over C*D.
    S1 = flat["mu"].shape[0]
    at = np.linspace(0, S1 - 1, C * D).round().astype(int)
    samples = {k: v[at].reshape(C, D, *v.shape[1:]) for k, v in flat.items() if k != "corr"}
    if "corr" in flat:
        samples["corr_chol"] = np.linalg.cholesky(flat["corr"][at]).reshape(C, D, K, K)
    # eta against each draw's own (paired) population draw.
    eta = np.empty_like(theta)
    for i in range(P):
        m_i = _patient_means(flat, prepared.data, np.asarray([i]))[0]  # (S1, K)
        s = pop_draw[:, :, i]
        eta[:, :, i] = (np.log(theta[:, :, i]) - m_i[s]) / flat["omega"][s]
    derived = DrawQuantities(
        theta=theta, eta=eta, loglik_obs=ll, y_rep=y_rep, f=f, solver_ok=ok
    )
    settings = {
        "method": "two-stage", "seed": seed, "population_method": population_method,
        "subsample": len(sub_ids), "chains": chains, "warmup": warmup, "draws": draws,
        "population_draws": population_draws_used, "batch_size": batch_size,
        "stage1_settings": json.loads(stage1.idata.attrs.get("settings", "{}")),
    }  # fmt: skip
    result = BackendResult(
        samples=samples,
        timings=timings,
        info={"n_workers": n_workers, "n_batches": len(batches), "failed_batches": len(failed)},
    )
    tree = build_idata(prepared, result, derived, settings_json=json.dumps(settings))
    # A fixed-step model is checked against the adaptive reference as a joint fit is. The
    # residual SDs that express the error come from the evenly spread stage-1 draws, not
    # each patient's paired one: they only set the unit, and stage 1 pins them down.
    check = check_fit_draws(prepared, samples, derived)
    if check is not None:
        tree.attrs["fixed_step_check"] = json.dumps(check)
    tree.attrs["approximate"] = "true"
    tree.attrs["stage1_data_hash"] = stage1.idata.attrs.get("data_hash", "")
    tree.attrs["stage1_method"] = population_method
    two = xr.Dataset(
        {
            "pop_draw": (("chain", "draw", "patient"), pop_draw),
            "r_hat": ("patient", diag["r_hat"]),
            "ess_bulk": ("patient", diag["ess_bulk"]),
            "divergences": ("patient", diag["divergences"].astype(np.int64)),
            "seconds": ("patient", diag["seconds"]),
            "worker_pid": ("patient", worker),
            "in_subsample": ("patient", np.isin(ids, sub_ids)),
        },
        coords={"chain": np.arange(C), "draw": np.arange(D), "patient": ids},
        attrs={"pop_draw": "index into the stage-1 posterior's flattened (chain, draw) axis"},
    )
    tree["two_stage"] = xr.DataTree(two)
    from twin_uq.inference.posterior import CohortPosterior

    return CohortPosterior(idata=tree, model=model, cohort=cohort, prepared=prepared)


def fit_from_fit_args(args: Mapping[str, Any]):
    """:func:`twin_uq.fit` with ``cluster=...``: the arguments of ``fit`` as a mapping.

    The population model and ``chains/warmup/draws`` configure stage 1 on a subsample of
    200 patients; stage 2 uses :func:`fit_two_stage`'s defaults.
    """
    a = dict(args)
    if a.get("backend", "numpyro") != "numpyro":
        raise InputError("cluster= supports backend='numpyro' only.")
    stage1 = {k: a[k] for k in (
        "chains", "warmup", "draws", "covariate_effects", "correlation", "centering", "error",
        "priors", "solver", "target_accept", "max_tree_depth", "dense_mass", "svi_steps",
        "learning_rate", "guide", "chain_method",
    ) if k in a}  # fmt: skip
    return fit_two_stage(
        a["model"], a["cohort"], population_method=a.get("method", "nuts"),
        population_kwargs=stage1, cluster=a["cluster"], seed=a.get("seed", 0),
    )  # fmt: skip
