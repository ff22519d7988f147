"""Turn a padded :class:`Schedule` into the arrays the solve paths need.

Shared by the ODE path (:mod:`twin_uq.simulate.ode`), the fixed-grid RK4 path
(:mod:`twin_uq.simulate.fixed_step`) and the exact path (:mod:`twin_uq.simulate.exact`)
so that they agree on every convention:

* ``cmt`` is 1-based (NONMEM); ``cmt == 0`` means ``model.default_dose_cmt``.
* Padding (``mask == False``) has no effect.
* Events after the last requested time ``t_end`` cannot influence any output; their
  times are clipped to ``t_end`` (so that no solver ever integrates towards ``+inf``)
  and their effect is switched off.
* A bolus at exactly an observation time is applied *before* the observation: the
  observation sees the post-dose state.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from twin_uq.model.base import Model
from twin_uq.simulate.schedule import Schedule

__all__ = [
    "bolus_jumps",
    "dose_events",
    "dose_state_index",
    "infusion_rate_vectors",
    "signal_inputs",
]


def dose_state_index(model: Model, cmt: Int[Array, "*batch"]) -> Int[Array, "*batch"]:
    """0-based state index of 1-based compartments, ``0`` mapping to the default compartment."""
    return jnp.where(cmt == 0, model.default_dose_cmt, cmt) - 1


def bolus_jumps(
    model: Model, schedule: Schedule, t_end: Float[Array, ""]
) -> Float[Array, "nb n_states"]:
    """State increment of each bolus (zero for padding and for doses after ``t_end``)."""
    n = len(model.states)
    live = schedule.bolus_mask & (schedule.bolus_time <= t_end)
    amount = jnp.where(live, schedule.bolus_amount, 0.0)
    onehot = jax.nn.one_hot(dose_state_index(model, schedule.bolus_cmt), n, dtype=amount.dtype)
    return onehot * amount[:, None]


def dose_events(
    model: Model, schedule: Schedule, t_end: Float[Array, ""], dtype
) -> tuple[Float[Array, " nb+2ni"], Float[Array, "nb+2ni n_states"]]:
    """Every dose event's time, clipped into ``[0, t_end]``, and the state jump it applies.

    Events in the order boluses, infusion starts, infusion stops (padding included); only
    a bolus jumps (:func:`bolus_jumps`), infusions switch rates instead. Both arrays in
    ``dtype``. The event list of the ODE and the fixed-grid paths.
    """
    n = len(model.states)
    event_t = jnp.clip(
        jnp.concatenate([schedule.bolus_time, schedule.infusion_start, schedule.infusion_stop]),
        0.0,
        t_end,
    ).astype(dtype)
    event_jump = jnp.concatenate(
        [
            bolus_jumps(model, schedule, t_end).astype(dtype),
            jnp.zeros((2 * schedule.n_infusion, n), dtype),
        ]
    )
    return event_t, event_jump


def infusion_rate_vectors(model: Model, schedule: Schedule) -> Float[Array, "ni n_states"]:
    """Rate each infusion adds to ``dy/dt`` while it runs (zero for padding)."""
    n = len(model.states)
    rate = jnp.where(schedule.infusion_mask, schedule.infusion_rate, 0.0)
    onehot = jax.nn.one_hot(dose_state_index(model, schedule.infusion_cmt), n, dtype=rate.dtype)
    return onehot * rate[:, None]


def signal_inputs(
    model: Model, schedule: Schedule, t: Float[Array, ""]
) -> Mapping[str, Float[Array, ""]]:
    """Measured signals at ``t``: linear interpolation between knots, ends held constant.

    Padding knots repeat the last knot (see :meth:`Schedule.build`), which leaves the
    interpolant unchanged.
    """
    return {
        name: jnp.interp(t, schedule.signal_time, schedule.signal_value[:, j])
        for j, name in enumerate(model.signals)
    }
