"""Steady state of a repeated dose (NONMEM ``SS=1``/``SS=2``): :func:`steady_state`.

A steady-state dose record at nominal time ``t0`` stands for the same dose (same amount,
bioavailability, lag, rate, duration) given at ``t0 - k·II`` for every ``k >= 1`` since
the infinite past. This module computes, for one such :class:`SteadyDose`,

* ``y_ss`` — the state at ``t0-`` (just before ``t0``): the summed effect of every input
  of the past doses that entered before ``t0``;
* ``r_ss`` — the input-rate vector at ``t0-``: the summed rates of the past infusions
  still running at ``t0``;
* the *tails* (:func:`steady_state_tails`): inputs of past doses that act after ``t0``
  — the end of each past infusion still running at ``t0`` (``DUR > II``) and each past
  lagged bolus or infusion start that arrives at or after ``t0`` (``ALAG >= k·II``).

The record's own dose at ``t0`` is not included; the caller gives it as usual
(:mod:`twin_uq.simulate.dose_events`, DESIGN26 §4). Conventions at the boundaries: an
input of a past dose arriving exactly at ``t0`` is a tail (so ``y_ss`` is the state just
before ``t0``), an infusion ending exactly at ``t0`` is over. With ``DUR == II`` and no
lag the past infusions therefore end exactly where the record's own one starts.

Linear models (``model.is_linear``)
-----------------------------------
Exact. Put every past dose's input on the grid of interval ends ``t0 - j·II``: an input
entering ``s`` before the next interval end contributes ``Φ(s)`` times itself there
(``Φ(t) = exp(A t)``), and the periodic regime satisfies ``y = Φ(II) y + w``, so

    y_ss = (I - Φ(II))⁻¹ w,

with ``w`` one dose's whole input carried to the interval end that follows it. With
``ρ(x) = x - ⌊x/II⌋·II`` (the phase of time ``x`` after the dose within its interval):

* bolus of amount ``a`` with lag ``L``: ``w = a·Φ(II - ρ(L))·e``;
* infusion of rate ``R`` on ``[L, L + D)``, any ``D`` (shorter than, equal to or longer
  than ``II``): ``w = R·(C(L + D) - C(L))·e`` with the integral of the wrapped
  propagator ``C(x) = (⌊x/II⌋ + 1)·Ψ(II) - Ψ(II - ρ(x))``, ``Ψ(t) = ∫_0^t Φ(s) ds``.

``e`` is the unit vector of the dose compartment. Three transition matrices (at ``II``,
``II - ρ(L)`` and ``II - ρ(L + D)``) and one small linear solve; ``C`` is continuous in
``L`` and ``D``, so the result is differentiable in every parameter (gradients flow
through lag, duration, rate, amount and the system matrix). A constant infusion
(``II = 0``, ``RATE > 0``): ``y_ss = -A⁻¹·R·e`` and ``r_ss = 0``: the infusion whose
plateau it is ends at ``t0``, as in NONMEM (its reference run of nmtests 1001, scenario 29:
``SS=1, AMT=0, RATE=100, II=0`` and no later record, the concentration falls from the
plateau right after ``t0``); the record's own dose (``AMT/RATE``) follows as usual.
A singular ``I - Φ(II)`` (or ``A``) — a compartment without elimination, whose amount
grows without bound — gives ``SolveStatus.no_steady_state`` and zeros, not NaN.

Nonlinear models
----------------
A pre-run: the dosing-interval map ``P`` (one interval of the periodic input, integrated
with the model's adaptive solver; ``"rk4"`` settings use their adaptive reference,
Tsit5 at the same tolerances) is repeated from the zero state until the state at the
interval start changes by less than ``rtol·|y| + atol`` (``SolverSettings`` tolerances),
for at most ``max_intervals`` intervals; then one Newton step on ``y = P(y)``, with the
Jacobian of ``P`` by forward-mode differentiation, removes the geometric remainder of a
slowly contracting iteration. The result is checked: the Newton estimate of the distance
to the fixed point at the returned state must be within the same tolerance, otherwise
``SolveStatus.steady_state_not_reached`` (never a silent unconverged state). A constant
infusion (``II = 0``) is the equilibrium ``f(y) + R·e = 0``: a pre-run over doubling
horizons, then the same Newton step and check on ``f``.

Gradients of the nonlinear steady state are those of the fixed point (implicit function
theorem): ``dy/dp = (I - ∂P/∂y)⁻¹ ∂P/∂p`` (``-(∂f/∂y)⁻¹ ∂f/∂p`` for a constant infusion),
written as a term linear in ``p - stop_gradient(p)``, so forward and reverse mode both
work and neither differentiates through the pre-run's loop. The pre-run reads the model
as autonomous (its clock restarts at 0 in each interval): a model whose ``rhs`` depends
on ``t`` has no periodic steady state, and one with measured signals is refused.

This module imports no solve path (the solve paths import the dose resolution that
calls it), hence its own small matrix exponential and diffrax calls.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm
from jaxtyping import Array, Bool, Float

from twin_uq._types import (
    BoolScalar,
    CovariateVector,
    FloatScalar,
    IntScalar,
    ParamVector,
    StateVector,
)
from twin_uq.errors import InputError
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.status import SolveStatus

__all__ = [
    "MAX_SS_INTERVALS",
    "MAX_SS_TAILS",
    "SteadyDose",
    "SteadyTails",
    "steady_state",
    "steady_state_tails",
]

MAX_SS_TAILS = SolverSettings.max_ss_tails
"""Default static number of past doses per kind (arrivals, infusion ends) still acting
after ``t0`` (that of :class:`SolverSettings`, whose ``max_ss_tails`` the dose resolution
passes); more gives ``SolveStatus.ss_tails_exceeded``."""

MAX_SS_INTERVALS = 500
"""Default budget of dosing intervals for the pre-run of a nonlinear model."""

_MAX_DOUBLINGS = 60  # constant infusion, nonlinear: horizons 1, 2, 4, ... 2^59 time units
_RCOND = 1e-13  # smallest reciprocal condition number of a matrix taken as invertible

_SOLVERS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "kvaerno5": diffrax.Kvaerno5}


class SteadyDose(NamedTuple):
    """One steady-state dose, already resolved with the patient's parameters (a pytree).

    All fields are JAX scalars; every float may depend on ``theta`` (it is differentiated).

    Attributes
    ----------
    amount
        Amount entering, ``F·AMT`` (model amount unit). Used for a bolus; an infusion
        delivers ``rate·duration``.
    cmt
        0-based index of the state the dose enters (integer).
    rate
        Infusion rate (amount per time unit); ``0`` for a bolus.
    duration
        Infusion duration (time); ``0`` for a bolus; ``inf`` for a constant infusion
        (``II = 0``).
    lag
        Lag time ``ALAG >= 0``: each dose enters ``lag`` after its nominal time.
    ii
        Interdose interval ``> 0``; ``0`` only for a constant infusion (``rate > 0``).
    """

    amount: FloatScalar
    cmt: IntScalar
    rate: FloatScalar
    duration: FloatScalar
    lag: FloatScalar
    ii: FloatScalar


class SteadyTails(NamedTuple):
    """Inputs of the past doses of a :class:`SteadyDose` that act after ``t0`` (``2M`` slots).

    Slots ``0..M-1`` are the arrivals of doses ``k = 1..M`` (a lagged bolus, or the start
    of a lagged infusion) at ``t0 + lag - k·II``; slots ``M..2M-1`` the ends of their
    infusions at ``t0 + lag + duration - k·II``. All act on the dose's compartment
    ``dose.cmt``; the caller one-hot encodes them.

    Attributes
    ----------
    time
        Time after ``t0`` (``>= 0``) at which each acts, ``(2M,)``.
    jump
        Amount added to the state at that time (bolus arrivals), ``(2M,)``.
    rate_change
        Change of the running input rate from that time on (``+rate`` at an infusion
        start, ``-rate`` at its end), ``(2M,)``.
    mask
        Which slots are real tails, ``(2M,)``.
    """

    time: Float[Array, " 2M"]
    jump: Float[Array, " 2M"]
    rate_change: Float[Array, " 2M"]
    mask: Bool[Array, " 2M"]


class _Geometry(NamedTuple):
    """Where one dose's input falls relative to the grid ``t0 - k·II`` (see the module doc)."""

    periodic: BoolScalar  # II > 0
    infusion: BoolScalar  # rate > 0
    ii: FloatScalar  # II, or 1 where II = 0 (a safe divisor)
    duration: FloatScalar  # D for a periodic infusion, else 0 (never inf)
    q_lag: FloatScalar  # ⌊L/II⌋ = number of past doses not yet arrived at t0
    phase_lag: FloatScalar  # ρ(L) in [0, II]
    q_end: FloatScalar  # ⌊(L+D)/II⌋
    phase_end: FloatScalar  # ρ(L+D) in [0, II]
    n_ending: FloatScalar  # number of past infusions ending after t0


