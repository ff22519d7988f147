"""One patient's doses resolved with its parameters: the events every solve path applies.

:func:`resolve_doses` turns a padded :class:`~twin_uq.simulate.schedule.Schedule` and the
individual parameters into :class:`DoseEvents`, ``E`` elementary events with a static
``E`` (fixed by the schedule's padded sizes), so that it runs under ``jit`` and ``vmap``
and is differentiable in ``theta`` through event times (lag, modelled duration,
``F·AMT/RATE``), amounts (``F``) and rates (``R``, ``F·AMT/D``).

NONMEM semantics, per target compartment with its declared
:class:`~twin_uq.model.base.DoseParameters` (missing: ``ALAG = 0``, ``F = 1``):

=================  ============  =========  =============  ================
record             enters at     amount     rate           duration
=================  ============  =========  =============  ================
bolus              ``t + ALAG``  ``F·AMT``  —              —
``RATE > 0``       ``t + ALAG``  ``F·AMT``  ``RATE``       ``F·AMT/RATE``
``RATE = -1``      ``t + ALAG``  ``F·AMT``  ``R``          ``F·AMT/R``
``RATE = -2``      ``t + ALAG``  ``F·AMT``  ``F·AMT/D``    ``D``
=================  ============  =========  =============  ================

An event at ``time`` applies ``y = keep·y + set_state + jump`` and
``r = keep·r + rate_change`` to the state ``y`` and the running input-rate vector ``r``
(``dy/dt = f(y) + r``). At one time the order is: resets (``order`` 0), steady-state sets
(1), doses (2), then observations (3, the solve paths' own): an observation at a dose time
sees the post-dose state. Among events of one order, the order of the array.

The events, in this order of the array: resets, steady-state sets, boluses, infusion
starts, infusion stops, modelled-infusion starts and stops, then the steady-state doses'
tails. A schedule without resets, modelled infusions or steady state therefore gives
exactly the events of before (boluses, infusion starts, infusion stops) with the same
numbers, bit for bit.

A reset (``Reset``, and a steady-state dose with ``ss=1``) sets every state and running
infusion to 0: the later stop of an infusion running at the reset is cancelled (it would
otherwise subtract a rate that is no longer there). Doses whose lagged arrival or lagged
start is after the reset still arrive. Times are clipped into ``[0, t_end]``; events after
``t_end`` cannot change any requested state and have no effect.

Steady state (``ss=1``, ``ss=2``): a set at the dose's nominal time and the tails of its
past doses (:mod:`twin_uq.simulate.steady_events`, computed by
:mod:`twin_uq.simulate.steady_state`); the dose itself is one of the ordinary events. A
constant steady-state infusion (``Infusion(t, RATE, math.inf, ss=1)``, NONMEM ``SS=1,
AMT=0, RATE>0, II=0``) is its plateau at ``t`` for the rate ``F·RATE`` (the declared
bioavailability scales what enters), which, as in NONMEM, ends at ``t``.

Checked against NONMEM's own runs of the 29 dosing scenarios of mrgsolve's nmtests
(``tests/conformance/test_nmtests_dosing.py``) on the exact path.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from twin_uq.errors import InputError
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.events import dose_state_index
from twin_uq.simulate.schedule import PatientInputs, Schedule
from twin_uq.simulate.segments import change_events, check_piecewise, segment_index
from twin_uq.simulate.status import SolveStatus
from twin_uq.simulate.steady_events import DoseSlots, steady_state_events

__all__ = [
    "ORDER_DOSE",
    "ORDER_OBSERVATION",
    "ORDER_RESET",
    "ORDER_STEADY",
    "DoseEvents",
    "check_dose_declarations",
    "compartment_dose_parameters",
    "resolve_doses",
]

ORDER_RESET, ORDER_STEADY, ORDER_DOSE, ORDER_OBSERVATION = 0, 1, 2, 3
"""Tie-break at equal times: resets, steady-state sets, doses, then observations."""


class DoseEvents(eqx.Module):
    """One patient's doses resolved with its parameters: ``E`` elementary events.

    ``E`` is static (the schedule's padded sizes). Leading batch axes allowed.

    Attributes
    ----------
    time
        ``(E,)`` when each event acts (lag applied), clipped into ``[0, t_end]``.
    order
        ``(E,)`` tie-break at equal times: 0 reset, 1 steady-state set, 2 dose.
    keep
        ``(E,)`` 1, or 0 to set the states and the running rates to zero first.
    set_state
        ``(E, n)`` added to the state after ``keep`` (a steady state).
    jump
        ``(E, n)`` added to the state (a bolus: ``F·AMT`` in its compartment).
    rate_change
        ``(E, n)`` added to the running input-rate vector from ``time`` on.
    mask
        ``(E,)`` ``False`` for padding (its effects are zero and ``keep`` is 1).
    """

    time: Float[Array, "... E"]
    order: Int[Array, "... E"]
    keep: Float[Array, "... E"]
    set_state: Float[Array, "... E n"]
    jump: Float[Array, "... E n"]
    rate_change: Float[Array, "... E n"]
    mask: Bool[Array, "... E"]

    @property
    def n_events(self) -> int:
        """The static number of events ``E``."""
        return self.time.shape[-1]


def compartment_dose_parameters(
    model: Model, theta: dict[str, Float[Array, ""]], dtype
) -> tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, " n"], Float[Array, " n"]]:
    """Lag, bioavailability, rate and duration of doses into each state, ``4 x (n,)``.

    From ``model.dose_parameters`` (static) and the individual parameters ``theta``;
    undeclared: lag 0, ``F`` 1, and 1 as a placeholder for an undeclared rate or duration
    (records that need one are refused by :func:`check_dose_declarations`, and give NaN
    rates inside compiled code).
    """
    n = len(model.states)
    declared = dict(model.dose_parameters)
    one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)

    def vector(role: str, default: Array) -> Array:
        values = []
        for j in range(n):
            name = getattr(declared[j + 1], role) if j + 1 in declared else None
            values.append(default if name is None else jnp.asarray(theta[name], dtype))
        return jnp.stack(values)

    return (
        vector("lag", zero),
        vector("bioavailability", one),
        vector("rate", one),
        vector("duration", one),
    )


def _declared(model: Model, role: str) -> np.ndarray:
    """``(n,)`` whether each state has a declared ``role`` (static)."""
    declared = dict(model.dose_parameters)
    return np.array(
        [
            j + 1 in declared and getattr(declared[j + 1], role) is not None
            for j in range(len(model.states))
        ]
    )


def check_dose_declarations(model: Model, schedule: Schedule) -> None:
    """Refuse a concrete schedule the model cannot dose: an ``InputError`` naming what to do.

    Checks every live record's compartment against the model's states, and that
    ``RATE = -1`` / ``-2`` records (:class:`~twin_uq.simulate.records.ModelledInfusion`)
    go into compartments that declare a rate / a duration. Works on one schedule or a
    stacked batch (concrete arrays, not inside ``jit``).
    """
    n = len(model.states)
    groups = (
        ("bolus", schedule.bolus_cmt, schedule.bolus_mask),
        ("infusion", schedule.infusion_cmt, schedule.infusion_mask),
        ("modelled infusion", schedule.modelled_cmt, schedule.modelled_mask),
    )
    for kind, cmt, mask in groups:
        cmt, mask = np.asarray(cmt), np.asarray(mask, bool)
        bad = mask & ((cmt < 0) | (cmt > n))
        if bad.any():
            raise InputError(
                f"A {kind} goes into compartment {int(cmt[bad][0])}, but model {model.name!r} "
                f"has compartments 1..{n} {model.states} (0 = the default dose compartment)."
            )
    cmt = np.asarray(schedule.modelled_cmt)
    state = np.where(cmt == 0, model.default_dose_cmt, cmt) - 1
    live = np.asarray(schedule.modelled_mask, bool)
    by = np.asarray(schedule.modelled_by)
    for code, role, letter, unit in (
        (-1, "rate", "R", "amount/time"),
        (-2, "duration", "D", "time"),
    ):
        missing = live & (by == code) & ~_declared(model, role)[np.clip(state, 0, n - 1)]
        if missing.any():
            k = int(state[missing][0]) + 1
            raise InputError(
                f"A RATE={code} dose (ModelledInfusion by={role!r}) goes into compartment {k} "
                f"({model.states[k - 1]!r}) of model {model.name!r}, which declares no modelled "
                f"{role} {letter} there. Declare one: model = tq.with_dose_parameters(model, "
                f"cmt={k}, {role}=tq.Parameter('{letter}{k}', '{unit}', typical_value))."
            )


def resolve_doses(
    model: Model,
    settings: SolverSettings,
    theta_vec: Float[Array, " K"],
    patient: PatientInputs,
    t_end: Float[Array, ""],
) -> tuple[DoseEvents, SolveStatus]:
    """One patient's :class:`DoseEvents` for the parameters ``theta_vec``, and a status.

    Parameters
    ----------
    model, settings
        The model (its ``dose_parameters``) and the solver settings (``max_ss_tails``).
    theta_vec
        Individual parameters in ``model.parameter_names`` order, natural scale, ``(K,)``;
        or ``(S, K)`` piecewise constant from ``patient.change_time`` on
        (:mod:`twin_uq.simulate.segments`): each dose then takes its segment's lag, ``F``,
        rate and duration, and the change times are appended as neutral events.
    patient
        Covariates, the unbatched schedule and the times (only the schedule's doses are
        read here, and the covariates for a steady state).
    t_end
        The latest requested time: event times are clipped into ``[0, t_end]``, and
        events after it have no effect.

    Returns
    -------
    events, status
        The events in the array order of the module docstring; ``SolveStatus.successful``
        or why the doses cannot be resolved (``ss_tails_exceeded``, a steady state's own
        status).
    """
    covariates, s = patient.covariates, patient.schedule
    dtype = jnp.result_type(theta_vec.dtype, float)
    t_end = jnp.asarray(t_end, dtype)
    if check_piecewise(theta_vec, patient.change_time):
        return _resolve_piecewise(model, settings, theta_vec, patient, t_end, dtype)
    th = model.theta_dict(theta_vec)
    lag_c, f_c, r_c, d_c = compartment_dose_parameters(model, th, dtype)
    return _resolve(model, settings, theta_vec, covariates, s, t_end, (lag_c, f_c, r_c, d_c))


def _resolve_piecewise(model, settings, theta, patient: PatientInputs, t_end, dtype):
    """:func:`resolve_doses` for parameters ``(S, K)`` piecewise constant in time.

    Each dose takes the lag, ``F``, rate and duration of the segment its record's time
    falls in; the segment starts after the first are appended as neutral events
    (:func:`twin_uq.simulate.segments.change_events`), after every dose event.
    """
    s, change_time = patient.schedule, patient.change_time
    if s.n_steady:
        raise InputError(
            "Steady-state doses (SS=1/2) with covariates that change within a patient are "
            "not supported: the steady state would need the parameters of an infinite past. "
            "Give the doses explicitly (ADDL) or keep the covariates constant before them."
        )
    per_segment = jax.vmap(
        lambda tv: jnp.stack(compartment_dose_parameters(model, model.theta_dict(tv), dtype))
    )(theta)  # (S, 4, n)
    # Each dose's compartment parameters: those of the segment of its record's time.
    parts = tuple(per_segment[:, j, :] for j in range(4))
    events, status = _resolve(
        model, settings, theta[0], patient.covariates, s, t_end, parts, change_time
    )
    time, keep, zeros, mask = change_events(change_time, t_end, len(model.states), dtype)
    m = time.shape[0]
    events = DoseEvents(
        time=jnp.concatenate([events.time, time]),
        order=jnp.concatenate([events.order, jnp.full(m, ORDER_DOSE, jnp.int32)]),
        keep=jnp.concatenate([events.keep, keep]),
        set_state=jnp.concatenate([events.set_state, zeros]),
        jump=jnp.concatenate([events.jump, zeros]),
        rate_change=jnp.concatenate([events.rate_change, zeros]),
        mask=jnp.concatenate([events.mask, mask]),
    )
    return events, status


def _resolve(model, settings, theta_vec, covariates, s, t_end, dose_params, change_time=None):
    """The body of :func:`resolve_doses`.

    ``dose_params``: lag, ``F``, rate and duration per compartment, ``4 x (n,)``, or
    ``4 x (S, n)`` with ``change_time`` ``(S,)`` (each dose reads the row of the segment
    of its record's time; a steady state is refused before).
    """
    dtype = jnp.result_type(theta_vec.dtype, float)
    n = len(model.states)
    lag_c, f_c, r_c, d_c = dose_params
    if change_time is not None:
        rows = {
            "bolus": segment_index(change_time, s.bolus_time),
            "infusion": segment_index(change_time, s.infusion_start),
            "modelled": segment_index(change_time, s.modelled_start),
        }

        def at(c, idx, kind):
            return c[rows[kind], idx]
    else:

        def at(c, idx, kind):
            return c[idx]

    def onehot(cmt):
        return jax.nn.one_hot(dose_state_index(model, cmt), n, dtype=dtype)

    # Boluses: F·AMT at t + ALAG; no effect after t_end.
    idx_b = dose_state_index(model, s.bolus_cmt)
    # Padding keeps its time (0): no grid point moves with the lag.
    lag_b = jnp.where(s.bolus_mask, at(lag_c, idx_b, "bolus"), 0.0)
    time_b = s.bolus_time + lag_b
    live_b = s.bolus_mask & (time_b <= t_end)
    amount_b = at(f_c, idx_b, "bolus") * s.bolus_amount
    jump_b = onehot(s.bolus_cmt) * jnp.where(live_b, amount_b, 0.0)[:, None]

    # Infusions (RATE > 0): RATE from t + ALAG over F·AMT/RATE = F·duration. Written as
    # stop + ALAG + (F - 1)·duration so that ALAG = 0, F = 1 give the stop time itself.
    # A constant steady-state infusion (infinite stop) acts through its steady-state set.
    idx_i = dose_state_index(model, s.infusion_cmt)
    constant = jnp.isinf(s.infusion_stop)
    duration_i = jnp.where(constant, 0.0, s.infusion_stop - s.infusion_start)
    lag_i = jnp.where(s.infusion_mask, at(lag_c, idx_i, "infusion"), 0.0)
    start_i = s.infusion_start + lag_i
    f_i = at(f_c, idx_i, "infusion")
    stop_i = jnp.where(constant, jnp.inf, s.infusion_stop + lag_i + (f_i - 1.0) * duration_i)
    rate_i = onehot(s.infusion_cmt) * jnp.where(s.infusion_mask & ~constant, s.infusion_rate, 0.0)[
        :, None
    ].astype(dtype)

    # Modelled infusions: RATE = -1 at R over F·AMT/R, RATE = -2 over D at F·AMT/D.
    idx_m = dose_state_index(model, s.modelled_cmt)
    by_rate = s.modelled_by == -1
    amount_m = at(f_c, idx_m, "modelled") * s.modelled_amount
    r_m, d_m = at(r_c, idx_m, "modelled"), at(d_c, idx_m, "modelled")
    rate_m = jnp.where(by_rate, r_m, amount_m / d_m)
    lag_m = jnp.where(s.modelled_mask, at(lag_c, idx_m, "modelled"), 0.0)
    start_m = s.modelled_start + lag_m
    duration_m = jnp.where(by_rate, amount_m / r_m, d_m)
    stop_m = start_m + duration_m
    undeclared = jnp.where(
        by_rate,
        ~jnp.asarray(_declared(model, "rate"))[idx_m],
        ~jnp.asarray(_declared(model, "duration"))[idx_m],
    )
    rate_m = jnp.where(undeclared, jnp.nan, rate_m)  # refused earlier when concrete
    rate_mv = onehot(s.modelled_cmt) * jnp.where(s.modelled_mask, rate_m, 0.0)[:, None]

    # Resets: keep = 0 (no effect after t_end, where a clipped reset would hide the state
    # an observation at t_end sees). A steady-state set with ss=1 resets as well.
    live_r = s.reset_mask & (s.reset_time <= t_end)
    resets_t, resets_live = s.reset_time, live_r
    status = SolveStatus.successful
    nb, ni, nm, nr, nss = s.n_bolus, s.n_infusion, s.n_modelled, s.n_reset, s.n_steady
    if nss:  # static: only schedules with steady-state doses
        slots = DoseSlots(
            t0=jnp.concatenate([s.bolus_time, s.infusion_start, s.modelled_start]).astype(dtype),
            lag=jnp.concatenate([lag_b, jnp.where(constant, 0.0, lag_i), lag_m]),
            amount=jnp.concatenate([amount_b, f_i * s.infusion_rate * duration_i, amount_m]).astype(
                dtype
            ),
            rate=jnp.concatenate(
                [
                    jnp.zeros(nb, dtype),
                    jnp.where(constant, f_i * s.infusion_rate, s.infusion_rate),
                    rate_m,
                ]
            ).astype(dtype),
            duration=jnp.concatenate([jnp.zeros(nb, dtype), f_i * duration_i, duration_m]),
            state=jnp.concatenate([idx_b, idx_i, idx_m]),
            ii=jnp.concatenate([s.bolus_ii, s.infusion_ii, s.modelled_ii]).astype(dtype),
            ss=jnp.concatenate([s.bolus_ss, s.infusion_ss, s.modelled_ss]),
        )
        steady, status = steady_state_events(
            model, settings, theta_vec, covariates, s, slots, t_end
        )
        resets_t = jnp.concatenate([resets_t, steady.set_time])
        resets_live = jnp.concatenate([resets_live, steady.set_resets])

    # Later stops of infusions running at a reset are cancelled.
    stop_i_rate = _cancel_after_reset(-rate_i, start_i, stop_i, resets_t, resets_live)
    stop_m_rate = _cancel_after_reset(-rate_mv, start_m, stop_m, resets_t, resets_live)

    zeros = lambda k: jnp.zeros((k, n), dtype)  # noqa: E731
    n_doses = nb + 2 * ni + 2 * nm
    parts = {
        "time": [s.reset_time, time_b, start_i, stop_i, start_m, stop_m],
        "order": [jnp.full(nr, ORDER_RESET), jnp.full(n_doses, ORDER_DOSE)],
        "keep": [jnp.where(live_r, 0.0, 1.0), jnp.ones(n_doses)],
        "set_state": [zeros(nr + n_doses)],
        "jump": [zeros(nr), jump_b, zeros(2 * ni + 2 * nm)],
        "rate_change": [zeros(nr + nb), rate_i, stop_i_rate, rate_mv, stop_m_rate],
        "mask": [
            s.reset_mask,
            s.bolus_mask,
            s.infusion_mask,
            s.infusion_mask,
            s.modelled_mask,
            s.modelled_mask,
        ],
    }
    if nss:
        # Sets after the resets, tails after the doses (array order = order at ties).
        tail_rate = jnp.where(
            steady.tail_is_stop[:, None],
            _cancel_after_reset(
                steady.tail_rate, steady.tail_on, steady.tail_time, resets_t, resets_live
            ),
            steady.tail_rate,
        )
        n_tails = steady.tail_time.shape[0]
        insert = {
            "time": (steady.set_time, steady.tail_time),
            "order": (jnp.full(nss, ORDER_STEADY), jnp.full(n_tails, ORDER_DOSE)),
            "keep": (steady.set_keep, jnp.ones(n_tails)),
            "set_state": (steady.set_state, zeros(n_tails)),
            "jump": (zeros(nss), steady.tail_jump),
            "rate_change": (steady.set_rate, tail_rate),
            "mask": (s.steady_mask, steady.tail_live),
        }
        for name, (at_sets, tails) in insert.items():
            flat = jnp.concatenate(parts[name])
            parts[name] = [flat[:nr], at_sets, flat[nr:], tails]
    time = jnp.concatenate(parts["time"]).astype(dtype)
    events = DoseEvents(
        time=jnp.clip(time, 0.0, t_end),
        order=jnp.concatenate(parts["order"]).astype(jnp.int32),
        keep=jnp.concatenate(parts["keep"]).astype(dtype),
        set_state=jnp.concatenate(parts["set_state"]).astype(dtype),
        jump=jnp.concatenate(parts["jump"]).astype(dtype),
        rate_change=jnp.concatenate(parts["rate_change"]).astype(dtype),
        mask=jnp.concatenate(parts["mask"]),
    )
    return events, status


def _cancel_after_reset(
    rate_change: Float[Array, "k n"],
    on: Float[Array, " k"],
    off: Float[Array, " k"],
    reset_time: Float[Array, " r"],
    reset_live: Bool[Array, " r"],
) -> Float[Array, "k n"]:
    """``rate_change`` of stop events, zero where a reset falls in ``(on, off]``.

    A reset at ``on`` acts before the start (resets come first at equal times), one at
    ``off`` before the stop.
    """
    if reset_time.shape[0] == 0 or rate_change.shape[0] == 0:
        return rate_change
    hit = (
        reset_live[None, :]
        & (reset_time[None, :] > on[:, None])
        & (reset_time[None, :] <= off[:, None])
    )
    return jnp.where(jnp.any(hit, axis=1)[:, None], 0.0, rate_change)
