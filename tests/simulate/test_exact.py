"""Exact (matrix-exponential) path: transition blocks, mass balance, jumps, vs the ODE path."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.linalg import expm

from twin_uq.model.base import SolverSettings
from twin_uq.simulate import Bolus, Infusion, Schedule, solve_outputs
from twin_uq.simulate.exact import transition_matrices

THETA = jnp.array([1.3, 4.0, 40.0])
TIMES = jnp.array([30.0, 0.0, 0.5, 2.0, 3.0, 4.0, 6.0, 8.0, 8.0, 12.0, 24.0, 29.0])
NOCOV = jnp.zeros(0)
TIGHT_ODE = SolverSettings("tsit5", rtol=1e-10, atol=1e-12)
# Compiled once per (model, settings, shapes) and shared by the tests.
solve = jax.jit(solve_outputs, static_argnums=(0, 5))


def schedule():
    return Schedule.build(
        [Bolus(0.0, 100.0), Bolus(8.0, 50.0), Bolus(8.0, 25.0, cmt=2)],
        [Infusion(3.0, 20.0, 2.5, cmt=2)],
        n_bolus=4,
        n_infusion=2,
    )


def test_transition_blocks_even_for_singular_A():
    # Singular A (the third state only accumulates): Psi = ∫_0^h exp(A s) ds is fixed by
    # A Psi = Phi - I together with w Psi = h w for the left null vector w = (1, 1, 1).
    A = np.array([[-1.0, 0.0, 0.0], [1.0, -0.2, 0.0], [0.0, 0.2, 0.0]])
    w = np.ones(3)
    dt = np.array([0.0, 0.3, 7.0])
    phi, psi = transition_matrices(jnp.asarray(A), jnp.asarray(dt))
    for k, h in enumerate(dt):
        np.testing.assert_allclose(phi[k], expm(A * h), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(A @ psi[k], phi[k] - np.eye(3), atol=1e-13)
        np.testing.assert_allclose(w @ psi[k], h * w, rtol=1e-12, atol=1e-14)


def test_mass_balance_exact_and_ode(sink_model):
    sched = schedule()
    for settings in (SolverSettings("exact"), TIGHT_ODE):
        _, outputs, ok = solve(sink_model, THETA, NOCOV, sched, TIMES, settings)
        t = np.asarray(TIMES)
        dosed = (
            100.0 * (t >= 0) + 75.0 * (t >= 8) + 20.0 * np.clip(t - 3.0, 0.0, 2.5)  # infused so far
        )
        assert bool(ok)
        np.testing.assert_allclose(outputs[:, 1], dosed, rtol=1e-9)


def test_observation_at_dose_time_is_post_dose(sink_model):
    # Two boluses at t=8 (cmt 1 and 2) add up; an observation at t=8 sees both.
    states, _, _ = solve(sink_model, THETA, NOCOV, schedule(), TIMES, SolverSettings("exact"))
    before = solve(
        sink_model, THETA, NOCOV, schedule(), TIMES.at[7].set(8.0 - 1e-9), SolverSettings("exact")
    )[0]
    jump = np.asarray(states[7] - before[7])
    np.testing.assert_allclose(jump, [50.0, 25.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(states[7], states[8], rtol=1e-14)  # duplicate time, same value
    # A bolus at t=0 is seen at t=0.
    np.testing.assert_allclose(states[1], [100.0, 0.0, 0.0], atol=1e-12)


def test_exact_equals_ode_path(sink_model):
    exact = solve(sink_model, THETA, NOCOV, schedule(), TIMES, SolverSettings("exact"))
    ode = solve(sink_model, THETA, NOCOV, schedule(), TIMES, TIGHT_ODE)
    np.testing.assert_allclose(exact[0], ode[0], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(exact[1], ode[1], rtol=1e-6, atol=1e-10)


def test_doses_after_last_time_and_padding_are_ignored(sink_model):
    late = Schedule.build(
        [Bolus(0.0, 100.0), Bolus(8.0, 50.0), Bolus(8.0, 25.0, cmt=2), Bolus(31.0, 1e6)],
        [Infusion(3.0, 20.0, 2.5, cmt=2), Infusion(40.0, 1e6, 1.0)],
        n_bolus=4,
        n_infusion=2,
    )
    for settings in (SolverSettings("exact"), TIGHT_ODE):
        a = solve(sink_model, THETA, NOCOV, schedule(), TIMES, settings)[0]
        b = solve(sink_model, THETA, NOCOV, late, TIMES, settings)[0]
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_exact_gradient_matches_central_differences(oral):
    cov = jnp.array([70.0])
    sched = schedule()

    @jax.jit
    def f(th):
        return jnp.sum(solve(oral, th, cov, sched, TIMES, None)[1] ** 2)

    g = jax.grad(f)(THETA)
    h = 1e-5 * THETA
    fd = jnp.stack(
        [(f(THETA.at[k].add(h[k])) - f(THETA.at[k].add(-h[k]))) / (2 * h[k]) for k in range(3)]
    )
    np.testing.assert_allclose(g, fd, rtol=1e-7)
