"""Code that runs on Dask workers: one batch of patients' conditional posteriors.

Payloads and results are plain dicts of numpy arrays / DataFrames so a worker needs only
the installed package. Everything JAX is imported inside the task, and the samplers are
the compiled functions of :mod:`twin_uq.twin.update` (one compilation per worker process
and array shapes, reused for every patient of every batch the worker gets).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


def resolve_model(ref: Any):
    """A model from a built-in name or a (pickled) Model object."""
    from twin_uq.model.load import load_model

    return load_model(ref)


def fixed_arrays(model, obs: dict[str, np.ndarray], schedule, covariates: np.ndarray, n: int):
    """One patient's observation arrays padded to exactly ``n`` (one compiled shape).

    Thin adapter over :func:`twin_uq.twin.update.patient_arrays`, which pads to a bucket
    of the patient's own length; here every patient of a cohort shares one length.
    """
    from twin_uq.twin.update import patient_arrays

    return patient_arrays(model, obs, schedule, covariates, length=n)


#: The padded sizes of a schedule, by :meth:`~twin_uq.simulate.schedule.Schedule.pad` keyword.
SIZE_KEYS = ("n_bolus", "n_infusion", "n_knots", "n_modelled", "n_reset", "n_steady")


def schedule_sizes(schedules) -> dict[str, int]:
    """The largest size of every dose-event kind over ``schedules`` (one compiled shape).

    Boluses, infusions, signal knots, modelled infusions (``RATE=-1/-2``), resets
    (``EVID=3/4``) and steady-state doses (``SS=1/2``): a patient without steady state pads
    its steady-state list to the cohort's size, so that every patient of every batch has
    the same array shapes and a worker compiles its samplers once.
    """
    return {k: max(int(getattr(s, k)) for s in schedules) for k in SIZE_KEYS}


def batch_inputs(model, table, n_obs: int, sizes: dict[str, int] | None = None):
    """Per-patient observations, schedules (padded to common sizes) and covariates.

    ``sizes``: the padded schedule sizes (:data:`SIZE_KEYS`), the same for every batch of
    a fit (:func:`schedule_sizes` of the whole cohort); by default this batch's largest,
    bucketed.
    """
    from twin_uq.data import read_cohort
    from twin_uq.twin.engine import bucket_schedule
    from twin_uq.twin.update import observed

    cohort = read_cohort(table)
    arrays = cohort.for_model(model)
    scheds = [cohort.schedule(p, signals=model.signals) for p in cohort.ids]
    if sizes is None:
        sizes = schedule_sizes([bucket_schedule(s) for s in scheds])
    out = {}
    for j, pid in enumerate(cohort.ids):
        obs = observed(arrays, j)  # with CENS=-1 / LIMIT censoring when the batch has it
        sched = scheds[j].pad(**sizes)
        cov = np.asarray(arrays.covariates[j])
        out[pid] = (obs, fixed_arrays(model, obs, sched, cov, n_obs))
    return out


def _derive_fn():
    import functools

    import jax
    import jax.numpy as jnp

    from twin_uq.inference.likelihood import censoring_args, patient_predictions
    from twin_uq.inference.residual import observation_loglik, sample_observations

    @functools.partial(jax.jit, static_argnums=(0, 1), static_argnames=("student_t",))
    def derive(model, settings, theta, arr, error_code, add, prop, nu, key, *, student_t=True):
        """f, per-observation log-likelihood, a noisy replicate and solver status per draw.

        ``student_t``: whether any output is Student-t (``uses_student_t``); static, so the
        Student-t draw is compiled only for cohorts that need it.
        """

        def one(th, a, b, v, k):
            f, ok = patient_predictions(
                model, settings, th, arr.covariates, arr.schedule, arr.obs_time, arr.obs_output
            )
            code = error_code[arr.obs_output]
            aa, bb = a[arr.obs_output], b[arr.obs_output]
            # the one residual contract: M3, upper-limit (CENS=-1) and interval (LIMIT)
            ll = observation_loglik(code, arr.obs_value, f, aa, bb, v, *censoring_args(arr))
            ll = jnp.where(arr.obs_mask, ll, 0.0)
            ll = jnp.where(ok, ll, -jnp.inf)
            y = sample_observations(k, code, f, aa, bb, v, student_t=student_t)
            y = jnp.where(arr.obs_mask, y, jnp.nan)
            return f, ll, y, ok

        keys = jax.random.split(key, theta.shape[0])
        return jax.vmap(one)(theta, add, prop, nu, keys)

    return derive


_DERIVE = None


def conditional_batch(payload: dict[str, Any]) -> dict[str, Any]:
    """Conditional posteriors of one batch of patients given the population draws.

    Payload keys: ``model`` (name or Model), ``settings`` (SolverSettings), ``table``
    (the batch's rows), ``ids``, ``mean`` (B, S, K) population mean of log theta per
    patient and draw, ``chol`` (S, K, K), ``add``/``prop`` (S, O), ``nu`` (S,),
    ``error_code`` (O,), ``n_obs``, ``sizes`` (the cohort's padded schedule sizes, see
    :func:`schedule_sizes`), ``seeds`` (B,), ``chains``, ``warmup``, ``draws``.

    Returns per patient (leading axis B): ``theta`` (C, D, K), ``draw_index`` (C*D,)
    into the S population draws, ``f``/``loglik``/``y_rep`` (C*D, N), ``ok`` (C*D,),
    and ``r_hat``, ``ess_bulk``, ``divergences``, ``seconds``; plus the worker's pid.
    ``ids`` lists the patients returned; a patient whose update did not sample
    (:class:`~twin_uq.twin.update.UpdateFailedError`) is left out of them and of every
    array, and ``failed`` maps its id to the error's message (the batch's other patients
    still come back; resubmitting the task would fail the same way).
    """
    global _DERIVE
    import jax
    import jax.numpy as jnp

    from twin_uq.inference.residual import uses_student_t
    from twin_uq.twin.update import UpdateData, UpdateFailedError, run_update

    t_start = time.perf_counter()
    if _DERIVE is None:
        _DERIVE = _derive_fn()
    model = resolve_model(payload["model"])
    settings = payload["settings"]
    chains, warmup, draws = payload["chains"], payload["warmup"], payload["draws"]
    chol = np.asarray(payload["chol"])
    chol_inv = jnp.asarray(np.linalg.inv(chol))
    logdet = jnp.asarray(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1))
    add, prop, nu = (np.asarray(payload[k]) for k in ("add", "prop", "nu"))
    error_code = jnp.asarray(payload["error_code"])
    student_t = uses_student_t(payload["error_code"])
    inputs = batch_inputs(model, payload["table"], payload["n_obs"], payload.get("sizes"))
    res: dict[str, list] = {k: [] for k in (
        "theta", "draw_index", "f", "loglik", "y_rep", "ok",
        "r_hat", "ess_bulk", "divergences", "seconds",
    )}  # fmt: skip
    done: list[str] = []
    failed: dict[str, str] = {}
    for j, pid in enumerate(payload["ids"]):
        _, arr = inputs[pid]
        mean = np.asarray(payload["mean"][j])
        data = UpdateData(
            arrays=arr, error_code=error_code, mean=jnp.asarray(mean), chol_inv=chol_inv,
            logdet=logdet, add=jnp.asarray(add), prop=jnp.asarray(prop), nu=jnp.asarray(nu),
        )  # fmt: skip
        seed = int(payload["seeds"][j])
        try:
            up = run_update(
                model, settings, data, mean.mean(axis=0),
                chains=chains, warmup=warmup, draws=draws, seed=seed, patient=pid,
            )  # fmt: skip
        except UpdateFailedError as err:
            failed[pid] = str(err)
            continue
        done.append(pid)
        s = up.draw_index
        f, ll, y, ok = _DERIVE(
            model, settings, jnp.asarray(up.theta), arr, error_code,
            jnp.asarray(add[s]), jnp.asarray(prop[s]), jnp.asarray(nu[s]),
            jax.random.key(seed + 1), student_t=student_t,
        )  # fmt: skip
        res["theta"].append(up.theta.reshape(chains, draws, -1))
        res["draw_index"].append(s)
        res["f"].append(np.asarray(f))
        res["loglik"].append(np.asarray(ll))
        res["y_rep"].append(np.asarray(y))
        res["ok"].append(np.asarray(ok))
        res["r_hat"].append(up.r_hat)
        res["ess_bulk"].append(up.ess_bulk)
        res["divergences"].append(up.divergences)
        res["seconds"].append(up.seconds)
    out: dict[str, Any] = {k: np.asarray(v) for k, v in res.items()}
    out["ids"] = done
    out["failed"] = failed
    out["pid"] = os.getpid()
    out["seconds_total"] = time.perf_counter() - t_start
    return out
