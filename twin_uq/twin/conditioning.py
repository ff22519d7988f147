"""Conditioning a twin on new observations of its patient, without refitting the cohort.

The population posterior of the cohort fit is the prior (see :mod:`twin_uq.twin.update`
for the samplers); the result is a new, immutable twin with the update recorded.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from typing import TypeVar

import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.data import Cohort, read_cohort
from twin_uq.errors import InputError, UnavailableError
from twin_uq.inference.prepare import check_correlated_residuals
from twin_uq.model.base import Model
from twin_uq.model.scales import fixed_index, to_unconstrained
from twin_uq.posterior.patient import observations_frame
from twin_uq.posterior.population import frozen
from twin_uq.twin.engine import bucket_schedule
from twin_uq.twin.results import UpdateRecord
from twin_uq.twin.update import (
    UpdateData,
    observed,
    patient_arrays,
    run_importance,
    run_update,
)

__all__ = ["update_twin", "with_fixed_effect_bandwidth"]

#: A :class:`~twin_uq.twin.PosteriorTwin`, typed loosely: the twin module imports this one.
Twin = TypeVar("Twin")


def update_twin(  # noqa: UP047 (PEP 695 syntax breaks the 3.11 layer checker)
    twin: Twin,
    new_rows: pd.DataFrame | Cohort,
    *,
    chains: int = 4,
    warmup: int = 400,
    draws: int = 500,
    population_draws: int = 256,
    method: str = "auto",
    seed: int = 0,
) -> Twin:
    """Condition on new observations of this patient (``twin.update``); returns a new twin.

    The population posterior of the cohort fit is the prior (see
    :mod:`twin_uq.twin.update`); the cohort is not refitted. The sampler is compiled
    once per (model, settings, shapes) and reused by later updates.

    Parameters
    ----------
    new_rows
        Rows in the cohort table format (``id`` optional; if present it must be this
        patient), or a :class:`Cohort` holding only this patient. Doses are allowed too.
    chains, warmup, draws, seed
        NUTS settings (chains run vectorised; ``chains x draws`` draws are kept).
    method
        ``"auto"`` (default): importance sampling from a proposal built on the current
        posterior, accepted when its Pareto k-hat < 0.7 and its effective sample size
        >= 400, otherwise NUTS; ``"nuts"``; ``"importance"`` (error when unreliable).
    population_draws
        How many population posterior draws (evenly thinned) represent the population
        prior; the update's cost grows linearly with it.
    """
    if twin.population_only:
        raise InputError(
            "This twin is a population-only prediction for a new patient; fit or update "
            "requires a fitted patient (use post.twin(id))."
        )
    if twin.posterior.has_occasions:
        # The update's likelihood solves with one parameter vector per draw, without the
        # occasion effects the fit used.
        raise InputError(
            f"Patient {twin.patient_id!r}: twin.update does not handle inter-occasion "
            "variability (iov) yet. Refit the cohort with the new rows (tq.fit) instead."
        )
    if twin.posterior.time_varying:
        # The update's likelihood solves with one parameter vector per draw; using it
        # here would drop the covariate path the fit used.
        raise InputError(
            f"Patient {twin.patient_id!r} has covariates that change during the record "
            f"({', '.join(twin.posterior.covariate_path.columns)}); twin.update does not "
            "handle time-varying covariates yet. Refit the cohort with the new rows "
            "(tq.fit) instead."
        )
    new = _new_table(new_rows, twin.patient_id, twin.model)
    combined = pd.concat([twin.table, new], ignore_index=True)
    if "output" in combined and len(twin.model.outputs) == 1:
        # One side may name the single output and the other leave it implicit.
        combined["output"] = combined["output"].fillna(twin.model.output_names[0])
    combined = combined.sort_values("time", kind="stable").reset_index(drop=True)
    cohort = read_cohort(combined, name=f"patient {twin.patient_id} (updated)")
    arrays = cohort.for_model(twin.model)
    obs = observed(arrays, 0)
    schedule = bucket_schedule(cohort.schedule(twin.patient_id, signals=twin.model.signals))
    pop = twin.population
    if population_draws < 1:
        raise InputError(f"population_draws must be >= 1, got {population_draws}.")
    # Evenly thinned population draws (all chains) represent the population posterior.
    keep = np.unique(np.linspace(0, pop.n_draws - 1, min(population_draws, pop.n_draws)).round())
    keep = keep.astype(int)
    chol = with_fixed_effect_bandwidth(twin.model, pop.chol[keep], pop.mean[keep])
    update_arrays = patient_arrays(twin.model, obs, schedule, twin.covariates)
    settings = twin.settings.covering(np.asarray(update_arrays.obs_time))
    data = UpdateData(
        arrays=update_arrays,
        error_code=jnp.asarray(twin.error_code),
        mean=jnp.asarray(pop.mean[keep]),
        chol_inv=jnp.asarray(np.linalg.inv(chol)),
        logdet=jnp.asarray(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)),
        add=jnp.asarray(pop.add[keep]),
        prop=jnp.asarray(pop.prop[keep]),
        nu=jnp.asarray(pop.nu[keep]),
        tau=None if pop.tau is None else jnp.asarray(pop.tau[keep]),
    )
    if pop.tau is not None:  # the OU likelihood's data requirements, as in a fit
        ou = tuple(int(k) for k in np.flatnonzero(pop.tau[0] > 0))
        check_correlated_residuals(twin.model, (twin.patient_id,), arrays, ou)
    if method not in ("auto", "nuts", "importance"):
        raise InputError(f"method must be 'auto', 'nuts' or 'importance', got {method!r}.")
    log_theta = to_unconstrained(twin.model, twin.theta)
    res = None
    if method in ("auto", "importance"):
        res = run_importance(
            twin.model,
            settings,
            data,
            np.median(log_theta, axis=0),
            draws=chains * draws,
            seed=seed,
        )
        if res is None and method == "importance":
            raise UnavailableError(
                f"Patient {twin.patient_id}: importance sampling is unreliable for these "
                "data (Pareto k-hat >= 0.7 or too few effective draws); use method='nuts'."
            )
    if res is None:
        res = run_update(
            twin.model,
            settings,
            data,
            np.median(log_theta, axis=0),
            chains=chains,
            warmup=warmup,
            draws=draws,
            seed=seed,
            patient=twin.patient_id,
        )
    s = keep[res.draw_index]
    n_added = int(np.asarray(arrays.obs_mask).sum()) - len(twin.observations)
    record = UpdateRecord(
        time=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        rows_added=n_added,
        method=res.method,
        r_hat=res.r_hat,
        ess_bulk=res.ess_bulk,
        divergences=res.divergences,
        n_draws=int(res.theta.shape[0]),
        seconds=res.seconds,
        pareto_k=res.pareto_k,
    )
    posterior = replace(
        twin.posterior,
        theta=frozen(res.theta),
        add=frozen(pop.add[s]),
        prop=frozen(pop.prop[s]),
        nu=frozen(pop.nu[s]),
        tau=None if pop.tau is None else frozen(pop.tau[s]),
        n_chains=res.n_chains,
        schedule=cohort.schedule(twin.patient_id, signals=twin.model.signals),
        observations=observations_frame(arrays, 0, twin.model),
        table=cohort.table.copy(),
    )
    return replace(twin, posterior=posterior, history=(*twin.history, record))


def _new_table(new_rows: pd.DataFrame | Cohort, pid: str, model: Model) -> pd.DataFrame:
    if isinstance(new_rows, Cohort):
        if new_rows.ids != (pid,):
            raise InputError(
                f"update() of patient {pid!r} needs a Cohort with only that patient; got ids {list(new_rows.ids)[:5]}."
            )
        return _known_outputs(new_rows.table, pid, model).reset_index(drop=True)
    if not isinstance(new_rows, pd.DataFrame):
        raise TypeError(
            "new_rows must be a pandas DataFrame in the cohort table format, or a Cohort."
        )
    if new_rows.empty:
        raise InputError("update() got no rows.")
    frame = new_rows.copy()
    id_col = next((c for c in frame.columns if str(c).lower() == "id"), None)
    if id_col is None:
        frame["id"] = pid
    else:
        ids = set(frame[id_col].astype(str))
        if ids != {pid}:
            raise InputError(
                f"update() of patient {pid!r} got rows of patient(s) {sorted(ids - {pid})[:5]}."
            )
    # Normalise through the reader so column names and defaults match the stored table.
    table = read_cohort(frame, name=f"new rows of {pid}").table
    return _known_outputs(table, pid, model).reset_index(drop=True)


def _known_outputs(table: pd.DataFrame, pid: str, model: Model) -> pd.DataFrame:
    """``table`` if every observation names an output of ``model``; else a ValueError."""
    if "output" not in table:
        return table
    obs = (table["evid"] == 0) & (table["mdv"] == 0) & table["output"].notna()
    unknown = table[obs & ~table["output"].isin(model.output_names)]
    if len(unknown):
        row, name = unknown.index[0], unknown["output"].iloc[0]
        raise InputError(
            f"update() of patient {pid!r}: new row {row} has output {name!r}, which model "
            f"{model.name!r} does not define; its outputs are {list(model.output_names)}."
        )
    return table


def with_fixed_effect_bandwidth(model: Model, chol: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The population Cholesky factors ``(S, K, K)`` with a kernel width at fixed effects.

    A fixed effect (``bsv=False``) has no between-patient SD: at draw ``s`` the patient's
    value *is* the population value ``mean[s, k]``, and the factor has a zero on its
    diagonal. The update's target is a mixture over the ``S`` draws, so it represents the
    fixed effect's posterior by a kernel density estimate of ``mean[:, k]`` instead: each
    component gets the SD ``h_k = 1.06 sd(mean[:, k]) S^(-1/5)`` (Silverman's rule; at
    least 1e-6) on that diagonal, which keeps one model solve per gradient (a point mass
    per draw would need ``S``). Unchanged when every parameter varies between patients.
    """
    fixed = fixed_index(model)
    if not fixed.size:
        return chol
    chol = np.array(chol, dtype=float, copy=True)
    S = chol.shape[0]
    for k in fixed:
        h = 1.06 * float(np.std(mean[:, k])) * S ** (-0.2)
        chol[:, k, :] = 0.0
        chol[:, :, k] = 0.0
        chol[:, k, k] = max(h, 1e-6)
    return chol
