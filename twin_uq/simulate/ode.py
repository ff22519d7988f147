"""ODE path: diffrax integration split at dose events.

The patient's doses come resolved with its parameters as ``DoseEvents``
(:mod:`twin_uq.simulate.dose_events`: lag, bioavailability, modelled rate and duration,
resets and steady states applied; ``E`` events, times in ``[0, t_end]``, ``t_end`` the
latest requested time). Time ``[0, t_end]`` is cut at every event time; segment ``k``
runs from ``b_k`` to ``b_{k+1}`` with a constant input rate, and event ``k - 1`` acts at
its start (``y = keep·y + set_state + jump``, ``r = keep·r + rate_change``,
:mod:`twin_uq.simulate.event_jumps`). Events are sorted by time, then by their ``order``
(reset, steady-state set, dose), so the number of segments is static (``1 + E``) and a
``lax.scan`` runs them; empty segments (``t0 == t1``, from padding, events after
``t_end`` or simultaneous events) are handled by diffrax, which returns the initial state
at all save points without stepping.

Each segment saves at all observation times, sorted and clipped into the segment
(``SaveAt(ts)`` must be sorted and inside ``[t0, t1]``); an observation keeps the value of
the segment it belongs to: the last ``k`` with ``b_k <= t``. That makes an observation at
a dose time see the post-dose state.

Measured-signal knots are declared to the step-size controller as jump times, so steps
never straddle a kink of the interpolated input.

Gradients: solved with ``adjoint=diffrax.ForwardMode()`` so the solve is forward-mode
differentiable; :mod:`twin_uq.simulate.solve` wraps it in a ``custom_vjp`` (reverse mode
through the diffrax loop is never traced) built on :func:`solve_ode_sensitivities`, whose
sensitivities jump at events whose time, amount or rate moves with the parameters
(:func:`twin_uq.simulate.event_jumps.sensitivity_jump`).

Arithmetic: with ``keep = 1`` and no steady state an event is ``y + jump`` to the last
bit, as the bolus jumps were before events; the running rate is now accumulated event by
event instead of summed over the infusions running in each segment, which is the same
number except where infusions overlap (then it may differ in the last bit: (a + b) - a
is not always b).
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from twin_uq.errors import InputError
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.dose_events import resolve_doses
from twin_uq.simulate.event_jumps import (
    apply_event,
    event_order,
    live_events,
    live_events_with_jacobians,
    sensitivity_jump,
)
from twin_uq.simulate.events import signal_inputs
from twin_uq.simulate.schedule import PatientInputs, Schedule
from twin_uq.simulate.segments import check_piecewise, segment_index
from twin_uq.simulate.status import SolveStatus

__all__ = ["solve_ode", "solve_ode_sensitivities"]

_SOLVERS = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "kvaerno5": diffrax.Kvaerno5,
}


def _controller(
    model: Model, settings: SolverSettings, schedule: Schedule, norm=None
) -> diffrax.AbstractStepSizeController:
    extra = {} if norm is None else {"norm": norm}
    pid = diffrax.PIDController(rtol=settings.rtol, atol=settings.atol, **extra)
    if model.signals:
        return diffrax.ClipStepSizeController(pid, jump_ts=schedule.signal_time)
    return pid


def solve_ode(
    model: Model,
    settings: SolverSettings,
    theta: Float[Array, " K"],
    patient: PatientInputs,
) -> tuple[Float[Array, "T n_states"], SolveStatus]:
    """Integrate one patient and return states at ``times`` and how the solve ended.

    Parameters
    ----------
    model, settings
        The model and how to integrate it (``settings.method`` a diffrax solver name).
    theta
        Individual parameters in ``model.parameter_names`` order, natural scale, ``(K,)``;
        or ``(S, K)`` piecewise constant from ``patient.change_time`` on (each change time
        ends an integration segment; sensitivities are then with respect to all ``S·K``).
    patient
        Covariates, the schedule (its signal knots are the controller's jump times) and
        the observation times, in any order.

    Returns
    -------
    states
        ``(T, n_states)``.
    status
        ``successful``, or the first failure of a segment: ``max_steps_reached``,
        ``nonfinite`` (the model's rhs is NaN/inf where the failed segment starts: every
        step is rejected, which diffrax reports as a spent step budget) or
        ``solver_failed`` (:class:`~twin_uq.simulate.status.SolveStatus`); non-finite
        values after a successful solve are flagged by the caller after ``observe``.
    """
    states, _, status = _integrate(
        model, settings, theta, patient, _dose_events_of(model, settings, patient), False
    )
    return states, status


def solve_ode_sensitivities(
    model: Model,
    settings: SolverSettings,
    theta: Float[Array, " K"],
    patient: PatientInputs,
) -> tuple[Float[Array, "T n_states"], Float[Array, "T n_states K"], SolveStatus]:
    """:func:`solve_ode` and the forward sensitivities ``d states / d theta``.

    The sensitivity equations ``S' = (∂f/∂y) S + ∂f/∂θ``, ``S(0) = ∂y0/∂θ``, are integrated
    alongside the states (``K`` Jacobian-vector products of the right-hand side per
    stage), with the step-size controller looking at the states only: the steps, and so
    the states, are those of :func:`solve_ode`. At a dose event ``S`` jumps by the
    derivative of the event's amounts and rates and, when its time moves with ``theta``
    (lag, modelled duration), by the change of vector field across it times the time's
    derivative (:func:`twin_uq.simulate.event_jumps.sensitivity_jump`); the rate's own
    derivative enters the sensitivity equations. The sensitivities are those of the
    exact solution, accurate to about the solver tolerance (CVODES's and Stan's
    approach), not the derivative of the discrete solver. Differentiating through
    diffrax's loop instead (``jacfwd``) also carried the tangents through the controller
    and the dense output: on the 100-patient Bergman cohort its gradient cost ~5x the
    primal solve, this one ~4x (2026-12-02, commit 0d18b6a, benchmarks/RESULTS.md).

    Returns ``(states (T, n), sensitivities (T, n, K), status)``.
    """
    return _integrate(
        model, settings, theta, patient, _dose_events_of(model, settings, patient), True
    )


def _dose_events_of(model: Model, settings: SolverSettings, patient: PatientInputs):
    """``theta -> (DoseEvents, status)``: the patient's doses resolved with its parameters."""
    t_end = jnp.max(patient.times)

    def events_of(theta):
        return resolve_doses(model, settings, theta, patient, t_end)

    return events_of


def _segment_status(result: diffrax.RESULTS, rhs_finite) -> SolveStatus:
    """One segment's diffrax result as a :class:`SolveStatus`.

    A NaN/inf right-hand side makes the step-size controller reject every step until the
    budget is spent; ``rhs_finite`` (the rhs at the segment's start) tells that case apart
    so that the remedy points at the model rather than at ``max_steps``.
    """
    failure = SolveStatus.where(
        result == diffrax.RESULTS.max_steps_reached,
        SolveStatus.max_steps_reached,
        SolveStatus.solver_failed,
    )
    failure = SolveStatus.where(rhs_finite, failure, SolveStatus.nonfinite)
    return SolveStatus.where(result == diffrax.RESULTS.successful, SolveStatus.successful, failure)


def _rms_of_states(error: tuple) -> Float[Array, ""]:
    # The controller's error norm over the states only (the sensitivities ride along).
    return jnp.sqrt(jnp.mean(error[0] ** 2))


def _integrate(model, settings, theta, patient: PatientInputs, events_of, sensitivities: bool):
    """States (and sensitivities) at ``patient.times``; ``events_of(theta) -> (DoseEvents, status)``."""
    if settings.method not in _SOLVERS:
        raise InputError(
            f"Unknown ODE solver {settings.method!r} for model {model.name!r}; use one of "
            f"{sorted(_SOLVERS)} or 'exact'."
        )
    covariates, schedule, times = patient.covariates, patient.schedule, patient.times
    piecewise = check_piecewise(theta, patient.change_time)
    # Piecewise parameters (S, K): sensitivities are taken with respect to all S·K of
    # them (flattened), and each segment reads its row (``theta_of``).
    shape = theta.shape
    flat = theta.reshape(-1)

    def theta_of(flat_, k):
        return model.theta_dict(flat_.reshape(shape)[k] if piecewise else flat_)

    th = theta_of(flat, 0)
    cov = dict(zip(model.covariates, covariates, strict=True))
    n = len(model.states)
    K = flat.shape[0]
    dtype = jnp.result_type(theta.dtype, float)
    times = jnp.asarray(times, dtype)
    y0 = jnp.asarray(model.y0(th, cov), dtype)
    t_end = jnp.max(times)

    # The resolved dose events (times in [0, t_end]), sorted; segment k >= 1 starts with
    # event k - 1, segment 0 with a neutral one.
    if sensitivities:
        events, jacobians, order, dose_status = live_events_with_jacobians(
            lambda f: events_of(f.reshape(shape)), flat, dtype
        )
    else:
        resolved, dose_status = events_of(theta)
        events, order = live_events(resolved, dtype), resolved.order
    perm = event_order(events.time, order)
    n_seg = 1 + events.time.shape[0]
    bounds = jnp.concatenate([jnp.zeros((1,), dtype), events.time[perm], t_end[None]])

    def with_neutral_first(a, first):
        return jnp.concatenate([jnp.broadcast_to(first, (1, *a.shape[1:])).astype(dtype), a[perm]])

    seg_event = (
        with_neutral_first(events.keep, 1.0),
        with_neutral_first(events.set_state, 0.0),
        with_neutral_first(events.jump, 0.0),
        with_neutral_first(events.rate_change, 0.0),
    )
    seg_jacobian = tuple(with_neutral_first(a, 0.0) for a in jacobians) if sensitivities else None

    # Observation -> segment membership, on sorted times.
    t_order = jnp.argsort(times)
    t_sorted = times[t_order]
    seg_of_t = jnp.searchsorted(bounds[:-1], t_sorted, side="right") - 1
    # The parameter segment of each integration segment (from its start); 0 throughout
    # without change times, where it is never read.
    if piecewise:
        par_seg = segment_index(patient.change_time, bounds[:-1])
    else:
        par_seg = jnp.zeros(n_seg, jnp.int32)

    def rhs(t, y, th_=th):
        inputs = signal_inputs(model, schedule, t)
        return jnp.asarray(model.rhs(t, y, th_, inputs, cov), dtype)

    def vector_field(t, y, args):
        if piecewise:
            rate, k = args
            return rhs(t, y, theta_of(flat, k)) + rate
        return rhs(t, y) + args

    def augmented_field(t, ys, args):
        y, S = ys
        rate, d_rate, k = args
        inputs = signal_inputs(model, schedule, t)

        def f(y_, theta_):
            return jnp.asarray(model.rhs(t, y_, theta_of(theta_, k), inputs, cov), dtype)

        def tangent(s_k, e_k):
            return jax.jvp(f, (y, flat), (s_k, e_k))

        # vmap over the K directions; the primal is unbatched, so computed once.
        dy, dS = jax.vmap(tangent, in_axes=(1, 0), out_axes=(None, 1))(S, jnp.eye(K, dtype=dtype))
        # The dose input rate depends on theta too (modelled rate or duration, F).
        return dy + rate, dS + d_rate

    term = diffrax.ODETerm(augmented_field if sensitivities else vector_field)
    solver = _SOLVERS[settings.method]()
    controller = _controller(model, settings, schedule, _rms_of_states if sensitivities else None)
    T = times.shape[0]

    def segment(carry, xs):
        y, rate, status, saved = carry
        k, t0, t1, event, jacobian, p = xs
        field = (lambda t, y_: rhs(t, y_, theta_of(flat, p))) if piecewise else rhs
        if sensitivities:
            (y_, S), (rate_, d_rate) = y, rate
            y_, rate_, S, d_rate = sensitivity_jump(
                field, t0, y_, rate_, S, d_rate, event, jacobian
            )
            y, rate = (y_, S), (rate_, d_rate)
            args = (rate_, d_rate, p)
        else:
            y, rate = apply_event(y, rate, *event)
            args = (rate, p) if piecewise else rate
        sol = diffrax.diffeqsolve(
            term,
            solver,
            t0=t0,
            t1=t1,
            dt0=settings.dt0,
            y0=y,
            args=args,
            saveat=diffrax.SaveAt(ts=jnp.clip(t_sorted, t0, t1), t1=True),
            stepsize_controller=controller,
            # Forward-mode differentiable for the plain solve (the custom VJP of
            # twin_uq.simulate.solve); the sensitivity solve is never differentiated.
            adjoint=diffrax.RecursiveCheckpointAdjoint()
            if sensitivities
            else diffrax.ForwardMode(),
            max_steps=settings.max_steps,
            throw=False,
        )
        in_segment = seg_of_t == k
        saved = jax.tree.map(
            lambda ys, old: jnp.where(in_segment.reshape(-1, *([1] * (ys.ndim - 1))), ys[:-1], old),
            sol.ys,
            saved,
        )
        y_end = jax.tree.map(lambda ys: ys[-1], sol.ys)
        # Only for the status: the rhs where this segment starts (one evaluation).
        y_start, rate_start = (y[0], rate[0]) if sensitivities else (y, rate)
        rhs_finite = jnp.all(jnp.isfinite(field(t0, y_start) + rate_start))
        # The first failing segment names the cause (later ones start from its garbage).
        status = SolveStatus.where(
            status == SolveStatus.successful, _segment_status(sol.result, rhs_finite), status
        )
        return (y_end, rate, status, saved), None

    rate0 = jnp.zeros(n, dtype)
    if sensitivities:
        S0 = jax.jacfwd(lambda th_: jnp.asarray(model.y0(theta_of(th_, 0), cov), dtype))(flat)
        start = (y0, S0)
        rate0 = (rate0, jnp.zeros((n, K), dtype))
        empty = (jnp.zeros((T, n), dtype), jnp.zeros((T, n, K), dtype))
    else:
        start, empty = y0, jnp.zeros((T, n), dtype)
    init = (start, rate0, SolveStatus.successful, empty)
    xs = (jnp.arange(n_seg), bounds[:-1], bounds[1:], seg_event, seg_jacobian, par_seg)
    (_, _, status, saved), _ = jax.lax.scan(segment, init, xs)
    # A dose that could not be resolved (e.g. an unconverged steady state) names the cause.
    status = SolveStatus.where(dose_status == SolveStatus.successful, status, dose_status)
    back = jnp.argsort(t_order)
    if sensitivities:
        return saved[0][back], saved[1][back], status
    return saved[back], None, status
