"""Pure log-likelihood of a cohort: solve each patient's model, score their observations.

Written for one patient and ``vmap``-ed over the cohort (and, downstream, over posterior
draws). A failed ODE solve makes that patient's log-likelihood ``-inf``; predictions of a
failed solve are replaced by a harmless constant *before* they enter any log or division,
so no NaN reaches a gradient.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from twin_uq._types import (
    BoolScalar,
    CohortParams,
    CovariateVector,
    ErrorCodes,
    FloatScalar,
    ParamVector,
    PerObservation,
    PerOutput,
)
from twin_uq.data import CohortArrays
from twin_uq.inference.residual import observation_loglik, ou_observation_loglik
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.scales import to_natural
from twin_uq.simulate import solve_cohort_on_grid, solve_outputs
from twin_uq.simulate.fixed_step import FixedGrid

__all__ = [
    "FitData",
    "ResidualParams",
    "censoring_args",
    "cohort_loglik",
    "likelihood_theta",
    "patient_loglik",
    "patient_predictions",
    "score_predictions",
]


class ResidualParams(eqx.Module):
    """Residual error parameters per model output.

    Attributes
    ----------
    add, prop
        ``(O,)`` additive SD (output units) and proportional SD (fraction); 0 where unused.
    nu
        Student-t degrees of freedom (scalar; ignored unless an output uses ``student_t``).
    tau
        ``(O,)`` correlation time of an Ornstein-Uhlenbeck residual per output (time units
        of the data; 0 at outputs without one), or ``None``: every residual independent
        (the computation of fits without ``residual_correlation``, unchanged).
    """

    add: PerOutput
    prop: PerOutput
    nu: FloatScalar
    tau: PerOutput | None = None


class FitData(eqx.Module):
    """Everything numeric a cohort fit observed, as a pytree of arrays (leading patient axis).

    How the random effects are parameterised is not part of the data: that is the fit's
    :class:`~twin_uq.inference.reparam.Centering`, passed next to it.

    Attributes
    ----------
    arrays
        The cohort's padded observations, schedules and model covariates.
    design, effect_param, effect_term, allometric
        The population mean's inputs, as in
        :class:`~twin_uq.inference.covariate_design.CovariateArrays` (design ``(P, Q)``, effect
        indices ``(E,)``, allometric offsets ``(P, K)``).
    error_code
        ``(O,)`` residual error model per output.
    grids
        Fixed-step solver (``method="rk4"``) only: every patient's
        :class:`~twin_uq.simulate.fixed_step.FixedGrid` (leading axis ``P``), built once
        so that no gradient rebuilds it; ``None`` otherwise.
    segment_design, segment_allometric
        With covariates that change within a patient (``arrays.change_time`` set): per
        segment, the change of the design ``(P, S, Q)`` and of the allometric offsets
        ``(P, S, K)`` from the baseline ones (:func:`likelihood_theta`); ``None``
        otherwise.
    segment_occasion
        With inter-occasion variability: the occasion index ``(P, S)`` of every segment
        (:mod:`twin_uq.data.occasions`; ``arrays.change_time`` are then the occasion
        starts); ``None`` otherwise.
    """

    arrays: CohortArrays
    design: Float[Array, "P Q"]
    effect_param: Int[Array, " E"]
    effect_term: Int[Array, " E"]
    allometric: Float[Array, "P K"]
    error_code: ErrorCodes
    grids: FixedGrid | None = None
    segment_design: Float[Array, "P S Q"] | None = None
    segment_allometric: Float[Array, "P S K"] | None = None
    segment_occasion: Int[Array, "P S"] | None = None

    @property
    def n_patients(self) -> int:
        """Number of patients ``P``."""
        return self.allometric.shape[0]

    @property
    def n_observations(self) -> np.ndarray:
        """Observations per patient (censored included), shape ``(P,)``."""
        return np.asarray(self.arrays.obs_mask).sum(axis=1)


def likelihood_theta(
    model: Model,
    log_theta: Float[Array, "P K"],
    beta: Float[Array, " E"],
    data: FitData,
    occasion_shift: Float[Array, "P S K"] | None = None,
) -> Float[Array, "P K"] | Float[Array, "P S K"]:
    """The natural-scale parameters the likelihood solves with, from the latent ``log_theta``.

    ``to_natural(log_theta)`` ``(P, K)``; with segments (``data.arrays.change_time``)
    ``(P, S, K)``: with time-varying covariates, on segment ``s`` the covariate model
    evaluated with the values in force there, ``log_theta + (X_s - X_0) beta +
    (allometric_s - allometric_0)`` on the latent scale (the patient's random effect is
    the same on every segment); with occasions, plus ``occasion_shift`` (the segment's
    ``omega_occ * kappa``; 0 when not given, e.g. for a pooled start).
    """
    if data.arrays.change_time is None:
        return to_natural(model, log_theta)
    if data.segment_design is None:  # occasions only
        shift = jnp.zeros((*data.arrays.change_time.shape, log_theta.shape[-1]))
        if occasion_shift is not None:
            shift = occasion_shift
        return to_natural(model, log_theta[:, None, :] + shift)
    shift = data.segment_allometric
    if occasion_shift is not None:
        shift = shift + occasion_shift
    if beta.shape[0]:
        contrib = data.segment_design[..., data.effect_term] * beta  # (P, S, E)
        shift = shift + contrib @ jnp.eye(log_theta.shape[-1])[data.effect_param]
    return to_natural(model, log_theta[:, None, :] + shift)


def _select_predictions(outputs, output_index, ok):
    """Each observation's own output (``(N,)`` from ``(N, O)``), made harmless on failure."""
    f = jnp.take_along_axis(outputs, output_index[:, None], axis=1)[:, 0]
    ok = ok & jnp.all(jnp.isfinite(f))
    return jnp.where(ok, f, 1.0), ok


