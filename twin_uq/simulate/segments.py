"""Individual parameters that are piecewise constant in time (time-varying covariates).

A patient whose covariates change during the record has one parameter vector per
segment: ``theta`` ``(S, K)`` with segment starts ``change_time`` ``(S,)`` (0 first,
sorted, ``+inf`` for padding; :class:`~twin_uq.data.covariate_path.CovariateSegments`).
Segment ``s`` holds on ``[change_time[s], change_time[s + 1])``: a quantity at exactly a
change time (an observation, the start of an integration interval) sees the new
parameters.

Every solve path reuses its dose-event machinery: each change time is a neutral event
(:func:`change_events`: keep the state and the running rates, add nothing) resolved with
the doses (:func:`~twin_uq.simulate.dose_events.resolve_doses`), so the integration stops
there and restarts with the next segment's parameters, which each interval reads from its
start time (:func:`segment_index`). With ``S = 1`` (or no change times) nothing here runs
and every path computes what it computed before, bit for bit.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from twin_uq.errors import InputError

__all__ = ["change_events", "check_piecewise", "segment_index", "theta_at"]


def segment_index(change_time: Float[Array, " S"], t: Float[Array, ...]) -> Int[Array, ...]:
    """Index of the segment in force at ``t`` (the last start ``<= t``; 0 before the first)."""
    k = jnp.searchsorted(change_time, t, side="right") - 1
    return jnp.clip(k, 0, change_time.shape[0] - 1)


def theta_at(
    theta: Float[Array, "S K"], change_time: Float[Array, " S"], t: Float[Array, ...]
) -> Float[Array, "... K"]:
    """The parameters in force at ``t``: ``theta[segment_index(change_time, t)]``."""
    return theta[segment_index(change_time, t)]


def check_piecewise(theta, change_time) -> bool:
    """Whether ``theta`` is piecewise (``(S, K)`` with ``change_time`` ``(S,)``); static.

    Raises
    ------
    InputError
        For a 2-D ``theta`` without matching change times (or change times with a 1-D
        ``theta``).
    """
    if theta.ndim == 1 and change_time is None:
        return False
    if theta.ndim != 2 or change_time is None or change_time.shape != theta.shape[:1]:
        raise InputError(
            "Piecewise parameters need theta of shape (S, K) and change_times of shape "
            f"(S,); got theta {tuple(theta.shape)} and change_times "
            f"{None if change_time is None else tuple(change_time.shape)}."
        )
    return True


def change_events(change_time: Float[Array, " S"], t_end: Float[Array, ""], n: int, dtype):
    """The neutral events at the segment starts after the first: ``S - 1`` of each field.

    Returns ``(time, keep, zeros (S-1, n), mask)``; padding (``+inf``) and starts after
    ``t_end`` are masked out.
    """
    time = change_time[1:].astype(dtype)
    mask = jnp.isfinite(time) & (time <= t_end)
    m = time.shape[0]
    return jnp.where(mask, time, 0.0), jnp.ones(m, dtype), jnp.zeros((m, n), dtype), mask
