"""Compiled posterior-predictive simulation of one patient over all posterior draws.

:func:`predict_draws` is one ``jax.jit`` of a ``vmap`` of :func:`twin_uq.simulate.solve`
over draws, followed by residual noise. The model and solver settings are static
arguments, so JAX keeps one compiled function per (model, settings, array shapes) and
repeated predictions with the same shapes never retrace.
Schedules are padded to bucketed sizes (:func:`bucket_schedule`) so that different
regimens of similar size share one compiled function.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from twin_uq._types import (
    CovariateVector,
    DrawOutputs,
    DrawPredictions,
    ErrorCodes,
    PerDraw,
    TimeGrid,
)
from twin_uq.data.arrays import bucket_size
from twin_uq.inference.residual import sample_observations
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate import SolveStatus, solve
from twin_uq.simulate.schedule import Schedule

__all__ = ["bucket_schedule", "covering_in_buckets", "predict_draws"]


def covering_in_buckets(settings: SolverSettings, times) -> SolverSettings:
    """``settings.covering(times)`` with the fixed-step count rounded up to a shape bucket.

    Predictions from many origins (a forecast every few minutes of a CGM trace) would
    otherwise each grow the horizon and compile a solve of their own; with the steps in
    :func:`~twin_uq.data.arrays.bucket_size` buckets (at least 16, then four per
    doubling: at most 25 % more steps) a handful of compiled solves serve them all. The
    values at the requested times do not change: grid points past the latest requested
    time are steps of length zero.
    """
    if not settings.is_fixed_step:
        return settings
    latest = float(np.nanmax(np.asarray(times, dtype=float)))
    steps = math.ceil(latest / settings.fixed_step - 1e-9)
    return settings.covering(bucket_size(steps, smallest=16) * settings.fixed_step)


def _bucket(n: int, minimum: int) -> int:
    # Next power of two: a handful of compiled shapes covers every regimen size.
    n = max(int(n), minimum)
    return 1 << (n - 1).bit_length()


def bucket_schedule(schedule: Schedule) -> Schedule:
    """Pad an unbatched schedule to power-of-two sizes (at least 4 boluses, 2 infusions)."""
    return schedule.pad(
        _bucket(schedule.n_bolus, 4),
        _bucket(schedule.n_infusion, 2),
        _bucket(schedule.n_knots, 1)
        if bool(np.asarray(schedule.signal_mask).any())
        else schedule.n_knots,
    )


def add_noise(
    key: jax.Array,
    f: DrawPredictions,
    error_code: ErrorCodes,
    add: DrawOutputs,
    prop: DrawOutputs,
    nu: PerDraw,
) -> DrawPredictions:
    """One noisy replicate of every prediction under each draw's residual error model.

    ``f`` holds ``S`` draws x ``T`` times x ``O`` outputs; ``add``/``prop``/``nu`` are the
    draws' residual parameters (see :func:`twin_uq.inference.residual.sample_observations`).
    """
    # error_code is traced here, so the Student-t draw stays compiled in (as it always was).
    return sample_observations(
        key,
        error_code[None, None, :],
        f,
        add[:, None, :],
        prop[:, None, :],
        nu[:, None, None],
        student_t=True,
    )


@functools.partial(jax.jit, static_argnums=(0, 1))
def predict_draws(
    model: Model,
    settings: SolverSettings,
    theta: Float[Array, "S K"],
    covariates: CovariateVector,
    schedule: Schedule,
    times: TimeGrid,
    error_code: ErrorCodes,
    add: DrawOutputs,
    prop: DrawOutputs,
    nu: PerDraw,
    key: jax.Array,
    change_times: Float[Array, " G"] | None = None,
) -> tuple[DrawPredictions, DrawPredictions, SolveStatus]:
    """Noise-free and noisy outputs at ``times`` for every draw, and how each solve ended.

    ``theta`` is ``(S, K)``, or ``(S, G, K)`` with ``change_times`` ``(G,)``: parameters
    piecewise constant in time (time-varying covariates; :func:`twin_uq.simulate.solve`).

    Returns
    -------
    f, y
        ``(S, T, O)``; NaN at draws whose solve failed (callers drop those draws).
    status
        ``(S,)`` :class:`~twin_uq.simulate.SolveStatus`; ``successful`` means every
        output is finite.
    """

    def one(th):
        traj = solve(model, th, covariates, schedule, times, settings, change_times=change_times)
        return traj.outputs, traj.status

    f, status = jax.vmap(one)(theta)
    ok = status == SolveStatus.successful
    safe = jnp.where(ok[:, None, None], f, 1.0)  # keep NaN out of the noise arithmetic
    y = add_noise(key, safe, error_code, add, prop, nu)
    nan = jnp.nan
    return (
        jnp.where(ok[:, None, None], f, nan),
        jnp.where(ok[:, None, None], y, nan),
        status,
    )
