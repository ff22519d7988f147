"""Exact solution of linear models ``dy/dt = A y + u(t)`` with piecewise-constant ``u``.

Between two consecutive points of the merged, sorted grid of dose event times
(:class:`~twin_uq.simulate.dose_events.DoseEvents`: boluses, infusion starts and stops,
resets, steady-state sets, with lags applied) and observation times the input rate ``r``
is constant, so

    y(t + dt) = Φ(dt) y(t) + Ψ(dt) r,   Φ(dt) = exp(A dt),   Ψ(dt) = ∫_0^dt exp(A s) ds,

and at an event ``y = keep·y + set_state + jump``, ``r = keep·r + rate_change`` (a bolus
is a jump ``y += F·amount · e_cmt``; at equal times resets, steady-state sets, doses, then
observations). Both blocks come out of one matrix
exponential of the augmented matrix ``[[A, I], [0, 0]] · dt`` (top-left block Φ,
top-right block Ψ), which does not need ``A`` to be invertible (e.g. a model with no
elimination from some compartment).

Why a sequential propagation rather than superposition over doses: superposition needs
one matrix exponential per (observation, dose) pair, ``T · (1 + n_bolus + 2 n_infusion)``
of them; propagation needs one per grid point, ``T + n_bolus + 2 n_infusion``, all computed
in one batched call, followed by a ``lax.scan`` of small matrix-vector products. Both are
exact up to rounding. Plain reverse-mode AD differentiates through it (no ODE solver).

A model may provide a closed form ``transition(theta, dt) -> (Φ, Ψ)`` (an optional hook
declared on :class:`~twin_uq.Model`, see :attr:`~twin_uq.Model.has_transition`) which then
replaces the matrix exponential.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm
from jaxtyping import Array, Float

from twin_uq.errors import InputError
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.dose_events import ORDER_OBSERVATION, resolve_doses
from twin_uq.simulate.schedule import PatientInputs
from twin_uq.simulate.segments import check_piecewise, theta_at
from twin_uq.simulate.status import SolveStatus

__all__ = ["solve_exact", "transition_matrices"]


def transition_matrices(
    A: Float[Array, "n n"], dt: Float[Array, " m"]
) -> tuple[Float[Array, "m n n"], Float[Array, "m n n"]]:
    """``Φ(dt) = exp(A dt)`` and ``Ψ(dt) = ∫_0^dt exp(A s) ds`` for each ``dt``.

    Parameters
    ----------
    A
        System matrix, shape ``(n, n)`` (per time unit).
    dt
        Non-negative time steps, shape ``(m,)``.

    Returns
    -------
    Phi, Psi
        Each of shape ``(m, n, n)``.
    """
    n = A.shape[0]
    top = jnp.concatenate([A, jnp.eye(n, dtype=A.dtype)], axis=1)
    aug = jnp.concatenate([top, jnp.zeros((n, 2 * n), dtype=A.dtype)], axis=0)
    big = expm(aug[None] * dt[:, None, None])
    return big[:, :n, :n], big[:, :n, n:]


def solve_exact(
    model: Model,
    settings: SolverSettings,
    theta: Float[Array, " K"],
    patient: PatientInputs,
) -> tuple[Float[Array, "T n_states"], SolveStatus]:
    """States of a linear model at ``patient.times`` (any order), and how the solve ended.

    The signature of the other solve paths (:func:`twin_uq.simulate.ode.solve_ode`,
    :func:`twin_uq.simulate.fixed_step.solve_fixed_step`); ``settings`` only selects this
    path (``method="exact"``), the solution has no tolerance.

    Parameters
    ----------
    model
        A model with ``linear_system`` (a ``ValueError`` when tracing otherwise).
    settings
        ``method="exact"``.
    theta
        Individual parameters in ``model.parameter_names`` order, natural scale, ``(K,)``;
        or ``(S, K)``, piecewise constant from ``patient.change_time`` on
        (:mod:`twin_uq.simulate.segments`; ``y0`` from the first segment).
    patient
        Covariates, schedule and observation times (any order, padding allowed).

    Returns
    -------
    states, status
        ``(T, n_states)`` states (post-dose at dose times); ``SolveStatus.successful``, or
        ``SolveStatus.nonfinite`` (e.g. a matrix exponential overflowing for extreme
        parameters).
    """
    if settings.method != "exact":
        raise InputError(f"solve_exact runs method='exact', not {settings.method!r}.")
    if not model.is_linear:
        raise InputError(
            f"Model {model.name!r} has no linear_system; method='exact' needs one. Use an "
            "ODE solver ('tsit5', 'dopri5', 'kvaerno5')."
        )
    covariates, times = patient.covariates, patient.times
    piecewise = check_piecewise(theta, patient.change_time)
    th = model.theta_dict(theta[0] if piecewise else theta)
    cov = dict(zip(model.covariates, covariates, strict=True))
    n = len(model.states)
    dtype = jnp.result_type(theta.dtype, float)
    times = jnp.asarray(times, dtype)
    A = jnp.asarray(model.linear_system(th), dtype)
    y0 = jnp.asarray(model.y0(th, cov), dtype)
    t_end = jnp.max(times)

    events, dose_status = resolve_doses(model, settings, theta, patient, t_end)
    n_events, n_times = events.n_events, times.shape[0]
    # Events first, observations after them at equal times (post-dose observations);
    # among events, resets, then steady-state sets, then doses (their `order`).
    grid = jnp.concatenate([events.time.astype(dtype), times])
    rank = jnp.concatenate([events.order, jnp.full(n_times, ORDER_OBSERVATION, jnp.int32)])
    by_rank = jnp.argsort(rank, stable=True)
    order = by_rank[jnp.argsort(grid[by_rank], stable=True)]
    zeros_t = jnp.zeros((n_times, n), dtype)
    keep = jnp.concatenate([events.keep.astype(dtype), jnp.ones(n_times, dtype)])
    set_state = jnp.concatenate([events.set_state.astype(dtype), zeros_t])
    jump = jnp.concatenate([events.jump.astype(dtype), zeros_t])
    d_rate = jnp.concatenate([events.rate_change.astype(dtype), zeros_t])

    g = grid[order]
    dt = jnp.diff(g, prepend=jnp.zeros((1,), dtype))
    if piecewise:
        # Each interval (g[k-1], g[k]] with the parameters in force at its start; every
        # change time is a grid point (a neutral event), so none straddles a change.
        start = jnp.concatenate([jnp.zeros((1,), dtype), g[:-1]])
        th_k = jax.vmap(model.theta_dict)(theta_at(theta, patient.change_time, start))
        if model.has_transition:
            phi, psi = jax.vmap(model.transition)(th_k, dt)
        else:
            A_k = jax.vmap(lambda t: jnp.asarray(model.linear_system(t), dtype))(th_k)
            phi, psi = jax.vmap(lambda a, d: transition_matrices(a, d[None]))(A_k, dt)
            phi, psi = phi[:, 0], psi[:, 0]
    elif model.has_transition:
        phi, psi = jax.vmap(model.transition, in_axes=(None, 0))(th, dt)
    else:
        phi, psi = transition_matrices(A, dt)

    def step(carry, xs):
        y, r = carry
        phi_k, psi_k, keep_k, set_k, jump_k, d_rate_k = xs
        y = keep_k * (phi_k @ y + psi_k @ r) + set_k + jump_k
        return (y, keep_k * r + d_rate_k), y

    xs = (phi, psi, keep[order], set_state[order], jump[order], d_rate[order])
    _, ys = jax.lax.scan(step, (y0, jnp.zeros(n, dtype)), xs)
    position = jnp.argsort(order)[n_events:]
    states = ys[position]
    finite = jnp.all(jnp.isfinite(states))
    status = SolveStatus.where(finite, SolveStatus.successful, SolveStatus.nonfinite)
    return states, SolveStatus.where(dose_status == SolveStatus.successful, status, dose_status)