def patient_predictions(
    model: Model,
    settings: SolverSettings,
    theta: ParamVector,
    covariates: CovariateVector,
    schedule,
    times: Float[Array, " N"],
    output_index: Int[Array, " N"],
    grid: FixedGrid | None = None,
    change_time: Float[Array, " S"] | None = None,
) -> tuple[Float[Array, " N"], BoolScalar]:
    """Noise-free prediction of each observation (its own output at its own time).

    ``grid``: the patient's precomputed fixed grid for these times (``method="rk4"``).
    ``change_time``: with ``theta`` ``(S, K)``, where each segment of the parameters
    starts (time-varying covariates, :func:`twin_uq.simulate.solve`).
    """
    _, outputs, ok = solve_outputs(
        model, theta, covariates, schedule, times, settings, grid, change_times=change_time
    )
    return _select_predictions(outputs, output_index, ok)


def censoring_args(arrays: CohortArrays) -> tuple[Array, Array, Array | None]:
    """``(censored, lloq, limit)`` for :func:`observation_loglik` from a cohort's arrays.

    Below-limit censoring alone passes the boolean ``obs_censored`` and no limit (the M3
    computation); with upper-limit or interval censoring (``obs_cens`` present) the
    direction and the interval's other bound.
    """
    if arrays.obs_cens is None:
        return arrays.obs_censored, arrays.obs_lloq, None
    return arrays.obs_cens, arrays.obs_lloq, arrays.obs_limit


def score_predictions(arrays: CohortArrays, error_code, residual: ResidualParams, f, ok):
    """Pointwise log-likelihood of one patient's observations given its predictions ``f``.

    ``(ll, ok)``: ``ll`` ``(N,)`` from the residual contract, 0 for padding and ``-inf``
    everywhere when ``ok`` (the solve succeeded) is False.
    """
    out = arrays.obs_output
    if residual.tau is not None:  # autocorrelated residuals: conditional densities
        ll = ou_observation_loglik(
            error_code[out],
            arrays.obs_value,
            f,
            residual.add[out],
            residual.prop[out],
            arrays.obs_time,
            out,
            arrays.obs_mask,
            residual.tau[out],
        )
        return jnp.where(ok, ll, -jnp.inf), ok
    ll = observation_loglik(
        error_code[out],
        arrays.obs_value,
        f,
        residual.add[out],
        residual.prop[out],
        residual.nu,
        *censoring_args(arrays),
    )
    ll = jnp.where(arrays.obs_mask, ll, 0.0)
    return jnp.where(ok, ll, -jnp.inf), ok


def patient_loglik(
    model: Model,
    settings: SolverSettings,
    theta: ParamVector,
    covariates: CovariateVector,
    arrays: CohortArrays,
    error_code: ErrorCodes,
    residual: ResidualParams,
    grid: FixedGrid | None = None,
) -> tuple[Float[Array, " N"], BoolScalar]:
    """Pointwise log-likelihood of one patient's observations.

    Parameters
    ----------
    theta
        Individual parameters on the natural scale, ``(K,)``; ``(S, K)`` when the arrays
        have change times (time-varying covariates).
    arrays
        This patient's slice of :class:`CohortArrays` (no leading patient axis).

    Returns
    -------
    loglik
        ``(N,)``; 0 for padding, ``-inf`` everywhere if the solve failed.
    ok
        Whether the ODE solve succeeded.
    """
    f, ok = patient_predictions(
        model,
        settings,
        theta,
        covariates,
        arrays.schedule,
        arrays.obs_time,
        arrays.obs_output,
        grid,
        arrays.change_time,
    )
    return score_predictions(arrays, error_code, residual, f, ok)


def cohort_loglik(
    model: Model,
    settings: SolverSettings,
    theta: CohortParams,
    data: FitData,
    residual: ResidualParams,
) -> tuple[PerObservation, Bool[Array, " P"]]:
    """Pointwise log-likelihood of every patient.

    ``vmap``-ed over the cohort; with precomputed fixed grids the solve is one cohort-wide
    scan instead (:func:`twin_uq.simulate.solve_cohort_on_grid`, same values). ``theta``
    is ``(P, S, K)`` when the cohort's arrays have change times (:func:`likelihood_theta`).
    """
    if (data.arrays.change_time is None) != (theta.ndim == 2):
        raise ValueError(
            f"cohort_loglik: theta of shape {theta.shape} for arrays with "
            f"{data.arrays.n_segments} parameter segment(s); use likelihood_theta."
        )
    if settings.is_fixed_step and data.grids is not None and theta.ndim == 2:
        _, outputs, ok = solve_cohort_on_grid(model, theta, data.arrays.covariates, data.grids)
        f, ok = jax.vmap(_select_predictions)(outputs, data.arrays.obs_output, ok)
        return jax.vmap(
            lambda arr, f_, ok_: score_predictions(arr, data.error_code, residual, f_, ok_)
        )(data.arrays, f, ok)
    return jax.vmap(
        lambda th, cov, arr, grid: patient_loglik(
            model, settings, th, cov, arr, data.error_code, residual, grid
        )
    )(theta, data.arrays.covariates, data.arrays, data.grids)
