"""Schedule conventions shared by every solve path: compartments and measured signals.

* ``cmt`` is 1-based (NONMEM); ``cmt == 0`` means ``model.default_dose_cmt``
  (:func:`dose_state_index`, used by :mod:`twin_uq.simulate.dose_events`).
* Measured signals are interpolated linearly between knots, ends held constant
  (:func:`signal_inputs`, the adaptive path's and the reference for the fixed grid's).

The doses themselves reach the solve paths (exact, adaptive, fixed-step) only as resolved
``DoseEvents`` (:func:`twin_uq.simulate.dose_events.resolve_doses`).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from twin_uq.model.base import Model
from twin_uq.simulate.schedule import Schedule

__all__ = [
    "dose_state_index",
    "signal_inputs",
]


def dose_state_index(model: Model, cmt: Int[Array, "*batch"]) -> Int[Array, "*batch"]:
    """0-based state index of 1-based compartments, ``0`` mapping to the default compartment."""
    return jnp.where(cmt == 0, model.default_dose_cmt, cmt) - 1


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