def _phase(x: FloatScalar, ii: FloatScalar) -> tuple[FloatScalar, FloatScalar]:
    # One floor for both the count and the remainder, so that the tails, r_ss and y_ss
    # classify a past dose at an exact multiple of II the same way.
    q = jnp.floor(x / ii)
    return q, jnp.clip(x - q * ii, 0.0, ii)


def _geometry(dose: SteadyDose) -> _Geometry:
    periodic = dose.ii > 0
    infusion = dose.rate > 0
    ii = jnp.where(periodic, dose.ii, 1.0)
    duration = jnp.where(infusion & periodic & jnp.isfinite(dose.duration), dose.duration, 0.0)
    q_lag, phase_lag = _phase(dose.lag, ii)
    q_end, phase_end = _phase(dose.lag + duration, ii)
    # k >= 1 with k·II < L + D (strictly: an infusion ending exactly at t0 is over).
    n_ending = jnp.where(phase_end > 0, q_end, q_end - 1.0)
    return _Geometry(periodic, infusion, ii, duration, q_lag, phase_lag, q_end, phase_end, n_ending)


def steady_state_tails(
    dose: SteadyDose, max_tails: int = MAX_SS_TAILS
) -> tuple[SteadyTails, SolveStatus]:
    """The past doses' inputs acting after ``t0``, in ``2·max_tails`` static slots.

    Parameters
    ----------
    dose
        The steady-state dose.
    max_tails
        Static number of past doses ``k = 1..max_tails`` examined for each kind of tail.

    Returns
    -------
    tails, status
        :class:`SteadyTails`; ``SolveStatus.ss_tails_exceeded`` when dose
        ``k = max_tails + 1`` would still act after ``t0`` (its tails are then missing),
        else ``successful``. A constant infusion (``II = 0``) has no tails.
    """
    g = _geometry(dose)
    dtype = jnp.result_type(dose.rate, dose.lag, float)
    k = jnp.arange(1, max_tails + 1, dtype=dtype)
    arrives = g.periodic & (k <= g.q_lag)
    ends = g.periodic & g.infusion & (k <= g.n_ending)
    arrival_time = jnp.maximum(dose.lag - k * g.ii, 0.0)
    end_time = jnp.maximum(dose.lag + g.duration - k * g.ii, 0.0)
    rate = jnp.where(g.infusion, dose.rate, 0.0)
    jump = jnp.where(g.infusion, 0.0, dose.amount)
    zeros = jnp.zeros_like(k)
    tails = SteadyTails(
        time=jnp.concatenate([arrival_time, end_time]),
        jump=jnp.concatenate([jnp.where(arrives, jump, 0.0), zeros]),
        rate_change=jnp.concatenate([jnp.where(arrives, rate, 0.0), jnp.where(ends, -rate, 0.0)]),
        mask=jnp.concatenate([arrives, ends]),
    )
    exceeded = g.periodic & ((g.q_lag > max_tails) | (g.infusion & (g.n_ending > max_tails)))
    return tails, SolveStatus.where(exceeded, SolveStatus.ss_tails_exceeded, SolveStatus.successful)


