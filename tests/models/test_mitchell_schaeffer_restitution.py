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

#: Gate constants of a map (ms, ms, 1); the model is fitted in THETA, computed from them
#: with scipy's brentq (an independent solver) by `_fitted`.
GATES = {"tau_close": 140.0, "tau_open": 150.0, "h_min": 0.1}
BCLS = np.array([250.0, 300.0, 400.0, 600.0, 1000.0])


def _map(di, th):
    """The Mitchell-Schaeffer restitution map, written again in NumPy."""
    h = th["h_min"]
    return th["tau_close"] * np.log((1 - (1 - h) * np.exp(-di / th["tau_open"])) / h)


def _steady(bcl, th):
    """Steady-state APD at ``bcl`` by bracketing root finding on APD - f(BCL - APD)."""
    return brentq(lambda a: a - _map(bcl - a, th), 0.0, bcl, xtol=1e-13)


def _fitted(th):
    """The model's parameters for gate constants ``th``: APD at 1000 ms, shortening to 500 ms.

    The shortening is the definition of the model card: APD_500 = hi - s·(hi - lo) with
    lo = APD_1000·500/1000 and hi = min(APD_1000, 500).
    """
    slow, fast = _steady(1000.0, th), _steady(500.0, th)
    hi, lo = min(slow, 500.0), slow * 0.5
    return {"apd_slow": slow, "shortening": (hi - fast) / (hi - lo), "h_min": th["h_min"]}


THETA = _fitted(GATES)


@pytest.fixture(scope="module")
def model():
    return tq.load_model("mitchell_schaeffer_restitution")


@pytest.fixture(scope="module")
def module(model):
    return sys.modules[type(model).__module__]


def test_passes_check_model(model):
    assert check_model(model) is model


def test_apd_is_the_fixed_point_found_by_bisection(model, module):
    # Independent solution: bracketing root finder on APD - f(BCL - APD) in [0, BCL].
    traj = tq.simulate(model, THETA, tq.Schedule.build(), BCLS)
    assert bool(traj.ok)
    apd = np.asarray(traj.outputs)[:, 0]
    expected = [_steady(b, GATES) for b in BCLS]
    np.testing.assert_allclose(apd, expected, rtol=0, atol=1e-8)
    # Slope at the steady state: the map's derivative by central differences.
    slope = module.restitution_slopes({k: np.array([v]) for k, v in THETA.items()}, 250.0)[0]
    di = 250.0 - expected[0]
    numeric = (_map(di + 1e-4, GATES) - _map(di - 1e-4, GATES)) / 2e-4
    assert slope == pytest.approx(numeric, rel=1e-6)
    assert slope > 1.0  # alternans at 250 ms for these values, none at 1000 ms
    assert module.restitution_slopes({k: np.array([v]) for k, v in THETA.items()}, 1000.0)[0] < 1


def test_stable_fixed_point_is_where_pacing_settles(module):
    # At 600 ms the slope is below 1: iterating APD_{n+1} = f(BCL - APD_n) converges to it.
    a = 200.0
    for _ in range(500):
        a = _map(600.0 - a, GATES)
    apd, slope, residual = module.steady_state(600.0, *GATES.values())
    assert float(slope) < 1.0 and float(residual) < 1e-9
    assert float(apd) == pytest.approx(a, abs=1e-9)


def test_unconverged_solve_is_nan_not_a_number(module, monkeypatch):
    monkeypatch.setattr(module, "NEWTON_ITERATIONS", 1)
    apd, slope, residual = module.steady_state(400.0, *GATES.values())
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


def test_gate_parameters_invert_the_reference_apds(module):
    # Round trip through an independent solver: gates -> (brentq) APDs at 1000 and 500 ms
    # -> the model's root for tau_open and closed form for tau_close -> the same gates.
    for gates in (GATES, {"tau_close": 900.0, "tau_open": 80.0, "h_min": 0.7}):
        th = _fitted(gates)
        tc, to, h = module.gate_parameters(th["apd_slow"], th["shortening"], th["h_min"])
        assert float(tc) == pytest.approx(gates["tau_close"], rel=1e-9)
        assert float(to) == pytest.approx(gates["tau_open"], rel=1e-9)
        assert float(h) == gates["h_min"]


def test_gate_parameters_have_exact_gradients(module):
    # The bisection carries no derivative: the implicit-function step must, here checked
    # against central differences of the steady-state slope at 400 ms in each parameter.
    x0 = np.array([THETA["apd_slow"], THETA["shortening"], THETA["h_min"]])

    @jax.jit
    def slope(x):
        return module.steady_state(400.0, *module.gate_parameters(x[0], x[1], x[2]))[1]

    grad = np.asarray(jax.jit(jax.grad(slope))(jnp.asarray(x0)))
    for k, step in enumerate((1e-4, 1e-7, 1e-7)):
        d = np.zeros(3)
        d[k] = step
        fd = (slope(jnp.asarray(x0 + d)) - slope(jnp.asarray(x0 - d))) / (2 * step)
        assert grad[k] == pytest.approx(float(fd), rel=1e-5)


def test_every_shortening_is_a_map_and_the_edges_fail_as_nan(module):
    # Any shortening in (0, 1) not within 1e-6 of the edges gives a valid map; beyond the
    # bracket the gates are NaN (a failed solve), never clipped values.
    s = np.array([1e-5, 0.01, 0.5, 0.99, 1 - 1e-5])
    tc, to, _ = module.gate_parameters(350.0, s, 0.3)
    assert np.isfinite(np.asarray(tc)[:4]).all() and np.isfinite(np.asarray(to)[:4]).all()
    assert np.isnan(np.asarray(tc)[4]) and np.isnan(np.asarray(to)[4])
    # A long APD at 1000 ms: the APD at 500 ms stays below 500 ms (a 1:1 steady state).
    assert float(module.fast_apd(700.0, 0.01)) < 500.0
