"""Applying resolved dose events to a state, an input rate and their sensitivities.

The adaptive ODE path (:mod:`twin_uq.simulate.ode`) and the fixed-step path
(:mod:`twin_uq.simulate.fixed_step`) consume a patient's
:class:`~twin_uq.simulate.dose_events.DoseEvents` (``E`` elementary events resolved with
the patient's parameters: lag, bioavailability, modelled rate and duration, resets and
steady states already applied) through the functions here, so that both agree on:

* padding (``mask == False``) has no effect: ``keep = 1``, no addition, time 0;
* events act in the order of their time, ties broken by ``order`` (reset, steady-state
  set, dose) and then by their position (:func:`event_order`);
* at an event, ``y+ = keep·y- + set_state + jump`` and ``r+ = keep·r- + rate_change``
  (``r`` the running input-rate vector, added to the model's ``dy/dt``).

Sensitivities
-------------
An event acts at a time ``tau(theta)`` that may move with the parameters (a lag time, a
modelled duration, ``F`` changing how long a fixed-rate infusion runs), so
``S = dy/dtheta`` jumps there (the sensitivity jump condition of a state jump at a
parameter-dependent time). Perturb ``theta`` by ``d``: the event moves by
``dtau = tau'·d``; the pre-event state at the new time is ``y- + S-·d + f-·dtau`` with
``f- = f(tau, y-) + r-`` the full vector field before the event; the post-event state
there is ``keep·(y- + S-·d + f-·dtau) + set + jump + (set' + jump')·d``; carried back to
the unperturbed time along the post-event field ``f+ = f(tau, y+) + r+`` it is the
post-event solution plus ``S+·d``, so

    S+ = keep·S- + set' + jump' + (keep·f- - f+)·tau'ᵀ,

and the rate's own sensitivity ``R = dr/dtheta`` (the sensitivity equations read
``S' = f_y S + f_theta + R``) jumps as ``R+ = keep·R- + rate_change'``. (``keep`` is 0
or 1, not differentiated.) For a dose at a fixed time ``tau' = 0`` and ``S+`` is
``keep·S- + set' + jump'``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from twin_uq._types import FloatScalar, ParamVector, States, StateVector

__all__ = [
    "EventArrays",
    "EventJacobians",
    "apply_event",
    "event_order",
    "live_events",
    "live_events_with_jacobians",
    "sensitivity_jump",
]


class EventArrays(NamedTuple):
    """The live part of a :class:`~twin_uq.simulate.dose_events.DoseEvents` (padding neutral).

    Attributes
    ----------
    time
        ``(E,)`` when each event acts (model time unit; padding at 0).
    keep
        ``(E,)`` 1, or 0 to zero the states and the running rates first.
    set_state, jump, rate_change
        ``(E, n_states)`` added to the state after ``keep`` / to the state / to the
        running input-rate vector (amount per time unit).
    """

    time: Float[Array, " E"]
    keep: Float[Array, " E"]
    set_state: Float[Array, "E n"]
    jump: Float[Array, "E n"]
    rate_change: Float[Array, "E n"]


class EventJacobians(NamedTuple):
    """Derivatives of :class:`EventArrays` with respect to ``theta`` (``K`` last).

    ``time`` ``(E, K)``; ``set_state``, ``jump``, ``rate_change`` ``(E, n, K)``.
    """

    time: Float[Array, "E K"]
    set_state: Float[Array, "E n K"]
    jump: Float[Array, "E n K"]
    rate_change: Float[Array, "E n K"]


def live_events(events: Any, dtype) -> EventArrays:
    """The events of a ``DoseEvents`` with padding made neutral, in ``dtype``.

    Padding keeps the state (``keep = 1``), adds nothing and sits at time 0 (where the
    schedule's padding always sat), so it only adds empty integration segments.
    """
    mask = events.mask
    col = mask[:, None]
    return EventArrays(
        time=jnp.where(mask, events.time, 0.0).astype(dtype),
        keep=jnp.where(mask, events.keep, 1.0).astype(dtype),
        set_state=jnp.where(col, events.set_state, 0.0).astype(dtype),
        jump=jnp.where(col, events.jump, 0.0).astype(dtype),
        rate_change=jnp.where(col, events.rate_change, 0.0).astype(dtype),
    )


def live_events_with_jacobians(
    events_of: Callable[[ParamVector], tuple[Any, Any]],
    theta: ParamVector,
    dtype,
) -> tuple[EventArrays, EventJacobians, Int[Array, " E"], Any]:
    """:func:`live_events` of ``events_of(theta)`` and their ``theta``-Jacobians (forward mode).

    ``events_of(theta) -> (DoseEvents, status)``, e.g. ``resolve_doses`` with the patient
    bound. Returns ``(events, jacobians, order, status)``.
    """

    def differentiable(th):
        ev, status = events_of(th)
        live = live_events(ev, dtype)
        return (live.time, live.set_state, live.jump, live.rate_change), (live, ev.order, status)

    jac, (live, order, status) = jax.jacfwd(differentiable, has_aux=True)(theta)
    return live, EventJacobians(*jac), order, status


def event_order(time: Float[Array, " E"], order: Int[Array, " E"]) -> Int[Array, " E"]:
    """Permutation that sorts events by time, then ``order``, then position (stable).

    Two stable argsorts: by ``order`` first, then by time. With all ``order`` equal it is
    ``argsort(time, stable=True)``, the order the solvers used before events had one.
    """
    by_order = jnp.argsort(order, stable=True)
    return by_order[jnp.argsort(time[by_order], stable=True)]


def apply_event(
    y: States,
    r: States,
    keep: Float[Array, " ..."],
    set_state: States,
    jump: States,
    rate_change: States,
) -> tuple[States, States]:
    """``(keep·y + set_state + jump, keep·r + rate_change)``: one event's action.

    With ``keep = 1`` and ``set_state = 0`` the state is ``y + jump`` to the last bit
    (``1·y`` and ``+ 0`` are exact), the arithmetic of the bolus jumps before events.
    """
    k = keep[..., None]
    return k * y + set_state + jump, k * r + rate_change


def sensitivity_jump(
    field: Callable[[FloatScalar, StateVector], StateVector],
    tau: FloatScalar,
    y: StateVector,
    r: StateVector,
    S: Float[Array, "n K"],
    R: Float[Array, "n K"],
    event: tuple,
    jacobian: tuple,
) -> tuple[StateVector, StateVector, Float[Array, "n K"], Float[Array, "n K"]]:
    """One event applied to the state, the rate and their sensitivities (module docstring).

    Parameters
    ----------
    field
        ``field(t, y)``: the model's right-hand side at ``t`` without the dose input rate.
    tau
        The event's time.
    y, r, S, R
        State ``(n,)``, input rate ``(n,)`` and their sensitivities ``(n, K)`` before it.
    event
        ``(keep, set_state, jump, rate_change)`` of this event (scalar, ``(n,)`` x 3).
    jacobian
        ``(time', set_state', jump', rate_change')``: ``(K,)`` and ``(n, K)`` x 3.

    Returns
    -------
    ``(y+, r+, S+, R+)``.
    """
    keep, set_state, jump, rate_change = event
    d_time, d_set, d_jump, d_rate = jacobian
    y_plus, r_plus = apply_event(y, r, keep, set_state, jump, rate_change)
    f_minus = field(tau, y) + r
    f_plus = field(tau, y_plus) + r_plus
    S_plus = keep * S + d_set + d_jump + jnp.outer(keep * f_minus - f_plus, d_time)
    R_plus = keep * R + d_rate
    return y_plus, r_plus, S_plus, R_plus