def _running_rate(dose: SteadyDose, g: _Geometry, n: int, dtype) -> StateVector:
    """``r_ss``: past infusions started before ``t0`` and ending after it.

    None for a constant infusion (``II = 0``): it ends at ``t0`` (module docstring).
    """
    count = jnp.maximum(g.n_ending - g.q_lag, 0.0)
    rate = jnp.where(g.periodic, count * dose.rate, 0.0)
    rate = jnp.where(g.infusion, rate, 0.0)
    return rate * jax.nn.one_hot(dose.cmt, n, dtype=dtype)


def steady_state(
    model: Model,
    settings: SolverSettings,
    theta_vec: ParamVector,
    covariates: CovariateVector,
    dose: SteadyDose,
    *,
    max_intervals: int = MAX_SS_INTERVALS,
) -> tuple[StateVector, StateVector, SolveStatus]:
    """State and input-rate vector at ``t0-`` of the periodic regime of ``dose``.

    Pure, jit/vmap-able and differentiable in ``theta_vec``, ``covariates`` and the
    float fields of ``dose`` (forward and reverse mode). See the module docstring for the
    method (exact for linear models, a checked pre-run for nonlinear ones).

    Parameters
    ----------
    model
        The model (static). Linear models use ``linear_system`` (or ``transition``).
    settings
        Solver settings; tolerances and solver of a nonlinear model's pre-run.
    theta_vec
        Individual parameters, natural scale, ``model.parameter_names`` order, ``(K,)``.
    covariates
        ``(C,)`` in ``model.covariates`` order (passed to the model's ``rhs``).
    dose
        The steady-state dose, resolved (``F·AMT``, lag, rate, duration) with ``theta``.
    max_intervals
        Static budget of dosing intervals of a nonlinear model's pre-run.

    Returns
    -------
    y_ss, r_ss, status
        State ``(n,)`` and running input rate ``(n,)`` at ``t0-``; ``successful``,
        ``no_steady_state``, ``steady_state_not_reached`` or a failure of the pre-run's
        solver (``max_steps_reached``, ``solver_failed``, ``nonfinite``). Values are
        finite but meaningless when the status is not ``successful``. The tails are
        :func:`steady_state_tails`.
    """
    n = len(model.states)
    dtype = jnp.result_type(theta_vec.dtype, float)
    theta_vec = jnp.asarray(theta_vec, dtype)
    covariates = jnp.asarray(covariates, dtype)
    dose = SteadyDose(
        amount=jnp.asarray(dose.amount, dtype),
        cmt=jnp.asarray(dose.cmt, jnp.int32),
        rate=jnp.asarray(dose.rate, dtype),
        duration=jnp.asarray(dose.duration, dtype),
        lag=jnp.asarray(dose.lag, dtype),
        ii=jnp.asarray(dose.ii, dtype),
    )
    g = _geometry(dose)
    r_ss = _running_rate(dose, g, n, dtype)
    if model.is_linear:
        y_ss, status = _linear(model, theta_vec, dose, g, n, dtype)
    else:
        y_ss, status = _nonlinear(model, settings, theta_vec, covariates, dose, g, max_intervals)
    bad_input = ~g.periodic & ~g.infusion  # a bolus with II = 0: infinitely many at once
    status = SolveStatus.where(bad_input, SolveStatus.no_steady_state, status)
    y_ss = jnp.where(bad_input, 0.0, y_ss)
    finite = jnp.all(jnp.isfinite(y_ss))
    status = SolveStatus.where(
        (status == SolveStatus.successful) & ~finite, SolveStatus.nonfinite, status
    )
    return y_ss, r_ss, status


