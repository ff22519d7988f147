"""Front door of the simulation engine: one pure solve for all three paths, and conveniences.

* :func:`solve` — pure, jit/vmap/pmap-able, differentiable in ``theta``: one patient's
  :class:`Trajectory` whichever path ``settings.method`` selects, the exact solution of a
  linear model (``"exact"``, :mod:`~twin_uq.simulate.exact`), an adaptive diffrax solver
  (``"tsit5"``, ``"dopri5"``, ``"kvaerno5"``, :mod:`~twin_uq.simulate.ode`) or RK4 on a
  fixed grid (``"rk4"``, :mod:`~twin_uq.simulate.fixed_step`). Every path reports how it
  ended in the same :class:`~twin_uq.simulate.status.SolveStatus`.
* :func:`solve_outputs` — :func:`solve` unpacked to ``(states, outputs, ok)``; what the
  likelihood calls for every patient and posterior draw.
* :func:`simulate` — one patient from user-friendly inputs (dicts, lists), compiled once
  per (model, settings, shapes), returns a :class:`Trajectory`.
* :func:`solve_cohort` — ``vmap`` of :func:`solve` over patients (compiled);
  :func:`simulate_cohort_outputs` the same unpacked.
* :func:`solve_cohort_on_grid` — the fixed-step path for a whole cohort in one scan.

Gradients
---------
The exact path (linear models) and the fixed-grid RK4 path
(:mod:`twin_uq.simulate.fixed_step`) are plain JAX differentiated in reverse mode, wrapped
in a ``jax.custom_vjp`` only so that a failed solve (non-finite values, e.g. a matrix
exponential overflowing for extreme parameters, or a time past the fixed grid's horizon)
gets a zero ``theta`` cotangent instead of NaN; the exact path's gradients with respect to
``theta``, ``covariates`` and ``times`` are exact, the RK4 path's are those of the discrete
solution (``times`` carry none). Forward mode
(``jvp``, ``jacfwd``) through either path is not supported; Hessians are taken by finite
differences of gradients (see :mod:`twin_uq.inference.backends`).

The ODE path is wrapped in ``jax.custom_vjp``: the forward pass integrates the solution
*and* its forward sensitivities ``d y / d theta`` (the sensitivity equations solved
alongside the states, one Jacobian-vector product per parameter and stage: cheap for the
3–6 parameters of a physiological model; see
:func:`twin_uq.simulate.ode.solve_ode_sensitivities`), the backward pass returns
``J^T g``. Reverse mode therefore never
traces through diffrax's loop; this avoids equinox's "Closure-converted function called
with different dynamic arguments" crash seen with the default adjoint when NUTS chains run
under ``pmap``, and makes gradients work under ``vmap``, ``pmap`` and ``jit`` alike.
Consequences:

* the cotangents of ``covariates``, ``schedule`` and ``times`` are **zero** (they are data);
* when a solve fails (its status is not ``successful``) the ``theta`` cotangent is zero — on both
  paths — so a likelihood that masks failed solves with ``jnp.where(ok, ll, -inf)`` gets
  finite gradients;
* forward-over-reverse (Hessians) through the ODE path is not supported; use
  :func:`twin_uq.simulate.ode.solve_ode` directly for forward-mode-only derivatives.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

from twin_uq.errors import InputError
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.dose_events import check_dose_declarations
from twin_uq.simulate.exact import solve_exact
from twin_uq.simulate.fixed_step import (
    FixedGrid,
    integrate_cohort_on_grid,
    integrate_on_grid,
    solve_fixed_step,
)
from twin_uq.simulate.ode import solve_ode, solve_ode_sensitivities
from twin_uq.simulate.result import Trajectory
from twin_uq.simulate.schedule import PatientInputs, Schedule
from twin_uq.simulate.segments import check_piecewise, theta_at
from twin_uq.simulate.status import SolveStatus

__all__ = [
    "simulate",
    "simulate_cohort_outputs",
    "solve",
    "solve_cohort",
    "solve_cohort_on_grid",
    "solve_outputs",
]


def _states(
    model: Model,
    settings: SolverSettings,
    theta: Float[Array, " K"],
    patient: PatientInputs,
    grid: FixedGrid | None = None,
) -> tuple[Float[Array, "T n"], SolveStatus]:
    """The three solve paths behind one signature: states at ``patient.times`` and a status."""
    if settings.method == "exact":
        return solve_exact(model, settings, theta, patient)
    if settings.is_fixed_step and grid is not None:
        return integrate_on_grid(model, theta, patient.covariates, grid, patient.change_time)
    if settings.is_fixed_step:
        return solve_fixed_step(model, settings, theta, patient)
    return solve_ode(model, settings, theta, patient)


def _core(
    model: Model,
    settings: SolverSettings,
    theta: Float[Array, " K"],
    patient: PatientInputs,
    grid: FixedGrid | None = None,
) -> tuple[Float[Array, "T n"], Float[Array, "T m"], SolveStatus]:
    states, status = _states(model, settings, theta, patient, grid)
    if patient.change_time is not None:
        # Each time observed with the parameters in force then (a change time: the new).
        th_t = jax.vmap(model.theta_dict)(theta_at(theta, patient.change_time, patient.times))
        outputs = jax.vmap(lambda y, th_: jnp.asarray(model.observe(y, th_)))(states, th_t)
        return states, outputs, _flag_nonfinite(states, outputs, status)
    th = model.theta_dict(theta)
    outputs = jax.vmap(lambda y: jnp.asarray(model.observe(y, th)))(states)
    return states, outputs, _flag_nonfinite(states, outputs, status)


def _flag_nonfinite(states, outputs, status: SolveStatus) -> SolveStatus:
    """``nonfinite`` where a solve reported success but gave NaN/inf values."""
    finite = jnp.all(jnp.isfinite(states)) & jnp.all(jnp.isfinite(outputs))
    return SolveStatus.where(
        (status == SolveStatus.successful) & ~finite, SolveStatus.nonfinite, status
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _ode_with_vjp(model, settings, theta, covariates, schedule, times, change_time=None):
    return _core(model, settings, theta, PatientInputs(covariates, schedule, times, change_time))


def _ode_fwd(model, settings, theta, covariates, schedule, times, change_time=None):
    patient = PatientInputs(covariates, schedule, times, change_time)
    states, jac_states, status = solve_ode_sensitivities(model, settings, theta, patient)
    # Sensitivities are with respect to theta flattened (S·K for piecewise parameters).
    shape, flat = theta.shape, theta.reshape(-1)

    def observe(y, th, t):
        th = th.reshape(shape)
        if change_time is not None:
            th = theta_at(th, change_time, t)
        out = jnp.asarray(model.observe(y, model.theta_dict(th)))
        return out, out  # the value rides along as jacfwd's aux: one evaluation

    def output_and_jacobian(y, S, t):
        (d_y, d_theta), out = jax.jacfwd(observe, argnums=(0, 1), has_aux=True)(y, flat, t)
        return out, d_y @ S + d_theta

    outputs, jac_outputs = jax.vmap(output_and_jacobian)(states, jac_states, patient.times)
    status = _flag_nonfinite(states, outputs, status)
    # theta's shape rides along as an empty-valued array (residuals are arrays).
    return (states, outputs, status), (jac_states, jac_outputs, status, jnp.zeros(shape, bool))


def _ode_bwd(model, settings, residuals, cotangents):
    jac_states, jac_outputs, status, like_theta = residuals
    g_states, g_outputs, _ = cotangents
    ct = jnp.einsum("tnk,tn->k", jac_states, g_states) + jnp.einsum(
        "tok,to->k", jac_outputs, g_outputs
    )
    # A failed solve carries inf/NaN sensitivities; the likelihood masks it, so give 0.
    ct = jnp.where(status == SolveStatus.successful, ct, 0.0)
    return ct.reshape(like_theta.shape), None, None, None, None


_ode_with_vjp.defvjp(_ode_fwd, _ode_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _reverse_with_vjp(model, settings, theta, covariates, schedule, times, grid, change_time=None):
    patient = PatientInputs(covariates, schedule, times, change_time)
    return _core(model, settings, theta, patient, grid)


def _vjp_with_status(core, *primals):
    """``core(*primals) -> (states, outputs, status)`` and its pullback, for a gated VJP."""

    def f(*args):
        states, outputs, status = core(*args)
        return (states, outputs), status

    (states, outputs), pullback, status = jax.vjp(f, *primals, has_aux=True)
    return (states, outputs, status), (pullback, status)


def _gated_cotangents(residuals, cotangents):
    """The primals' cotangents, zero where a solve failed (``status`` broadcast per row).

    Plain reverse mode would multiply the zero cotangent of a masked failed solve by the
    solve's inf/NaN partial derivatives (0 * inf = NaN); the gate comes after instead.
    """
    pullback, status = residuals
    g_states, g_outputs, _ = cotangents
    ok = status == SolveStatus.successful
    return tuple(
        jnp.where(ok.reshape(ok.shape + (1,) * (ct.ndim - ok.ndim)), ct, 0.0)
        for ct in pullback((g_states, g_outputs))
    )


def _reverse_fwd(model, settings, theta, covariates, schedule, times, grid, change_time=None):
    def core(th, cv, ts):
        return _core(model, settings, th, PatientInputs(cv, schedule, ts, change_time), grid)

    return _vjp_with_status(core, theta, covariates, times)


def _reverse_bwd(model, settings, residuals, cotangents):
    ct_theta, ct_cov, ct_times = _gated_cotangents(residuals, cotangents)
    return ct_theta, ct_cov, None, ct_times, None, None


_reverse_with_vjp.defvjp(_reverse_fwd, _reverse_bwd)


def _cohort_core(model, theta, covariates, grids):
    states, status = integrate_cohort_on_grid(model, theta, covariates, grids)
    th = jax.vmap(model.theta_dict)(theta)
    observe = lambda y, th_: jnp.asarray(model.observe(y, th_))  # noqa: E731
    outputs = jax.vmap(jax.vmap(observe, in_axes=(0, None)))(states, th)
    return states, outputs, jax.vmap(_flag_nonfinite)(states, outputs, status)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _cohort_with_vjp(model, theta, covariates, grids):
    return _cohort_core(model, theta, covariates, grids)


def _cohort_fwd(model, theta, covariates, grids):
    core = lambda th, cv: _cohort_core(model, th, cv, grids)  # noqa: E731
    return _vjp_with_status(core, theta, covariates)


def _cohort_bwd(model, residuals, cotangents):
    # Per patient: patients do not mix in the scan, so a failed patient's inf/NaN
    # partials stay in its own row, which the gate zeroes.
    ct_theta, ct_cov = _gated_cotangents(residuals, cotangents)
    return ct_theta, ct_cov, None


_cohort_with_vjp.defvjp(_cohort_fwd, _cohort_bwd)


def solve_cohort_on_grid(
    model: Model,
    theta: Float[Array, "P K"],
    covariates: Float[Array, "P C"],
    grids: FixedGrid,
) -> tuple[Float[Array, "P T n_states"], Float[Array, "P T n_outputs"], Bool[Array, " P"]]:
    """:func:`solve_outputs` for a whole cohort on precomputed fixed grids (``"rk4"``).

    ``grids`` from :func:`twin_uq.simulate.fixed_step.cohort_grids` (leading axis ``P``,
    each patient's requested times already placed). Same values and the same contract as
    ``vmap(solve_outputs)`` with those grids, including a zero ``theta`` gradient for
    a patient whose solve failed, at about two thirds of the gradient's cost
    (:func:`twin_uq.simulate.fixed_step.integrate_cohort_on_grid`).
    """
    theta = jnp.asarray(theta, dtype=float)
    covariates = jnp.asarray(covariates, dtype=float).reshape(theta.shape[0], len(model.covariates))
    states, outputs, status = _cohort_with_vjp(model, theta, covariates, grids)
    return states, outputs, status == SolveStatus.successful


def _solve(
    model: Model,
    settings: SolverSettings,
    theta: ArrayLike,
    covariates: ArrayLike,
    schedule: Schedule,
    times: ArrayLike,
    grid: FixedGrid | None = None,
    change_times: ArrayLike | None = None,
) -> Trajectory:
    theta = jnp.asarray(theta, dtype=float)
    covariates = jnp.asarray(covariates, dtype=float).reshape(len(model.covariates))
    times = jnp.asarray(times, dtype=theta.dtype)
    change_time = None if change_times is None else jnp.asarray(change_times, theta.dtype)
    check_piecewise(theta, change_time)
    if change_time is not None and change_time.shape[0] == 1:
        # One segment: the solve of constant parameters, bit for bit.
        theta, change_time = theta[0], None
    extra = () if change_time is None else (change_time,)
    if settings.method == "exact" or settings.is_fixed_step:
        states, outputs, status = _reverse_with_vjp(
            model, settings, theta, covariates, schedule, times, grid, *extra
        )
    else:
        states, outputs, status = _ode_with_vjp(
            model, settings, theta, covariates, schedule, times, *extra
        )
    return Trajectory(times=times, states=states, outputs=outputs, status=status)


def solve(
    model: Model,
    theta: Float[ArrayLike, " K"],
    covariates: Float[ArrayLike, " C"],
    schedule: Schedule,
    times: Float[ArrayLike, " T"],
    settings: SolverSettings | None = None,
    grid: FixedGrid | None = None,
    change_times: Float[ArrayLike, " S"] | None = None,
) -> Trajectory:
    """Simulate one patient: states and outputs at ``times``, and how the solve ended.

    The one entry point to the three solve paths (``settings.method``: ``"exact"``, an
    adaptive ODE solver, or ``"rk4"``). Pure and traceable: never raises inside ``jit``
    (a failure is a status); vmap it over patients and draws.

    Parameters
    ----------
    model
        The model (static: hashable by class).
    theta
        Individual parameters, natural scale, in ``model.parameter_names`` order, ``(K,)``.
        Covariate effects must already be applied (see :class:`twin_uq.Model`). Or
        ``(S, K)`` with ``change_times``: parameters piecewise constant in time
        (time-varying covariates; :mod:`twin_uq.simulate.segments`).
    covariates
        Patient covariates in ``model.covariates`` order, ``(C,)`` (passed to ``model.y0``).
    schedule
        The patient's unbatched :class:`Schedule`. Boluses are exact state jumps at their
        time (an observation at exactly a dose time sees the **post-dose** state; doses at
        the same time add up); infusions add their rate to ``dy/dt`` on ``[start, stop)``;
        signals are interpolated linearly and held constant outside their knots.
    times
        ``(T,)`` times ``>= 0`` in any order (padding allowed). Simulation starts at
        ``t = 0`` from ``model.y0``. Events after ``max(times)`` are ignored.
    settings
        Solver settings; default ``model.solver``. ``method="exact"`` needs a linear model;
        ``method="rk4"`` needs a horizon reaching ``times`` when they are traced
        (:meth:`SolverSettings.covering`; set automatically for concrete times).
    grid
        ``method="rk4"`` only, optional: the patient's precomputed
        :class:`~twin_uq.simulate.fixed_step.FixedGrid` for these ``schedule`` and
        ``times`` (a fit builds it once instead of at every gradient).
    change_times
        ``(S,)`` with ``theta`` ``(S, K)``: segment ``s`` of the parameters holds from
        ``change_times[s]`` (sorted, the first 0, ``+inf`` padding) to the next start; an
        observation at a change time sees the new parameters, ``model.y0`` the first
        segment's. The integration stops at every change time and restarts with the new
        parameters, on every path. ``S = 1`` is the solve with ``theta[0]``, bit for bit.
        Steady-state doses are refused with piecewise parameters.

    Returns
    -------
    Trajectory
        ``times`` ``(T,)``, ``states`` ``(T, n_states)``, ``outputs`` ``(T, n_outputs)``
        and ``status`` (:class:`~twin_uq.simulate.status.SolveStatus`). When the status is
        not ``successful`` the values are meaningless (possibly inf/NaN) and the ``theta``
        gradient is zero.

    Notes
    -----
    Gradients are exact in ``theta`` (forward sensitivities on the ODE path, reverse mode
    on the others); the gradients with respect to ``covariates``, ``schedule`` and
    ``times`` are zero on the ODE path.
    """
    settings = model.solver if settings is None else settings
    if (
        settings.is_fixed_step
        and settings.horizon is None
        and not isinstance(times, jax.core.Tracer)
    ):
        settings = settings.covering(times)
    return _solve(model, settings, theta, covariates, schedule, times, grid, change_times)


def _takes_arguments_of(source: Callable) -> Callable[[Callable], Callable]:
    """Decorator for a ``(*args, **kwargs)`` wrapper of ``source``: show ``source``'s parameters.

    ``help()`` and ``jax.jit(static_argnames=...)`` then see the real parameter names.
    """

    def decorate(wrapper: Callable) -> Callable:
        returns = inspect.signature(wrapper).return_annotation
        wrapper.__signature__ = inspect.signature(source).replace(  # type: ignore[attr-defined]
            return_annotation=returns
        )
        return wrapper

    return decorate


@_takes_arguments_of(solve)
def solve_outputs(
    *args: Any, **kwargs: Any
) -> tuple[Float[Array, "T n_states"], Float[Array, "T n_outputs"], Bool[Array, ""]]:
    """:func:`solve` unpacked: ``(states, outputs, ok)``, for code that needs only a flag.

    Same arguments (passed through unchanged) and values as :func:`solve`; ``ok`` is
    ``status == SolveStatus.successful`` (a boolean scalar). Use :func:`solve` where the
    reason for a failure is reported.
    """
    traj = solve(*args, **kwargs)
    return traj.states, traj.outputs, traj.ok


def _as_theta(model: Model, params: Mapping[str, float] | ArrayLike, segments: int = 0) -> Array:
    names = model.parameter_names
    if segments:  # piecewise: an (S, K) array, one row per segment
        theta = jnp.asarray(params, dtype=float)
        if theta.shape != (segments, len(names)):
            raise InputError(
                f"With change_times of {segments} segment(s), params must be an array of "
                f"shape ({segments}, {len(names)}) in the order {names}; got {theta.shape}."
            )
        return theta
    if isinstance(params, Mapping):
        missing = [n for n in names if n not in params]
        unknown = [k for k in params if k not in names]
        if missing or unknown:
            raise InputError(
                f"Parameters for model {model.name!r}: missing {missing}, unknown {unknown}; "
                f"expected {names}."
            )
        return jnp.asarray([params[n] for n in names], dtype=float)
    theta = jnp.asarray(params, dtype=float)
    if theta.shape != (len(names),):
        raise InputError(
            f"Parameter vector for model {model.name!r} must have shape ({len(names)},) in the "
            f"order {names}; got shape {theta.shape}."
        )
    return theta


def _as_covariates(model: Model, covariates: Mapping[str, float] | ArrayLike | None) -> Array:
    names = model.covariates
    if covariates is None:
        covariates = dict(model.covariate_defaults)
    if isinstance(covariates, Mapping):
        missing = [n for n in names if n not in covariates]
        if missing:
            raise InputError(
                f"Model {model.name!r} needs covariate(s) {missing} (no default declared)."
            )
        return jnp.asarray([covariates[n] for n in names], dtype=float).reshape(len(names))
    cov = jnp.asarray(covariates, dtype=float)
    if cov.shape != (len(names),):
        raise InputError(
            f"Covariate vector for model {model.name!r} must have shape ({len(names)},) in the "
            f"order {names}; got {cov.shape}."
        )
    return cov


@functools.partial(jax.jit, static_argnums=(0, 1))
def _simulate_compiled(model, settings, theta, covariates, schedule, times, change_times=None):
    return _solve(model, settings, theta, covariates, schedule, times, None, change_times)


def simulate(
    model: Model | str,
    params: Mapping[str, float] | ArrayLike,
    schedule: Schedule,
    times: Sequence[float] | ArrayLike,
    *,
    covariates: Mapping[str, float] | ArrayLike | None = None,
    settings: SolverSettings | None = None,
    change_times: Sequence[float] | ArrayLike | None = None,
) -> Trajectory:
    """Simulate one patient and return a :class:`Trajectory`.

    Compiled once per (model, settings, array shapes): calls with the same shapes reuse it.

    Parameters
    ----------
    model
        A :class:`twin_uq.Model` or a name / path accepted by :func:`twin_uq.load_model`.
    params
        Individual parameters: a dict name -> value or a vector in ``model.parameter_names``
        order (natural scale, covariate effects already applied).
    schedule
        Unbatched :class:`Schedule` (see :func:`solve` for the conventions): boluses,
        infusions, modelled infusions (``RATE=-1/-2``, refused with an ``InputError`` for a
        compartment that declares no modelled rate / duration), resets, steady state.
    times
        ``(T,)`` output times ``>= 0`` (model time unit).
    covariates
        Dict or vector in ``model.covariates`` order; default ``model.covariate_defaults``.
    settings
        Default ``model.solver``.
    change_times
        Parameters piecewise constant in time (time-varying covariates): ``(S,)`` segment
        starts (sorted, the first 0) with ``params`` an ``(S, K)`` array (see :func:`solve`).
    """
    from twin_uq._config import require_x64
    from twin_uq.model.load import load_model

    require_x64("tq.simulate")
    model = load_model(model)
    settings = model.solver if settings is None else settings
    times_arr = jnp.asarray(times, dtype=float)
    if times_arr.ndim != 1 or times_arr.shape[0] == 0:
        raise InputError(f"times must be a non-empty 1-D sequence; got shape {times_arr.shape}.")
    if schedule.bolus_time.ndim != 1:
        raise InputError("simulate takes one patient's (unbatched) Schedule.")
    check_dose_declarations(model, schedule)
    change = None if change_times is None else jnp.asarray(change_times, dtype=float)
    if change is not None and (change.ndim != 1 or not bool(jnp.all(jnp.diff(change) >= 0))):
        raise InputError(f"change_times must be a sorted 1-D sequence; got {change_times!r}.")
    return _simulate_compiled(
        model,
        settings.covering(times_arr),
        _as_theta(model, params, 0 if change is None else change.shape[0]),
        _as_covariates(model, covariates),
        schedule,
        times_arr,
        change,
    )


@functools.partial(jax.jit, static_argnums=(0, 5))
def _cohort_compiled(model, theta, covariates, schedules, times, settings):
    return jax.vmap(lambda th, cv, sc, ts: solve(model, th, cv, sc, ts, settings))(
        theta, covariates, schedules, times
    )


def solve_cohort(
    model: Model,
    theta: Float[ArrayLike, "P K"],
    covariates: Float[ArrayLike, "P C"],
    schedules: Schedule,
    times: Float[ArrayLike, "P T"],
    settings: SolverSettings | None = None,
) -> Trajectory:
    """:func:`solve` for every patient of a cohort (jit-compiled ``vmap``).

    Returns a batched :class:`Trajectory` (leading patient axis ``P``, one status per
    patient). ``schedules`` is batched (leading patient axis, e.g. from
    :func:`~twin_uq.simulate.schedule.stack_schedules`).
    """
    settings = model.solver if settings is None else settings
    theta = jnp.asarray(theta, dtype=float)
    covariates = jnp.asarray(covariates, dtype=float).reshape(theta.shape[0], len(model.covariates))
    times = jnp.asarray(times, float)
    return _cohort_compiled(model, theta, covariates, schedules, times, settings.covering(times))


@_takes_arguments_of(solve_cohort)
def simulate_cohort_outputs(
    *args: Any, **kwargs: Any
) -> tuple[Float[Array, "P T n_states"], Float[Array, "P T n_outputs"], Bool[Array, " P"]]:
    """:func:`solve_cohort` unpacked to ``(states, outputs, ok)`` (``ok`` of shape ``(P,)``)."""
    traj = solve_cohort(*args, **kwargs)
    return traj.states, traj.outputs, traj.ok
