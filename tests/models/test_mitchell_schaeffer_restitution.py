"""mitchell_schaeffer_restitution: steady-state APD against pacing cycle length."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import twin_uq as tq
from twin_uq.inference.likelihood import patient_predictions
from twin_uq.testing import check_model

THETA = {"tau_close": 140.0, "tau_open": 150.0, "h_min": 0.1}
BCLS = np.array([250.0, 300.0, 400.0, 600.0, 1000.0])


@pytest.fixture(scope="module")
def model():
    return tq.load_model("mitchell_schaeffer_restitution")


@pytest.fixture(scope="module")
def module(model):
    return sys.modules[type(model).__module__]


def _map(di, th):
    """The Mitchell-Schaeffer restitution map, written again in NumPy."""
    h = th["h_min"]
    return th["tau_close"] * np.log((1 - (1 - h) * np.exp(-di / th["tau_open"])) / h)


def test_passes_check_model(model):
    assert check_model(model) is model


def test_apd_is_the_fixed_point_found_by_bisection(model, module):
    # Independent solution: bracketing root finder on APD - f(BCL - APD) in [0, BCL].
    traj = tq.simulate(model, THETA, tq.Schedule.build(), BCLS)
    assert bool(traj.ok)
    apd = np.asarray(traj.outputs)[:, 0]
    expected = [brentq(lambda a, b=b: a - _map(b - a, THETA), 0.0, b, xtol=1e-12) for b in BCLS]
    np.testing.assert_allclose(apd, expected, rtol=0, atol=1e-8)
    # Slope at the steady state: the map's derivative by central differences.
    slope = module.restitution_slopes({k: np.array([v]) for k, v in THETA.items()}, 250.0)[0]
    di = 250.0 - expected[0]
    numeric = (_map(di + 1e-4, THETA) - _map(di - 1e-4, THETA)) / 2e-4
    assert slope == pytest.approx(numeric, rel=1e-6)
    assert slope > 1.0  # alternans at 250 ms for these values, none at 1000 ms
    assert module.restitution_slopes({k: np.array([v]) for k, v in THETA.items()}, 1000.0)[0] < 1


def test_stable_fixed_point_is_where_pacing_settles(module):
    # At 600 ms the slope is below 1: iterating APD_{n+1} = f(BCL - APD_n) converges to it.
    a = 200.0
    for _ in range(500):
        a = _map(600.0 - a, THETA)
    apd, slope, residual = module.steady_state(600.0, *THETA.values())
    assert float(slope) < 1.0 and float(residual) < 1e-9
    assert float(apd) == pytest.approx(a, abs=1e-9)


def test_unconverged_solve_is_nan_not_a_number(module, monkeypatch):
    monkeypatch.setattr(module, "NEWTON_ITERATIONS", 1)
    apd, slope, residual = module.steady_state(400.0, *THETA.values())
    assert np.isnan(apd) and np.isnan(slope) and float(residual) > module.NEWTON_TOLERANCE


@pytest.mark.slow
def test_unconverged_solve_is_a_failed_solve(model, module, monkeypatch):
    monkeypatch.setattr(module, "NEWTON_ITERATIONS", 1)
    # A fresh class compiles afresh (compiled solves are cached by model class).
    fresh = type("Unconverged", (type(model),), {"name": "unconverged"})()
    traj = tq.simulate(fresh, THETA, tq.Schedule.build(), BCLS)
    assert np.isnan(np.asarray(traj.outputs)).all()
    # The likelihood counts a non-finite prediction as a failed solve (ok = False).
    _, ok = patient_predictions(
        fresh,
        fresh.solver,
        jnp.asarray(list(THETA.values())),
        jnp.zeros(0),
        tq.Schedule.build(),
        jnp.asarray(BCLS),
        jnp.zeros(BCLS.size, int),
    )
    assert not bool(ok)


def test_gradient_matches_finite_differences(module):
    def apd(tc):
        return module.steady_state(400.0, tc, 150.0, 0.1)[0]

    g = jax.grad(apd)(140.0)
    fd = (apd(140.0 + 1e-4) - apd(140.0 - 1e-4)) / 2e-4
    assert float(g) == pytest.approx(float(fd), rel=1e-6)