# ---- linear models ----------------------------------------------------------------------


def _transitions(model: Model, th, A, dts):
    """``Φ(dt)``, ``Ψ(dt)`` for each ``dt`` (``(m, n, n)`` each).

    The model's closed form, or the augmented matrix exponential
    ``exp([[A, I], [0, 0]]·dt)`` (as :func:`twin_uq.simulate.exact.transition_matrices`).
    """
    if model.has_transition:
        return jax.vmap(model.transition, in_axes=(None, 0))(th, dts)
    n = A.shape[0]
    top = jnp.concatenate([A, jnp.eye(n, dtype=A.dtype)], axis=1)
    aug = jnp.concatenate([top, jnp.zeros((n, 2 * n), dtype=A.dtype)], axis=0)
    big = expm(aug[None] * dts[:, None, None])
    return big[:, :n, :n], big[:, :n, n:]


def _checked_solve(M, b):
    """``M⁻¹ b`` and whether ``M`` is invertible.

    Zeros (finite, with finite gradients) where it is not, so that a singular system is a
    status rather than NaN.
    """
    s = jnp.linalg.svd(jax.lax.stop_gradient(M), compute_uv=False)
    ok = jnp.all(jnp.isfinite(s)) & (s[-1] > _RCOND * s[0])
    eye = jnp.eye(M.shape[0], dtype=M.dtype)
    x = jnp.linalg.solve(jnp.where(ok, M, eye), b)
    return jnp.where(ok, x, 0.0), ok


