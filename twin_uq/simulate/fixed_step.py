"""Fixed-grid path: classical Runge–Kutta 4 on a grid that stops at every breakpoint.

For small non-stiff models fitted to a cohort, an adaptive solver under ``vmap`` spends
most of its time in the machinery around the arithmetic (the step-size controller, step
rejection, dense output, a ``while_loop`` that every patient runs as long as the hardest
one) and its gradient needs forward sensitivities. A fixed grid has none of that: the
number of steps is known when compiling, so the solve is one ``lax.scan`` that reverse
mode differentiates directly (measured on the 100-patient Bergman cohort: one
likelihood gradient 1.9 ms here against 7 ms with adaptive Tsit5 and sensitivities,
2026-12-02 at commit 26160cb; the solve's own share 1.44 ms, 0.94 ms in the cohort layout
of :func:`integrate_cohort_on_grid` and 0.58 ms in float32, 2026-12-02 at commit 897992a,
``benchmarks/RESULTS.md``).

Precision
---------
``settings.precision="float32"`` stores the grid's floating arrays and runs the scan in
float32; the grid itself is placed in float64 first (where each time falls is decided
exactly), and parameters in and states out keep the caller's type, so a float64
likelihood sees float64 predictions with float32 rounding (~1e-6 relative over a few
hundred steps).

The grid
--------
The uniform points ``0, h, 2h, ..., M h`` (``h = settings.fixed_step``, ``M h`` the
static ``settings.horizon`` rounded up) are merged with every observation time, dose
event (bolus, infusion start and stop; see below for doses that move) and signal knot, all clipped into ``[0, t_end]``
(``t_end`` the latest requested time) and sorted. Steps are therefore at most ``h`` long,
none straddles a dose, a rate change or a kink of an interpolated signal, and every
observation is a grid point (no interpolation of the solution). Points past ``t_end``
collapse onto it as steps of length zero, which leave the state unchanged.

Conventions are those of the adaptive path (:mod:`twin_uq.simulate.ode`): the doses are
the patient's resolved ``DoseEvents`` (:mod:`twin_uq.simulate.dose_events`), each applied
at its own grid point (``y = keep·y + set_state + jump``, ``r = keep·r + rate_change``,
in (time, order) order), so an observation at a dose time sees the post-dose state;
infusions add their rate from their start to their stop; signals are interpolated
linearly; events after ``t_end`` are switched off.

Doses that move with the parameters
-----------------------------------
When a dose may depend on the parameters (a declared lag, ``F``, modelled rate or
duration; modelled infusions, resets or steady states in the schedule:
:func:`doses_move`, decided statically), the precomputed grid holds only the points that
do not move; each solve resolves the doses for its ``theta`` and merges every event
into the grid at its time ``tau(theta)``, which splits the step containing it in two.
The step lengths are then differentiable in ``tau``, and the reverse-mode gradient is the
derivative of the discrete solution with respect to lag, duration and ``F`` as well
(it has a kink of RK4's error size where an event crosses a grid point). Otherwise the
doses are resolved once, when the grid is built, and the solve is the one it always was.
Parameters piecewise constant in time (time-varying covariates, ``fixed_grid(...,
piecewise=True)``) take the first way: their change times are inserted like moving doses
and each step uses the parameters in force at its start. A requested time past the horizon is not silently
reached with longer steps: the solve returns ``SolveStatus.beyond_horizon``.

Accuracy is that of RK4 with step ``h`` (global error ``O(h^4)``); there is no error
control during the solve, so a fit with ``method="rk4"`` re-solves a subset of its
posterior draws with an adaptive reference solver afterwards and reports the largest
difference in units of the residual SD (:mod:`twin_uq.inference.solver_check`). Explicit:
unsuitable for stiff models (an unstable step shows as non-finite values, a failed solve).
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from twin_uq.errors import InputError
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.dose_events import resolve_doses
from twin_uq.simulate.event_jumps import event_order, live_events
from twin_uq.simulate.schedule import PatientInputs, Schedule
from twin_uq.simulate.segments import segment_index
from twin_uq.simulate.status import SolveStatus

__all__ = [
    "FixedGrid",
    "cohort_grids",
    "fixed_grid",
    "integrate_cohort_on_grid",
    "integrate_on_grid",
    "n_uniform_steps",
    "solve_fixed_step",
]


def n_uniform_steps(settings: SolverSettings) -> int:
    """Number ``M`` of uniform steps of the grid: ``ceil(horizon / fixed_step)``."""
    if settings.horizon is None:
        raise InputError(
            "SolverSettings(method='rk4') has no horizon: the fixed grid's length must be "
            "known when compiling. twin_uq's entry points set it from the requested times; "
            "when calling solve_outputs yourself, pass settings.covering(times)."
        )
    return max(1, math.ceil(settings.horizon / settings.fixed_step - 1e-9))


class FixedGrid(eqx.Module):
    """Everything about one patient's fixed grid that does not depend on the parameters.

    Built by :func:`fixed_grid` from the schedule and the requested times; a cohort fit
    builds it once per patient and every log-density gradient reuses it (building it
    costs about as much as the RK4 solve itself). Leading batch axes allowed.

    Two kinds (:func:`doses_move`). When no dose depends on the parameters (the model
    declares no dose parameters; no modelled infusion, reset or steady state), the dose
    events are part of the grid: ``rate`` and ``jump`` hold them. Otherwise the grid holds
    only the points that do not move (``points``) and the doses are resolved at every
    solve (:func:`~twin_uq.simulate.dose_events.resolve_doses`) and inserted into it.

    Attributes
    ----------
    t0, step
        ``(S,)`` start and length of every step (model time unit; length 0 past ``t_end``).
    rate
        ``(S, n_states)`` infusion input ``dy/dt`` added during each step; ``None`` when
        it is zero throughout (:func:`cohort_grids` drops it: a saved addition per stage).
    inputs
        Each signal at the start, middle and end of every step: three dicts of ``(S,)``
        (empty dicts when the doses are resolved at each solve).
    start_jump, jump
        ``(n_states,)`` bolus jump at time 0 and ``(S, n_states)`` at the end of each
        step; ``jump`` is ``None`` when there is none after time 0.
    read
        ``(T,)`` grid point of each requested time (the last one at or before it).
    status
        ``SolveStatus.successful``, or ``SolveStatus.beyond_horizon`` when a time is past
        the horizon.
    points
        Doses resolved at each solve only: ``(S + 1,)`` the grid's points without the dose
        events, in the default float type (float64) whatever the solve's precision, so
        that each event is placed exactly; else ``None``.
    schedule, times
        Doses resolved at each solve only: the patient's schedule and requested times
        (default float type); else ``None``.
    settings
        Doses resolved at each solve only (static): the solver settings ``resolve_doses``
        reads.
    """

    t0: Float[Array, "... S"]
    step: Float[Array, "... S"]
    rate: Float[Array, "... S n"] | None
    inputs: tuple
    start_jump: Float[Array, "... n"]
    jump: Float[Array, "... S n"] | None
    read: Int[Array, "... T"]
    status: SolveStatus
    points: Float[Array, "... S1"] | None = None
    schedule: Schedule | None = None
    times: Float[Array, "... T"] | None = None
    settings: SolverSettings | None = eqx.field(static=True, default=None)


def doses_move(model: Model, schedule: Schedule) -> bool:
    """Whether a patient's dose events may depend on the parameters (static).

    True when the model declares any dose parameter (lag, F, modelled rate or duration:
    event times, amounts and rates move) or the schedule has slots for modelled
    infusions, resets or steady-state doses (a steady state depends on every parameter).
    Then the fixed grid leaves the doses out and each solve resolves and inserts them.
    """
    return bool(model.dose_parameters) or any(
        n > 0 for n in (schedule.n_modelled, schedule.n_reset, schedule.n_steady)
    )


def fixed_grid(
    model: Model,
    settings: SolverSettings,
    schedule: Schedule,
    times: Float[Array, " T"],
    dtype=None,
    piecewise: bool = False,
) -> FixedGrid:
    """The fixed grid of one patient (unbatched ``schedule``, ``times`` ``(T,)``).

    Built in the default float type (float64 in twin_uq), so that where each time falls
    is decided exactly; its floating arrays are then stored as ``dtype`` (default: the
    solve's, ``settings.precision``). ``piecewise`` (static): for parameters piecewise
    constant in time, whose change times are inserted at each solve like moving doses.
    """
    n = len(model.states)
    out_dtype = _solve_dtype(settings) if dtype is None else dtype
    dtype = jnp.result_type(float)
    times = jax.lax.stop_gradient(jnp.asarray(times, dtype))
    t_end = jnp.max(times)
    m = n_uniform_steps(settings)
    moving = piecewise or doses_move(model, schedule)
    if moving:
        events = None
        event_t = jnp.zeros((0,), dtype)
    else:
        # Nothing here depends on the parameters: any values resolve the same events.
        typical = jnp.asarray([p.typical for p in model.parameters], dtype)
        patient = PatientInputs(jnp.zeros(len(model.covariates), dtype), schedule, times)
        resolved, _ = resolve_doses(model, settings, typical, patient, t_end)
        events = live_events(resolved, dtype)
        event_t = events.time
    knots = schedule.signal_time.astype(dtype) if model.signals else jnp.zeros((0,), dtype)
    uniform = jnp.asarray(np.arange(m + 1) * settings.fixed_step, dtype)
    breaks = jnp.clip(jnp.concatenate([times, knots, event_t]), 0.0, t_end)
    grid, break_at = _merge_sorted(uniform, breaks)
    grid = jnp.minimum(grid, t_end)
    t0, step = grid[:-1], jnp.diff(grid)
    # Last grid point at or before each time (compare-all: a few thousand comparisons,
    # cheaper than a sort or a binary-search loop on CPU).
    read = jnp.sum(grid[None, :] <= times[:, None], axis=1) - 1
    beyond = t_end > m * settings.fixed_step * (1.0 + 1e-12)
    status = SolveStatus.where(beyond, SolveStatus.beyond_horizon, SolveStatus.successful)
    cast = lambda a: a.astype(out_dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a  # noqa: E731

    if moving:
        # The solve merges the events into `points` and interpolates the signals there.
        return FixedGrid(
            t0=cast(t0),
            step=cast(step),
            rate=None,
            inputs=({}, {}, {}),
            start_jump=jnp.zeros((n,), out_dtype),
            jump=None,
            read=read,
            status=status,
            points=grid,
            schedule=schedule,
            times=times,
            settings=settings,
        )

    # Each event has its own grid point: its jump is applied there once; simultaneous
    # points are zero-length steps, and a time reads the last of them (above), which has
    # seen every jump at that time.
    event_at = break_at[times.shape[0] + knots.shape[0] :]
    jump = jnp.zeros((grid.shape[0], n), dtype).at[event_at].add(events.jump)
    rate_change = jnp.zeros((grid.shape[0], n), dtype).at[event_at].add(events.rate_change)
    # The input rate of each step: the rate changes at its start point and before, summed
    # in time order (for infusions that do not overlap, exactly the rates themselves).
    _, rate = jax.lax.scan(lambda r, dr: (r + dr, r + dr), jnp.zeros((n,), dtype), rate_change)
    grid = FixedGrid(
        t0=t0,
        step=step,
        rate=rate[:-1],
        inputs=_signals_on_steps(model, schedule, t0, step, dtype),
        start_jump=jump[0],
        jump=jump[1:],
        read=read,
        status=status,
    )
    return jax.tree.map(cast, grid)


def _solve_dtype(settings: SolverSettings):
    """The floating type the fixed-step solve runs in (``settings.precision``)."""
    return jnp.float32 if settings.precision == "float32" else jnp.result_type(float)


@functools.partial(jax.jit, static_argnums=(0, 1, 4))
def _cohort_grids(model, settings, schedules, times, piecewise=False):
    return jax.vmap(lambda sc, ts: fixed_grid(model, settings, sc, ts, piecewise=piecewise))(
        schedules, times
    )


def cohort_grids(model: Model, settings: SolverSettings, arrays) -> FixedGrid:
    """Every patient's :class:`FixedGrid` for its observation times (leading axis ``P``).

    ``arrays`` is a :class:`twin_uq.data.CohortArrays`. Infusion rates and later jumps
    that are zero for the whole cohort are dropped (``None``), so that the compiled solve
    does not add zeros at every stage.
    """
    piecewise = getattr(arrays, "change_time", None) is not None
    grids = _cohort_grids(model, settings, arrays.schedule, arrays.obs_time, piecewise)
    if not np.any(np.asarray(grids.rate)):
        grids = eqx.tree_at(lambda g: g.rate, grids, None, is_leaf=lambda x: x is None)
    if not np.any(np.asarray(grids.jump)):
        grids = eqx.tree_at(lambda g: g.jump, grids, None, is_leaf=lambda x: x is None)
    return grids


def _rk4_step(f, y, xs):
    """One classical RK4 step of ``dy/dt = f(t, y, inputs) + rate`` then the step's jump.

    Shape-agnostic: one patient (``y`` ``(n,)``, scalar ``t``, ``h``) or a cohort laid out
    state-major (``y`` ``(n, P)``, ``t``, ``h`` ``(P,)`` broadcasting along the last axis).
    """
    t, h, rate, (in0, in_half, in1), jump = xs

    def g(t_, y_, inputs):
        dy = f(t_, y_, inputs)
        return dy if rate is None else dy + rate

    k1 = g(t, y, in0)
    k2 = g(t + 0.5 * h, y + 0.5 * h * k1, in_half)
    k3 = g(t + 0.5 * h, y + 0.5 * h * k2, in_half)
    k4 = g(t + h, y + h * k3, in1)
    y_next = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    if jump is not None:
        y_next = y_next + jump
    return y_next, y_next


def _path(f, y0, xs):
    """``(S + 1, ...)`` states at every grid point: ``y0`` then one RK4 step per row of ``xs``."""
    _, ys = jax.lax.scan(functools.partial(_rk4_step, f), y0, xs)
    return jnp.concatenate([y0[None], ys])


def _rk4_dose_step(f, carry, xs):
    """:func:`_rk4_step` with the running input rate carried and the step's end event.

    At the end of the step its event acts (neutral when none):
    ``y = keep·y + set_state + jump``, ``r = keep·r + rate_change``. Shape-agnostic as
    :func:`_rk4_step` (``keep`` a scalar, or ``(P,)`` broadcasting along the last axis).
    """
    y, r = carry
    t, h, inputs, (keep, set_state, jump, rate_change) = xs
    y_next, _ = _rk4_step(f, y, (t, h, r, inputs, None))
    y_next = keep * y_next + set_state + jump
    return (y_next, keep * r + rate_change), y_next


def _dose_path(f, y0, xs):
    """:func:`_path` for grids whose doses are resolved at the solve (rate starts at 0)."""
    _, ys = jax.lax.scan(functools.partial(_rk4_dose_step, f), (y0, jnp.zeros_like(y0)), xs)
    return jnp.concatenate([y0[None], ys])


def _steps_with_doses(
    model: Model,
    theta: Float[Array, " K"],
    covariates: Float[Array, " C"],
    grid: FixedGrid,
    change_time: Float[Array, " S"] | None = None,
):
    """One patient's steps with its doses resolved for ``theta`` and inserted (unbatched).

    Each event gets a grid point of its own at its time ``tau(theta)`` (after the grid's
    points at the same time, in (time, order) order among events), so the step that
    contains it is split in two at ``tau``: differentiable in ``tau`` (a lag, a modelled
    duration), the derivative of the discrete solution. Placed in the default float
    type, then the steps are stored in the solve's type.

    Returns ``(xs, read, status)``: the scan's rows ``(t0, step, inputs, (keep,
    set_state, jump, rate_change))``, each ``(S + E, ...)``, with the event acting at the
    end of each step; ``read`` ``(T,)``; the grid's status, or the doses' when they failed.
    """
    dtype = grid.t0.dtype
    wide = jnp.result_type(float)
    patient = PatientInputs(covariates, grid.schedule, grid.times, change_time)
    resolved, dose_status = resolve_doses(model, grid.settings, theta, patient, jnp.max(grid.times))
    events = live_events(resolved, wide)
    perm = event_order(events.time, resolved.order)
    tau = events.time[perm]
    points = grid.points
    G, E = points.shape[0], tau.shape[0]
    # Merge by ranks (both sorted): an event goes after the points at or before it.
    point_at = jnp.arange(G) + jnp.sum(tau[None, :] < points[:, None], axis=1)
    event_at = jnp.arange(E) + jnp.sum(points[None, :] <= tau[:, None], axis=1)
    merged = (
        jnp.zeros(G + E, wide)
        .at[point_at]
        .set(points, unique_indices=True)
        .at[event_at]
        .set(tau, unique_indices=True)
    )

    def at_events(values, neutral):
        base = jnp.full((G + E, *values.shape[1:]), neutral, wide)
        return base.at[event_at].set(values[perm], unique_indices=True)[1:].astype(dtype)

    end_event = (
        at_events(events.keep, 1.0),
        at_events(events.set_state, 0.0),
        at_events(events.jump, 0.0),
        at_events(events.rate_change, 0.0),
    )
    t0, step = merged[:-1], jnp.diff(merged)
    inputs = _signals_on_steps(model, grid.schedule, t0, step, wide)
    cast = lambda a: a.astype(dtype)  # noqa: E731
    xs = (cast(t0), cast(step), jax.tree.map(cast, inputs), end_event)
    read = jnp.sum(merged[None, :] <= grid.times[:, None], axis=1) - 1
    status = SolveStatus.where(dose_status == SolveStatus.successful, grid.status, dose_status)
    return xs, read, status


def integrate_on_grid(
    model: Model,
    theta: Float[Array, " K"],
    covariates: Float[Array, " C"],
    grid: FixedGrid,
    change_time: Float[Array, " S"] | None = None,
) -> tuple[Float[Array, "T n_states"], SolveStatus]:
    """RK4 along a :class:`FixedGrid`: the states at the grid's requested times and a status.

    Plain JAX (one ``lax.scan``): reverse-mode differentiable in ``theta`` and
    ``covariates``, the derivative of the discrete solution. For a whole cohort use
    :func:`integrate_cohort_on_grid` (same numbers, a layout ``vmap`` cannot give).
    With ``change_time`` ``(S,)``, ``theta`` is ``(S, K)``, piecewise constant in time
    (:mod:`twin_uq.simulate.segments`; the grid must be built with ``piecewise=True``):
    every change time is a grid point and each step uses the parameters of its start.
    """
    if change_time is not None:
        return _integrate_piecewise(model, theta, covariates, grid, change_time)
    dtype = grid.t0.dtype
    th = model.theta_dict(theta.astype(dtype))
    cov = dict(zip(model.covariates, covariates.astype(dtype), strict=True))

    def f(t, y, inputs):
        return jnp.asarray(model.rhs(t, y, th, inputs, cov), dtype)

    if grid.points is not None:
        xs, read, status = _steps_with_doses(model, theta, covariates, grid)
        path = _dose_path(f, jnp.asarray(model.y0(th, cov), dtype), xs)
        return path[read].astype(theta.dtype), status
    y0 = jnp.asarray(model.y0(th, cov), dtype) + grid.start_jump
    path = _path(f, y0, (grid.t0, grid.step, grid.rate, grid.inputs, grid.jump))
    return path[grid.read].astype(theta.dtype), grid.status


def _integrate_piecewise(model, theta, covariates, grid, change_time):
    """:func:`integrate_on_grid` for parameters ``(S, K)`` changing at ``change_time``."""
    if grid.points is None:
        raise InputError(
            "Piecewise parameters on the fixed-step path need a grid built with "
            "fixed_grid(..., piecewise=True) (cohort_grids does it for arrays with "
            "change times)."
        )
    dtype = grid.t0.dtype
    cov = dict(zip(model.covariates, covariates.astype(dtype), strict=True))
    xs, read, status = _steps_with_doses(model, theta, covariates, grid, change_time)
    # Each step's parameters: those in force at its start (change times are grid points).
    rows = theta[segment_index(change_time, xs[0].astype(change_time.dtype))].astype(dtype)

    def step(carry, xs_row):
        xs_k, row = xs_row
        th_k = model.theta_dict(row)

        def f(t, y, inputs):
            return jnp.asarray(model.rhs(t, y, th_k, inputs, cov), dtype)

        return _rk4_dose_step(f, carry, xs_k)

    y0 = jnp.asarray(model.y0(model.theta_dict(theta[0].astype(dtype)), cov), dtype)
    _, ys = jax.lax.scan(step, (y0, jnp.zeros_like(y0)), (xs, rows))
    path = jnp.concatenate([y0[None], ys])
    return path[read].astype(theta.dtype), status


def integrate_cohort_on_grid(
    model: Model,
    theta: Float[Array, "P K"],
    covariates: Float[Array, "P C"],
    grids: FixedGrid,
) -> tuple[Float[Array, "P T n_states"], SolveStatus]:
    """:func:`integrate_on_grid` for every patient at once, in one scan over the steps.

    ``grids`` has a leading patient axis (:func:`cohort_grids`). The numbers are those of
    ``vmap(integrate_on_grid)``; the layout is not. Under ``vmap`` the scan carries the
    states as ``(P, n)`` and every stage reads and writes them with a stride of ``n``;
    here they are ``(n, P)`` (``model.rhs`` is ``vmap``-ed with the patient axis last),
    so each state is one contiguous vector of patients and the grid is walked time-major.
    Measured on the 100-patient Bergman cohort: a likelihood gradient 1.44 → 0.94 ms
    (``benchmarks/RESULTS.md``, 2026-12-02, commit 897992a).
    """
    dtype = grids.t0.dtype
    th = jax.vmap(model.theta_dict)(theta.astype(dtype))
    cov = {name: covariates[:, i].astype(dtype) for i, name in enumerate(model.covariates)}
    rhs = jax.vmap(
        lambda t, y, th_, inputs, cov_: jnp.asarray(model.rhs(t, y, th_, inputs, cov_), dtype),
        in_axes=(0, 1, 0, 0, 0),
        out_axes=1,
    )

    def f(t, y, inputs):
        return rhs(t, y, th, inputs, cov)

    def time_major(a):  # (P, S, ...) -> (S, ..., P)
        return None if a is None else jnp.moveaxis(a, 0, -1)

    y0 = jax.vmap(lambda th_, c: jnp.asarray(model.y0(th_, c), dtype), out_axes=1)(th, cov)
    patient = jnp.arange(theta.shape[0])[:, None]
    if grids.points is not None:
        xs, read, status = jax.vmap(
            lambda th_, cv, g: _steps_with_doses(model, th_, cv, g), in_axes=(0, 0, 0)
        )(theta, covariates, grids)
        path = _dose_path(f, y0, jax.tree.map(time_major, xs))  # (S + E + 1, n, P)
        return path[read, :, patient].astype(theta.dtype), status
    y0 = y0 + grids.start_jump.T
    xs = (
        time_major(grids.t0),
        time_major(grids.step),
        time_major(grids.rate),
        jax.tree.map(time_major, grids.inputs),
        time_major(grids.jump),
    )
    path = _path(f, y0, xs)  # (S + 1, n, P)
    return path[grids.read, :, patient].astype(theta.dtype), grids.status


def solve_fixed_step(
    model: Model,
    settings: SolverSettings,
    theta: Float[Array, " K"],
    patient: PatientInputs,
) -> tuple[Float[Array, "T n_states"], SolveStatus]:
    """Integrate one patient with RK4 on the fixed grid; states at ``times`` and a status.

    Same contract as :func:`twin_uq.simulate.ode.solve_ode` (``theta`` natural scale
    ``(K,)``, one patient's :class:`~twin_uq.simulate.schedule.PatientInputs`):
    :func:`fixed_grid` then :func:`integrate_on_grid`. ``patient.times`` only place the
    grid and carry no gradient.

    Returns
    -------
    states
        ``(T, n_states)``.
    status
        ``SolveStatus.successful`` or ``SolveStatus.beyond_horizon``; non-finite values
        are flagged by the caller.
    """
    piecewise = patient.change_time is not None
    grid = fixed_grid(model, settings, patient.schedule, patient.times, piecewise=piecewise)
    return integrate_on_grid(model, theta, patient.covariates, grid, patient.change_time)


def _merge_sorted(
    uniform: Float[Array, " U"], breaks: Float[Array, " B"]
) -> tuple[Float[Array, " U+B"], Int[Array, " B"]]:
    """Merge the sorted uniform points with unsorted breakpoints; also each break's index.

    By ranks, without a sort (sorting each patient's few hundred points cost more than
    the whole RK4 solve): a uniform point goes after the breaks strictly before it, a
    break after the uniform points at or before it and after the breaks ranked before it
    (ties in the order given). The ranks are distinct and cover every position.
    """
    nb = breaks.shape[0]
    earlier = jnp.arange(nb)[None, :] < jnp.arange(nb)[:, None]
    rank_among_breaks = jnp.sum(
        (breaks[None, :] < breaks[:, None]) | ((breaks[None, :] == breaks[:, None]) & earlier),
        axis=1,
    )
    break_at = jnp.sum(uniform[None, :] <= breaks[:, None], axis=1) + rank_among_breaks
    uniform_at = jnp.arange(uniform.shape[0]) + jnp.sum(breaks[None, :] < uniform[:, None], axis=1)
    grid = (
        jnp.zeros(uniform.shape[0] + nb, uniform.dtype)
        .at[uniform_at]
        .set(uniform, unique_indices=True)
        .at[break_at]
        .set(breaks, unique_indices=True)
    )
    return grid, break_at


def _signals_on_steps(model: Model, schedule: Schedule, t0, step, dtype):
    """Each signal at the start, middle and end of every step: ``3`` dicts of ``(S,)``.

    The linear interpolation of :func:`twin_uq.simulate.events.signal_inputs` (ends held
    constant), computed for all steps at once: knots are grid points, so a step lies in
    the knot interval that contains its start.
    """
    if not model.signals:
        return ({}, {}, {})
    knots = schedule.signal_time.astype(dtype)
    last = knots.shape[0] - 1
    i = jnp.clip(jnp.sum(knots[None, :] <= t0[:, None], axis=1) - 1, 0, max(last - 1, 0))
    j = jnp.minimum(i + 1, last)
    k0, k1 = knots[i], knots[j]
    v0, v1 = schedule.signal_value[i], schedule.signal_value[j]  # (S, n_signals)
    width = k1 - k0

    def at(t):
        w = jnp.where(width > 0, (t - k0) / jnp.where(width > 0, width, 1.0), t >= k1)
        value = v0 + jnp.clip(w, 0.0, 1.0)[:, None] * (v1 - v0)
        return {name: value[:, s] for s, name in enumerate(model.signals)}

    return at(t0), at(t0 + 0.5 * step), at(t0 + step)
