"""Parameters piecewise constant in time (time-varying covariates) on every solve path.

Reference: one-compartment IV boluses (100 mg at 0 h and 6 h) whose clearance and volume
switch at 12 h, CL 5 -> 10 L/h, V 50 -> 40 L: a piecewise exponential written out by hand.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from models.one_compartment_iv import OneCompartmentIV
from twin_uq.errors import InputError
from twin_uq.simulate import solve
from twin_uq.simulate.schedule import Schedule

THETA = np.array([[5.0, 50.0], [10.0, 40.0]])
CHANGE = np.array([0.0, 12.0])
TIMES = np.array([0.5, 3.0, 6.0, 9.0, 12.0, 12.5, 15.0, 24.0, 11.999])


class MatrixExponential(OneCompartmentIV):
    """The same model without its closed-form transition: the generic expm path."""

    name = "one_compartment_iv_expm"
    transition = tq.Model.transition


def analytic(theta, times):
    """Concentration of the piecewise one-compartment model (JAX: differentiable)."""
    (cl1, v1), (cl2, v2) = theta[0], theta[1]
    k1, k2 = cl1 / v1, cl2 / v2
    a6 = 100.0 * jnp.exp(-k1 * 6.0) + 100.0
    a12 = a6 * jnp.exp(-k1 * 6.0)
    amount = jnp.where(
        times < 6.0,
        100.0 * jnp.exp(-k1 * times),
        jnp.where(
            times < 12.0, a6 * jnp.exp(-k1 * (times - 6.0)), a12 * jnp.exp(-k2 * (times - 12.0))
        ),
    )
    return amount / jnp.where(times < 12.0, v1, v2)


# path: (model, settings, rtol of the values, rtol of the gradient)
SETTINGS = {
    "exact": (OneCompartmentIV(), tq.SolverSettings("exact"), 1e-12, 1e-10),
    "expm": (MatrixExponential(), tq.SolverSettings("exact"), 1e-12, 1e-10),
    "tsit5": (OneCompartmentIV(), tq.SolverSettings("tsit5", rtol=1e-11, atol=1e-12), 1e-8, 1e-7),
    "rk4": (OneCompartmentIV(), tq.SolverSettings("rk4", fixed_step=0.02), 1e-8, 1e-7),
}
# One fast check by default (the exact path); each path compiles for 5-20 s.
PATHS = [p if p == "exact" else pytest.param(p, marks=pytest.mark.slow) for p in SETTINGS]


def _schedule():
    return Schedule.build(boluses=[tq.Bolus(0.0, 100.0), tq.Bolus(6.0, 100.0)])


@pytest.mark.parametrize("path", PATHS)
def test_piecewise_exponential_on_every_path(path):
    model, settings, rtol, grad_rtol = SETTINGS[path]
    traj = solve(model, THETA, [70.0], _schedule(), TIMES, settings, change_times=CHANGE)
    assert traj.ok
    expected = analytic(jnp.asarray(THETA), jnp.asarray(TIMES))
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=rtol)

    # The gradient with respect to both segments' parameters: that of the analytic form.
    def loss(th):
        return jnp.sum(
            solve(model, th, [70.0], _schedule(), TIMES, settings, change_times=CHANGE).outputs
        )

    grad = jax.grad(loss)(jnp.asarray(THETA))
    expected_grad = jax.grad(lambda th: jnp.sum(analytic(th, jnp.asarray(TIMES))))(
        jnp.asarray(THETA)
    )
    np.testing.assert_allclose(grad, expected_grad, rtol=grad_rtol)


@pytest.mark.parametrize("path", PATHS)
def test_one_segment_is_the_constant_solve_bit_for_bit(path):
    model, settings, _, _ = SETTINGS[path]
    plain = solve(model, THETA[0], [70.0], _schedule(), TIMES, settings)
    one = solve(model, THETA[:1], [70.0], _schedule(), TIMES, settings, change_times=[0.0])
    np.testing.assert_array_equal(plain.outputs, one.outputs)
    # Padding segments (+inf) never start: the constant solve, up to rounding.
    padded = solve(
        model,
        np.stack([THETA[0], THETA[1]]),
        [70.0],
        _schedule(),
        TIMES,
        settings,
        change_times=[0.0, np.inf],
    )
    np.testing.assert_allclose(padded.outputs, plain.outputs, rtol=1e-12)


def test_shapes_are_checked():
    model = OneCompartmentIV()
    with pytest.raises(InputError, match="change_times"):
        solve(model, THETA, [70.0], _schedule(), TIMES)
    with pytest.raises(InputError, match="change_times"):
        solve(model, THETA, [70.0], _schedule(), TIMES, change_times=[0.0, 1.0, 2.0])


def test_simulate_front_door_takes_change_times():
    traj = tq.simulate(OneCompartmentIV(), THETA, _schedule(), TIMES, change_times=CHANGE)
    np.testing.assert_allclose(
        traj.outputs[:, 0], analytic(jnp.asarray(THETA), jnp.asarray(TIMES)), rtol=1e-12
    )
    with pytest.raises(InputError, match="shape"):
        tq.simulate(OneCompartmentIV(), THETA[0], _schedule(), TIMES, change_times=CHANGE)
