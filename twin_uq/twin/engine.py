"""Compiled posterior-predictive simulation of one patient over all posterior draws.

:func:`predict_draws` is one ``jax.jit`` of a ``vmap`` of :func:`twin_uq.simulate.solve_outputs`
over draws, followed by residual noise. The model and solver settings are static
arguments, so JAX keeps one compiled function per (model, settings, array shapes) and
repeated predictions with the same shapes never retrace.
Schedules are padded to bucketed sizes (:func:`bucket_schedule`) so that different
regimens of similar size share one compiled function.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from twin_uq.inference.residual import residual_sd
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate import solve_outputs
from twin_uq.simulate.schedule import Schedule

__all__ = ["bucket_schedule", "predict_draws"]


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
    f: Float[Array, "S T O"],
    error_code: Int[Array, " O"],
    add: Float[Array, "S O"],
    prop: Float[Array, "S O"],
    nu: Float[Array, " S"],
) -> Float[Array, "S T O"]:
    """One noisy replicate of every prediction under each draw's residual error model."""
    code = jnp.broadcast_to(error_code[None, None, :], f.shape)
    sd = residual_sd(code, f, add[:, None, :], prop[:, None, :])
    k1, k2 = jax.random.split(key)
    normal = jax.random.normal(k1, f.shape)
    student = jax.random.t(k2, jnp.broadcast_to(nu[:, None, None], f.shape), f.shape)
    noise = jnp.where(code == 4, student, normal) * sd
    return jnp.where(code == 3, jnp.maximum(f, 1e-12) * jnp.exp(noise), f + noise)


@functools.partial(jax.jit, static_argnums=(0, 1))
def predict_draws(
    model: Model,
    settings: SolverSettings,
    theta: Float[Array, "S K"],
    covariates: Float[Array, " C"],
    schedule: Schedule,
    times: Float[Array, " T"],
    error_code: Int[Array, " O"],
    add: Float[Array, "S O"],
    prop: Float[Array, "S O"],
    nu: Float[Array, " S"],
    key: jax.Array,
) -> tuple[Float[Array, "S T O"], Float[Array, "S T O"], Bool[Array, " S"]]:
    """Noise-free and noisy outputs at ``times`` for every draw, and which solves worked.

    Returns
    -------
    f, y
        ``(S, T, O)``; NaN at draws whose solve failed (callers drop those draws).
    ok
        ``(S,)`` solve succeeded and every output is finite.
    """

    def one(th):
        _, out, ok = solve_outputs(model, th, covariates, schedule, times, settings)
        return out, ok & jnp.all(jnp.isfinite(out))

    f, ok = jax.vmap(one)(theta)
    safe = jnp.where(ok[:, None, None], f, 1.0)  # keep NaN out of the noise arithmetic
    y = add_noise(key, safe, error_code, add, prop, nu)
    nan = jnp.nan
    return (
        jnp.where(ok[:, None, None], f, nan),
        jnp.where(ok[:, None, None], y, nan),
        ok,
    )
