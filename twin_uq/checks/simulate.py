"""New patients with the observed design, simulated from the population posterior.

The engine behind the population checks (VPC, NPDE): each replicate ``r`` takes one
posterior draw ``s_r`` of the population parameters, gives every patient of the cohort
fresh random effects from that draw's population distribution (the patient's own
covariates, typical values, covariate effects, allometry and between-patient covariance),
solves the model at the patient's own observation times under its own doses, and adds
residual noise through the project's one residual contract
(:func:`twin_uq.inference.residual.sample_observations`). The fitted patients' own
posteriors are never used: a replicate is a new cohort of the same design.

Also here: the population prediction ``PRED`` (the typical patient with the patient's
covariates, random effects zero, at the posterior median of the population mean) and the
time after the most recent dose of each observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from twin_uq.errors import InputError
from twin_uq.inference.likelihood import patient_predictions
from twin_uq.inference.postprocess import tau_of_draws
from twin_uq.inference.random_effects import occasion_shift
from twin_uq.inference.residual import (
    sample_correlated_observations,
    sample_observations,
    uses_student_t,
)
from twin_uq.model.scales import to_natural
from twin_uq.posterior.population import cohort_population_means, population_scale
from twin_uq.simulate.fixed_step import cohort_grids

__all__ = ["DesignSimulation", "observed_design", "simulate_design", "time_after_dose"]

#: Replicates solved per compiled call (bounded memory for large cohorts).
_BATCH = 50


@dataclass(frozen=True)
class DesignSimulation:
    """Replicates of the observed design and the facts the checks need about the data.

    ``R`` replicates, ``P`` patients, ``N`` padded observations per patient.

    Attributes
    ----------
    y
        ``(R, P, N)`` simulated observations (uncensored; NaN at padding and where a
        replicate's solve failed for that patient).
    pred
        ``(P, N)`` population prediction (``PRED``): the model at the posterior median of
        each patient's population mean (random effects 0).
    ok
        ``(R, P)`` whether the replicate's solve succeeded.
    draw
        ``(R,)`` index of the posterior draw each replicate used.
    seed, approximate, method
        Seed of the simulation; whether the posterior is approximate, and its method.
    """

    y: np.ndarray
    pred: np.ndarray
    ok: np.ndarray
    draw: np.ndarray
    seed: int
    approximate: bool
    method: str

    @property
    def n_replicates(self) -> int:
        """Number of simulated replicates ``R``."""
        return self.y.shape[0]


def observed_design(post) -> dict[str, np.ndarray]:
    """The observed data of a fit as host arrays ``(P, N)``.

    Keys: ``time``, ``value``, ``output`` (index into ``model.outputs``), ``mask`` (a real
    observation), ``below`` (censored below ``lloq``), ``above`` (censored above ``lloq``),
    ``lloq`` (the limit of the observation; for an uncensored observation its LLOQ where the
    data give one, else -inf), ``limit`` (the lower limit that applies to the observation,
    for censoring simulated values: its ``lloq`` where finite, else the median limit of the
    below-limit points of the same output in the cohort, else -inf), ``tad`` (time after
    dose, see :func:`time_after_dose`).
    """
    a = post.arrays
    mask = np.asarray(a.obs_mask, bool)
    if a.obs_cens is not None:
        cens = np.asarray(a.obs_cens)
        below, above = mask & (cens > 0), mask & (cens < 0)
    else:
        below, above = mask & np.asarray(a.obs_censored, bool), np.zeros_like(mask)
    time = np.asarray(a.obs_time, float)
    output = np.asarray(a.obs_output, int)
    lloq = np.asarray(a.obs_lloq, float)
    limit = np.where(mask & (np.isfinite(lloq) & ~above), lloq, -np.inf)
    for k in np.unique(output[below]):
        # Data that record the limit only on censored rows: the output's usual limit.
        gap = mask & (output == k) & ~np.isfinite(limit) & ~above
        limit[gap] = np.median(lloq[below & (output == k)])
    return dict(
        time=time,
        value=np.asarray(a.obs_value, float),
        output=output,
        mask=mask,
        below=below,
        above=above,
        lloq=lloq,
        limit=limit,
        tad=time_after_dose(a.schedule, time),
    )


def time_after_dose(schedule, times: np.ndarray) -> np.ndarray:
    """``(P, N)`` time since the most recent dose at or before each time.

    Doses are boluses, infusion starts and model-defined infusion starts of the batched
    ``schedule``. An observation before any dose has NaN (it belongs to no dosing
    interval; VPCs by time after dose leave it out and say so).
    """
    times = np.asarray(times, float)
    starts = [
        (np.asarray(schedule.bolus_time, float), np.asarray(schedule.bolus_mask, bool)),
        (np.asarray(schedule.infusion_start, float), np.asarray(schedule.infusion_mask, bool)),
        (np.asarray(schedule.modelled_start, float), np.asarray(schedule.modelled_mask, bool)),
    ]
    dose = np.concatenate([np.where(m, t, np.inf) for t, m in starts], axis=-1)  # (P, D)
    after = dose[:, None, :] <= times[:, :, None]  # (P, N, D)
    last = np.max(np.where(after, dose[:, None, :], -np.inf), axis=-1)
    return np.where(np.isfinite(last), times - last, np.nan)


def _settings_and_grids(post):
    arrays = post.arrays
    settings = post.solver
    if settings.is_fixed_step:
        settings = settings.covering(np.asarray(arrays.obs_time))
        return settings, cohort_grids(post.model, settings, arrays)
    return settings, None


@partial(jax.jit, static_argnums=(0, 1, 2, 12))
def _simulate_batch(model, settings, student_t, log_mean, chol, add, prop, nu, arrays, grids,
                    error_code, keys, iov=None, omega_occ=None, occasion=None, tau=None):  # fmt: skip
    """``(B, P, N)`` replicates and ``(B, P)`` solve flags for ``B`` population draws.

    With inter-occasion variability, ``iov`` is ``(parameter indices, M)`` (static),
    ``omega_occ`` ``(B, J)`` and ``occasion`` ``(P, S)`` the segments' occasion indices:
    every new patient also gets fresh occasion effects. With autocorrelated residuals,
    ``tau`` ``(B, O)`` are the OU correlation times of each draw's outputs (0: independent).
    """
    out = arrays.obs_output

    def noise(key, f, a, b, n, t):
        if tau is None:
            return sample_observations(key, error_code[out], f, a[out], b[out], n,
                                       student_t=student_t)  # fmt: skip
        # The residual contract's OU path (the density the fit scored), patient by patient.
        return jax.vmap(sample_correlated_observations)(
            jax.random.split(key, f.shape[0]), error_code[out], f, a[out], b[out],
            arrays.obs_time, out, t[out], arrays.obs_mask,
        )  # fmt: skip

    def one(m, c, a, b, n, key, om, t):
        k_eta, k_noise = jax.random.split(key)
        z = jax.random.normal(k_eta, m.shape)  # (P, K): fresh random effects
        shift = None
        if iov is not None:  # a key of its own: replicates without IOV are unchanged
            kappa = jax.random.normal(jax.random.fold_in(key, 1), (m.shape[0], iov[1], len(iov[0])))
            shift = occasion_shift(kappa, om, occasion, iov[0], m.shape[1])
        f, ok = _cohort_predictions(model, settings, m + z @ c.T, arrays, grids, shift)
        y = noise(k_noise, f, a, b, n, t)
        y = jnp.where(arrays.obs_mask & ok[:, None], y, jnp.nan)
        return y, ok

    om = jnp.zeros((log_mean.shape[0], 0)) if omega_occ is None else omega_occ
    tt = jnp.zeros((log_mean.shape[0], 0)) if tau is None else tau
    return jax.vmap(one)(log_mean, chol, add, prop, nu, keys, om, tt)


@partial(jax.jit, static_argnums=(0, 1))
def _predict(model, settings, log_theta, arrays, grids):
    """``(P, N)`` noise-free predictions of every patient at its own observations."""
    f, ok = _cohort_predictions(model, settings, log_theta, arrays, grids)
    return jnp.where(arrays.obs_mask & ok[:, None], f, jnp.nan)


def _cohort_predictions(model, settings, log_theta, arrays, grids, shift=None):
    """``(P, N)`` predictions and ``(P,)`` solve flags from latent parameters ``(P, K)``.

    ``shift`` ``(P, S, K)``: occasion effects on the segments of ``arrays.change_time``.
    """
    if shift is not None:
        return jax.vmap(
            lambda th, cov, arr, grid: patient_predictions(
                model, settings, th, cov, arr.schedule, arr.obs_time, arr.obs_output, grid,
                arr.change_time,
            )
        )(to_natural(model, log_theta[:, None, :] + shift), arrays.covariates, arrays, grids)  # fmt: skip
    return jax.vmap(
        lambda th, cov, arr, grid: patient_predictions(
            model, settings, th, cov, arr.schedule, arr.obs_time, arr.obs_output, grid
        )
    )(to_natural(model, log_theta), arrays.covariates, arrays, grids)


def simulate_design(post, nsim: int = 500, *, seed: int = 0) -> DesignSimulation:
    """Simulate ``nsim`` new cohorts with the observed design from the population posterior.

    Parameters
    ----------
    post
        A :class:`~twin_uq.CohortPosterior` (any method; approximate ones are labelled).
    nsim
        Number of replicates ``R``. Each uses one posterior draw of the population
        parameters: all ``S`` draws in turn when ``nsim <= S`` (chosen without replacement),
        else drawn with replacement.
    seed
        Seed of the draw choice, the random effects and the residual noise.

    Returns
    -------
    DesignSimulation
    """
    nsim = int(nsim)
    if nsim < 2:
        raise InputError(f"nsim must be at least 2 replicates, got {nsim}.")
    draws = post.population_draws()
    means = cohort_population_means(post, draws)  # (S, P, K) latent population means
    chol, add, prop, nu = population_scale(post, draws)
    S = means.shape[0]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(S, nsim, replace=nsim > S))
    settings, grids = _settings_and_grids(post)
    arrays = post.arrays
    codes = jnp.asarray(post.error_codes)
    student_t = uses_student_t(post.error_codes)
    keys = jax.random.split(jax.random.PRNGKey(seed), nsim)
    structure = post.structure
    occ = {}
    if structure.iov:  # new patients on the observed occasions, each with fresh effects
        iov = (structure.iov, structure.n_occasions)
        omega_occ = np.asarray(draws["omega_occ"])
        occ = dict(iov=iov, occasion=jnp.asarray(post.occasions.index))
    # (S, O) OU correlation times, or None: independent residuals (the path of every fit
    # without residual_correlation, unchanged).
    tau = tau_of_draws(structure, draws, len(post.model.outputs))
    ys, oks = [], []
    for i in range(0, nsim, _BATCH):
        j = idx[i : i + _BATCH]
        pad = _BATCH - len(j)  # one compiled shape for every batch
        jj = np.concatenate([j, np.repeat(j[-1:], pad)])
        kk = jnp.concatenate([keys[i : i + _BATCH], jnp.repeat(keys[-1:], pad, axis=0)])
        y, ok = _simulate_batch(
            post.model, settings, student_t, jnp.asarray(means[jj]), jnp.asarray(chol[jj]),
            jnp.asarray(add[jj]), jnp.asarray(prop[jj]), jnp.asarray(nu[jj]), arrays, grids,
            codes, kk, **occ, **({"omega_occ": jnp.asarray(omega_occ[jj])} if occ else {}),
            **({} if tau is None else {"tau": jnp.asarray(tau[jj])}),
        )  # fmt: skip
        ys.append(np.asarray(y)[: len(j)])
        oks.append(np.asarray(ok)[: len(j)])
    pred = np.asarray(_predict(post.model, settings, jnp.median(means, axis=0), arrays, grids))
    return DesignSimulation(
        y=np.concatenate(ys),
        pred=pred,
        ok=np.concatenate(oks),
        draw=idx,
        seed=int(seed),
        approximate=bool(post.approximate),
        method=str(post.method),
    )