def _linear(model: Model, theta_vec, dose: SteadyDose, g: _Geometry, n: int, dtype):
    th = model.theta_dict(theta_vec)
    A = jnp.asarray(model.linear_system(th), dtype)
    e = jax.nn.one_hot(dose.cmt, n, dtype=dtype)
    dts = jnp.stack([g.ii, g.ii - g.phase_lag, g.ii - g.phase_end])
    phi, psi = _transitions(model, th, A, dts)
    phi, psi = jnp.asarray(phi, dtype), jnp.asarray(psi, dtype)
    # One dose's input carried to the interval end that follows it (module docstring).
    w_bolus = dose.amount * (phi[1] @ e)
    w_infusion = dose.rate * (((g.q_end - g.q_lag) * psi[0] - psi[2] + psi[1]) @ e)
    w = jnp.where(g.infusion, w_infusion, w_bolus)
    y_periodic, ok_periodic = _checked_solve(jnp.eye(n, dtype=dtype) - phi[0], w)
    y_constant, ok_constant = _checked_solve(-A, jnp.where(g.infusion, dose.rate, 0.0) * e)
    y = jnp.where(g.periodic, y_periodic, y_constant)
    ok = jnp.where(g.periodic, ok_periodic, ok_constant)
    return y, SolveStatus.where(ok, SolveStatus.successful, SolveStatus.no_steady_state)


# ---- nonlinear models -------------------------------------------------------------------


def _pack(theta_vec, covariates, dose: SteadyDose, g: _Geometry):
    """Every differentiable input as one vector ``p`` (duration made finite)."""
    scalars = jnp.stack([dose.amount, dose.rate, g.duration, dose.lag, g.ii])
    return jnp.concatenate([theta_vec, covariates, scalars])


def _unpack(model: Model, p, cmt):
    K, C = len(model.parameter_names), len(model.covariates)
    amount, rate, duration, lag, ii = (p[K + C + i] for i in range(5))
    return p[:K], p[K : K + C], SteadyDose(amount, cmt, rate, duration, lag, ii)


def _field(model: Model, theta_vec, covariates):
    th = model.theta_dict(theta_vec)
    cov = dict(zip(model.covariates, covariates, strict=True))
    return lambda t, y, rate: jnp.asarray(model.rhs(t, y, th, {}, cov), y.dtype) + rate


