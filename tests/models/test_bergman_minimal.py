"""bergman_minimal: IVGTT glucose with a measured insulin profile."""

import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.testing import check_model

IB = 10.0
KNOTS = np.array([0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100, 120, 150, 180, 240, 300.0])
TIMES = np.arange(0.0, 301.0, 5.0)


def realistic_insulin(t):
    """First-phase peak of ~100 µU/mL at 2 min and a second phase, back to Ib by ~150 min."""
    first = 90.0 * np.exp(-t / 8.0)
    second = 20.0 * (t / 30.0) * np.exp(1.0 - t / 30.0)
    return IB + first + second


@pytest.fixture(scope="module")
def model():
    return tq.load_model("bergman_minimal")


def test_passes_check_model(model):
    # The checks tq.fit and tq.simulate run on every model, called as a model's author would.
    assert check_model(model) is model


@pytest.fixture(scope="module")
def theta(model):
    return {p.name: p.typical for p in model.parameters}


def run(model, theta, insulin):
    schedule = tq.Schedule.build(
        signals=[tq.Signal("insulin", KNOTS, insulin)], signal_names=model.signals
    )
    traj = tq.simulate(model, theta, schedule, TIMES, covariates={"Ib": IB})
    assert bool(traj.ok)
    return np.asarray(traj.states), np.asarray(traj.outputs)[:, 0]


def test_glucose_returns_to_basal(model, theta):
    states, glucose = run(model, theta, realistic_insulin(KNOTS))
    assert glucose[0] == pytest.approx(theta["G0"])
    # Insulin drives glucose below its basal level (the classical undershoot) ...
    assert glucose.min() < theta["Gb"] - 5.0
    # ... and once insulin is back at Ib, X decays (rate p2) and G returns to Gb (rate SG).
    assert glucose[-1] == pytest.approx(theta["Gb"], abs=2.0)
    assert abs(states[-1, 1]) < 1e-3
    np.testing.assert_allclose(states[:, 2], IB)


def test_basal_insulin_gives_exponential_recovery(model, theta):
    # With I(t) = Ib the insulin action stays 0: G = Gb + (G0 - Gb)·exp(-SG·t).
    states, glucose = run(model, theta, np.full(KNOTS.shape, IB))
    expected = theta["Gb"] + (theta["G0"] - theta["Gb"]) * np.exp(-theta["SG"] * TIMES)
    np.testing.assert_allclose(glucose, expected, rtol=1e-5)
    np.testing.assert_allclose(states[:, 1], 0.0, atol=1e-12)


def test_more_insulin_sensitive_patient_clears_glucose_faster(model, theta):
    insulin = realistic_insulin(KNOTS)
    _, normal = run(model, theta, insulin)
    _, sensitive = run(model, theta | {"SI": 2 * theta["SI"]}, insulin)
    early = TIMES <= 60
    assert np.all(sensitive[early][1:] < normal[early][1:])


def test_rhs_matches_equations(model, theta):
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    y = jnp.array([150.0, 0.01, IB])
    dy = np.asarray(model.rhs(0.0, y, th, {"insulin": jnp.asarray(40.0)}, {"Ib": IB}))
    assert dy[0] == pytest.approx(-(theta["SG"] + 0.01) * 150.0 + theta["SG"] * theta["Gb"])
    assert dy[1] == pytest.approx(-theta["p2"] * 0.01 + theta["p2"] * theta["SI"] * 30.0)
    assert dy[2] == 0.0
