"""Steady-state doses (NONMEM ``SS=1``, ``SS=2``) as events: the set, and the tails.

A steady-state dose at nominal time ``t0`` with interdose interval ``II`` stands for the
same dose given at ``t0 - k·II``, ``k = 1, 2, …`` (same lag, ``F``, rate and duration),
followed by the dose at ``t0`` itself (an ordinary event of
:func:`~twin_uq.simulate.dose_events.resolve_doses`). Its events:

* the **set** at ``t0`` (``order`` 1, after resets and before doses at ``t0``):
  ``keep = 0`` for ``SS=1`` (reset, then the steady state) or 1 for ``SS=2`` (added),
  ``set_state = y_ss`` and ``rate_change = r_ss``, the state and the running input rate
  at ``t0-`` of the periodic regime (:func:`twin_uq.simulate.steady_state.steady_state`);
* the **tails** (:func:`twin_uq.simulate.steady_state.steady_state_tails`): the past
  doses that still act after ``t0`` — the end of an infusion running at ``t0`` (``-rate``
  at ``t0 - k·II + ALAG + DUR``), and a past dose whose lagged arrival is at or after
  ``t0`` (``ALAG >= k·II``: a bolus jump, or an infusion start and its end).
  ``k = 1 … max_ss_tails`` (``SolverSettings.max_ss_tails``), two events each (arrival,
  end): a static number. A dose whose past doses act beyond that many intervals gives
  ``SolveStatus.ss_tails_exceeded``, never a truncated steady state.

A constant steady-state infusion (``II = 0``) has no tails, and, as in NONMEM, the
infusion whose plateau ``y_ss`` is ends at ``t0`` (``r_ss = 0``): the record's own dose
(``AMT = 0``) adds nothing. A reset (``ss=1``) between ``t0`` and a tail cancels an
infusion end as it does for any infusion running at a reset.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from twin_uq._types import CovariateVector, FloatScalar, IntScalar, ParamVector
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.schedule import STEADY_BOLUS, STEADY_INFUSION, Schedule
from twin_uq.simulate.status import STATUS_INFO, SolveStatus
from twin_uq.simulate.steady_state import SteadyDose, steady_state, steady_state_tails

__all__ = ["DoseSlots", "SteadyEvents", "steady_state_events"]


class DoseSlots(NamedTuple):
    """Every dose slot of a schedule resolved with the parameters, ``(S,)`` each.

    ``S = n_bolus + n_infusion + n_modelled``, in that order (the schedule's slots).
    ``amount`` is ``F·AMT``; ``rate`` and ``duration`` the infusion's (0 for a bolus;
    a constant infusion has ``duration`` 0 and ``amount`` 0); ``lag`` the compartment's;
    ``state`` the 0-based target state.
    """

    t0: Float[Array, " S"]
    lag: Float[Array, " S"]
    amount: Float[Array, " S"]
    rate: Float[Array, " S"]
    duration: Float[Array, " S"]
    state: Int[Array, " S"]
    ii: Float[Array, " S"]
    ss: Int[Array, " S"]


class SteadyEvents(NamedTuple):
    """The events of the steady-state doses: ``N`` sets and ``N·2·max_ss_tails`` tails.

    Sets: ``set_time``, ``set_keep`` ``(N,)``, ``set_state``, ``set_rate`` ``(N, n)``,
    ``set_live`` (acting: a real dose at or before ``t_end``), ``set_resets`` (a live
    ``SS=1`` set, which cancels the stops of infusions running at it). Tails:
    ``tail_time``, ``tail_on`` (when what the tail ends was switched on, for the reset
    rule), ``tail_jump``, ``tail_rate`` ``(M, n)``, ``tail_live``, ``tail_is_stop``.
    """

    set_time: Float[Array, " N"]
    set_keep: Float[Array, " N"]
    set_state: Float[Array, "N n"]
    set_rate: Float[Array, "N n"]
    set_live: Bool[Array, " N"]
    set_resets: Bool[Array, " N"]
    tail_time: Float[Array, " M"]
    tail_on: Float[Array, " M"]
    tail_jump: Float[Array, "M n"]
    tail_rate: Float[Array, "M n"]
    tail_live: Bool[Array, " M"]
    tail_is_stop: Bool[Array, " M"]


def steady_state_events(
    model: Model,
    settings: SolverSettings,
    theta_vec: ParamVector,
    covariates: CovariateVector,
    schedule: Schedule,
    slots: DoseSlots,
    t_end: FloatScalar,
) -> tuple[SteadyEvents, SolveStatus]:
    """The sets and tails of the schedule's steady-state doses, and a status.

    The status is the first failure among live steady states (in the schedule's order:
    the steady state's own, then ``ss_tails_exceeded``); ``successful`` otherwise.
    """
    n = len(model.states)
    dtype = slots.t0.dtype
    nb, ni = schedule.n_bolus, schedule.n_infusion
    kind, index = schedule.steady_kind, schedule.steady_index
    flat = jnp.where(
        kind == STEADY_BOLUS, index, jnp.where(kind == STEADY_INFUSION, nb + index, nb + ni + index)
    )
    dose = jax.tree.map(lambda a: a[flat], slots)
    live = schedule.steady_mask & (dose.t0 <= t_end)
    # Padding and doses after t_end get a harmless dose: nothing every interval of 1.
    steady = SteadyDose(
        amount=jnp.where(live, dose.amount, 0.0),
        cmt=dose.state,
        rate=jnp.where(live, dose.rate, 0.0),
        duration=jnp.where(live, dose.duration, 0.0),
        lag=jnp.where(live, dose.lag, 0.0),
        ii=jnp.where(live, dose.ii, 1.0),
    )

    def one(d: SteadyDose):
        y_ss, r_ss, status = steady_state(model, settings, theta_vec, covariates, d)
        tails, tail_status = steady_state_tails(d, settings.max_ss_tails)
        status = SolveStatus.where(status == SolveStatus.successful, tail_status, status)
        return y_ss, r_ss, tails, status._value

    y_ss, r_ss, tails, codes = jax.vmap(one)(steady)
    onehot = jax.nn.one_hot(dose.state, n, dtype=dtype)[:, None, :]  # (N, 1, n)
    m = settings.max_ss_tails
    t0 = dose.t0[:, None]
    # Tail times are after t0; an ending infusion was switched on at its arrival, or at
    # t0 by the set when it was already running (the first M slots are the arrivals of
    # the same past doses k = 1..M).
    on = t0 + jnp.concatenate([tails.time[:, :m], tails.time[:, :m]], axis=1)
    tail_live = live[:, None] & tails.mask

    def rows(a):  # (N, 2M, ...) -> (N·2M, ...)
        return a.reshape(-1, *a.shape[2:])

    events = SteadyEvents(
        set_time=dose.t0,
        set_keep=jnp.where(live & (dose.ss == 1), 0.0, 1.0).astype(dtype),
        set_state=jnp.where(live[:, None], y_ss, 0.0).astype(dtype),
        set_rate=jnp.where(live[:, None], r_ss, 0.0).astype(dtype),
        set_live=live,
        set_resets=live & (dose.ss == 1),
        tail_time=rows(t0 + tails.time),
        tail_on=rows(on),
        tail_jump=rows(jnp.where(tail_live, tails.jump, 0.0)[..., None] * onehot),
        tail_rate=rows(jnp.where(tail_live, tails.rate_change, 0.0)[..., None] * onehot),
        tail_live=rows(tail_live),
        tail_is_stop=rows(jnp.broadcast_to(jnp.arange(2 * m) >= m, tails.mask.shape)),
    )
    # The first failure among live steady states names the cause.
    failed = live & (codes != SolveStatus.successful._value)
    code = jnp.where(jnp.any(failed), codes[jnp.argmax(failed)], SolveStatus.successful._value)
    return events, _status_of(code)


def _status_of(code: IntScalar) -> SolveStatus:
    """The :class:`SolveStatus` whose integer value is ``code`` (traced)."""
    status = SolveStatus.successful
    for name in STATUS_INFO:
        member = getattr(SolveStatus, name)
        status = SolveStatus.where(code == member._value, member, status)
    return status