def _flow(model: Model, settings: SolverSettings, field, y, t0, t1, rate):
    """``y`` carried from ``t0`` to ``t1`` under a constant input ``rate`` (and a status)."""
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        _SOLVERS[settings.method](),
        t0=t0,
        t1=t1,
        dt0=settings.dt0,
        y0=y,
        args=rate,
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=diffrax.PIDController(rtol=settings.rtol, atol=settings.atol),
        # Forward mode: the Jacobians of the interval map are taken with jacfwd; reverse
        # mode never enters this loop (module docstring, Gradients).
        adjoint=diffrax.ForwardMode(),
        max_steps=settings.max_steps,
        throw=False,
    )
    status = SolveStatus.where(
        sol.result == diffrax.RESULTS.successful,
        SolveStatus.successful,
        SolveStatus.where(
            sol.result == diffrax.RESULTS.max_steps_reached,
            SolveStatus.max_steps_reached,
            SolveStatus.solver_failed,
        ),
    )
    return sol.ys[-1], status


def _interval_map(model: Model, settings: SolverSettings, p, cmt, y):
    """``P``: the state at the start of an interval carried to the next interval start.

    Within an interval (clock ``τ`` in ``[0, II)``) the periodic input is the wrap of one
    dose's input: ``⌊D/II⌋`` overlapping infusions all along, one more on the wrapped
    remainder ``[ρ(L), ρ(L) + D - ⌊D/II⌋·II)``, and a bolus at ``τ = ρ(L)``: three
    segments of constant rate.
    """
    theta_vec, covariates, dose = _unpack(model, p, cmt)
    n = y.shape[0]
    e = jax.nn.one_hot(cmt, n, dtype=y.dtype)
    ii = dose.ii
    _, start = _phase(dose.lag, ii)
    full = jnp.floor(dose.duration / ii)
    rest = dose.duration - full * ii
    end = start + rest
    wrapped = end > ii  # the remainder crosses the interval end
    base, extra = full * dose.rate, (full + 1.0) * dose.rate
    bounds = jnp.stack(
        [
            jnp.zeros_like(ii),
            jnp.where(wrapped, end - ii, start),
            jnp.where(wrapped, start, end),
            ii,
        ]
    )
    outer, inner = jnp.where(wrapped, extra, base), jnp.where(wrapped, base, extra)
    rates = jnp.stack([outer, inner, outer])
    bolus = jnp.where(dose.rate > 0, 0.0, dose.amount)
    zero = jnp.zeros_like(bolus)
    jumps = jnp.stack([zero, jnp.where(wrapped, zero, bolus), jnp.where(wrapped, bolus, zero)])
    field = _field(model, theta_vec, covariates)

    def segment(carry, xs):
        y_, status = carry
        t0, t1, rate, jump = xs
        y_, seg_status = _flow(model, settings, field, y_ + jump * e, t0, t1, rate * e)
        status = SolveStatus.where(status == SolveStatus.successful, seg_status, status)
        return (y_, status), None

    xs = (bounds[:-1], bounds[1:], rates, jumps)
    (y, status), _ = jax.lax.scan(segment, (y, SolveStatus.successful), xs)
    return y, status


def _scaled(settings: SolverSettings, dy, y):
    """Size of a change ``dy`` in units of the tolerance ``atol + rtol·|y|`` (max norm)."""
    return jnp.max(jnp.abs(dy) / (settings.atol + settings.rtol * jnp.abs(y)))


def _iterate(step, y0, budget: int, active):
    """Repeat ``y <- step(y, i)`` until the change is within tolerance or ``budget`` ends.

    ``step`` returns ``(y_new, size_of_change, status)``; an inactive lane (the other
    branch of a batched select) does not iterate at all. Returns ``(y, converged, status)``.
    """

    def cond(c):
        i, _, done, status = c
        return ~done & (i < budget) & (status == SolveStatus.successful)

    def body(c):
        i, y, _, _ = c
        y_new, size, status = step(y, i)
        return i + 1, y_new, size <= 1.0, status

    init = (jnp.asarray(0), y0, ~active, SolveStatus.successful)
    _, y, done, status = jax.lax.while_loop(cond, body, init)
    return y, done, status


