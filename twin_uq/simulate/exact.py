"""Exact solution of linear models ``dy/dt = A y + u(t)`` with piecewise-constant ``u``.

Between two consecutive points of the merged, sorted grid of event times (boluses,
infusion starts and stops) and observation times the input rate ``r`` is constant, so

    y(t + dt) = Φ(dt) y(t) + Ψ(dt) r,   Φ(dt) = exp(A dt),   Ψ(dt) = ∫_0^dt exp(A s) ds,

and a bolus is a jump ``y += amount · e_cmt``. Both blocks come out of one matrix
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
from twin_uq.simulate.events import bolus_jumps, infusion_rate_vectors
from twin_uq.simulate.schedule import PatientInputs
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
        Individual parameters in ``model.parameter_names`` order, natural scale, ``(K,)``.
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
    covariates, schedule, times = patient
    th = model.theta_dict(theta)
    cov = dict(zip(model.covariates, covariates, strict=True))
    n = len(model.states)
    dtype = jnp.result_type(theta.dtype, float)
    times = jnp.asarray(times, dtype)
    A = jnp.asarray(model.linear_system(th), dtype)
    y0 = jnp.asarray(model.y0(th, cov), dtype)
    t_end = jnp.max(times)

    nb, ni = schedule.n_bolus, schedule.n_infusion
    clip = lambda t: jnp.clip(t, 0.0, t_end)  # noqa: E731
    rates = infusion_rate_vectors(model, schedule).astype(dtype)
    zeros_b = jnp.zeros((nb, n), dtype)
    zeros_i = jnp.zeros((ni, n), dtype)
    zeros_t = jnp.zeros((times.shape[0], n), dtype)
    # Events first so that a stable sort puts them before observations at equal times.
    grid = jnp.concatenate(
        [
            clip(schedule.bolus_time),
            clip(schedule.infusion_start),
            clip(schedule.infusion_stop),
            times,
        ]
    )
    jump = jnp.concatenate(
        [bolus_jumps(model, schedule, t_end).astype(dtype), zeros_i, zeros_i, zeros_t]
    )
    d_rate = jnp.concatenate([zeros_b, rates, -rates, zeros_t])

    order = jnp.argsort(grid, stable=True)
    g = grid[order]
    dt = jnp.diff(g, prepend=jnp.zeros((1,), dtype))
    if model.has_transition:
        phi, psi = jax.vmap(model.transition, in_axes=(None, 0))(th, dt)
    else:
        phi, psi = transition_matrices(A, dt)

    def step(carry, xs):
        y, r = carry
        phi_k, psi_k, jump_k, d_rate_k = xs
        y = phi_k @ y + psi_k @ r + jump_k
        return (y, r + d_rate_k), y

    _, ys = jax.lax.scan(step, (y0, jnp.zeros(n, dtype)), (phi, psi, jump[order], d_rate[order]))
    position = jnp.argsort(order)[nb + 2 * ni :]
    states = ys[position]
    finite = jnp.all(jnp.isfinite(states))
    return states, SolveStatus.where(finite, SolveStatus.successful, SolveStatus.nonfinite)