def _fixed_point(settings, residual, y, p, converged, status):
    """The pre-run's ``y`` polished and checked, with the fixed point's gradient.

    One Newton step on ``residual(y, p) = 0``; the check is the Newton estimate of the
    distance to the root at the polished state; the implicit-function gradient is a term
    linear in ``p - stop_gradient(p)`` (zero in value).
    """
    y, p_const = jax.lax.stop_gradient((y, p))
    (J_y, J_p), (res, res_status) = jax.jacfwd(residual, argnums=(0, 1), has_aux=True)(y, p_const)
    step, invertible = _checked_solve(J_y, -res)
    y_new = y + step
    res_new, new_status = jax.lax.stop_gradient(residual(y_new, p_const)[1])
    distance = _scaled(settings, _checked_solve(J_y, -res_new)[0], y_new)
    ok = converged & invertible & (distance <= 1.0)
    for s in (res_status, new_status):
        status = SolveStatus.where(status == SolveStatus.successful, s, status)
    status = SolveStatus.where(
        status == SolveStatus.successful,
        SolveStatus.where(ok, SolveStatus.successful, SolveStatus.steady_state_not_reached),
        status,
    )
    tangent, _ = _checked_solve(J_y, -(J_p @ (p - p_const)))
    return jax.lax.stop_gradient(y_new) + tangent, status


def _nonlinear(model, settings, theta_vec, covariates, dose: SteadyDose, g: _Geometry, budget):
    if model.signals:
        raise InputError(
            f"Model {model.name!r} reads measured signals {model.signals}; a steady-state "
            "dose (SS=1/2) assumes the same dynamics in every dosing interval, which "
            "time-varying signals break. Give the doses explicitly (ADDL) instead of SS."
        )
    settings = settings.adaptive_reference()
    if settings.method not in _SOLVERS:
        raise InputError(
            f"Model {model.name!r} is not linear: its steady state needs an ODE solver "
            f"('tsit5', 'dopri5', 'kvaerno5'), not method={settings.method!r}."
        )
    n = len(model.states)
    cmt = dose.cmt
    p = _pack(theta_vec, covariates, dose, g)
    y0 = jnp.zeros(n, p.dtype)

    # Periodic dosing: fixed point of the interval map.
    def periodic_residual(y, p_):
        y_next, status = _interval_map(model, settings, p_, cmt, y)
        return y_next - y, (y_next - y, status)

    # The pre-runs see constants only: no derivative ever enters their loops.
    p_ = jax.lax.stop_gradient(p)

    def interval(y, i):
        y_next, status = _interval_map(model, settings, p_, cmt, y)
        return y_next, _scaled(settings, y_next - y, y_next), status

    y_per, conv_per, st_per = _iterate(interval, y0, budget, g.periodic)
    y_per, st_per = _fixed_point(settings, periodic_residual, y_per, p, conv_per, st_per)

    # Constant infusion (II = 0): the equilibrium f(y) + R·e = 0, approached over
    # doubling horizons 1, 2, 4, ... time units (no natural interval to repeat).
    def constant_residual(y, p_):
        th_, cov_, dose_ = _unpack(model, p_, cmt)
        value = _field(model, th_, cov_)(0.0, y, dose_.rate * jax.nn.one_hot(cmt, n, dtype=y.dtype))
        return value, (value, SolveStatus.successful)

    def horizon(y, i):
        th_, cov_, dose_ = _unpack(model, p_, cmt)
        rate = dose_.rate * jax.nn.one_hot(cmt, n, dtype=y.dtype)
        t1 = jnp.asarray(2.0, y.dtype) ** i
        y_next, status = _flow(model, settings, _field(model, th_, cov_), y, 0.0, t1, rate)
        return y_next, _scaled(settings, y_next - y, y_next), status

    constant = ~g.periodic & g.infusion
    y_con, conv_con, st_con = _iterate(horizon, y0, _MAX_DOUBLINGS, constant)
    y_con, st_con = _fixed_point(settings, constant_residual, y_con, p, conv_con, st_con)

    y = jnp.where(g.periodic, y_per, y_con)
    status = SolveStatus.where(g.periodic, st_per, st_con)
    return y, status
