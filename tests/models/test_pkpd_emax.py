"""pkpd_emax: simulated concentration and effect against the closed-form solution."""

import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.testing import check_model

DOSE = 100.0
TIMES = np.linspace(0.0, 24.0, 97)


@pytest.fixture(scope="module")
def model():
    return tq.load_model("pkpd_emax")


def test_passes_check_model(model):
    # The checks tq.fit and tq.simulate run on every model, called as a model's author would.
    assert check_model(model) is model


@pytest.fixture(scope="module")
def theta(model):
    return {p.name: p.typical for p in model.parameters}


@pytest.fixture(scope="module")
def traj(model, theta):
    schedule = tq.Schedule.build(boluses=[tq.Bolus(0.0, DOSE, 1)])
    out = tq.simulate(model, theta, schedule, TIMES)
    assert bool(out.ok)
    return out


def analytic(theta, t):
    ka, ke0, v = theta["KA"], theta["KE0"], theta["V"]
    k = theta["CL"] / v
    a = DOSE * ka / (v * (ka - k))
    conc = a * (np.exp(-k * t) - np.exp(-ka * t))
    # Convolution of the Bateman function with KE0·exp(-KE0·t).
    ce = a * ke0 * (
        (np.exp(-k * t) - np.exp(-ke0 * t)) / (ke0 - k)
        - (np.exp(-ka * t) - np.exp(-ke0 * t)) / (ke0 - ka)
    )
    effect = theta["E0"] + theta["EMAX"] * ce / (theta["EC50"] + ce)
    return conc, ce, effect


def test_matches_closed_form(traj, theta):
    conc, ce, effect = analytic(theta, TIMES)
    out = np.asarray(traj.outputs)
    # rtol 1e-6 per step accumulates to ~1e-5 over the trajectory.
    np.testing.assert_allclose(out[:, 0], conc, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(np.asarray(traj.states)[:, 2], ce, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(out[:, 1], effect, rtol=1e-5)


def test_effect_lags_concentration(traj):
    out = np.asarray(traj.outputs)
    assert TIMES[np.argmax(out[:, 1])] > TIMES[np.argmax(out[:, 0])] + 1.0


def test_emax_law(model, theta):
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    ec50 = theta["EC50"]
    for ce, expected in [
        (0.0, theta["E0"]),
        (ec50, theta["E0"] + theta["EMAX"] / 2),
        (1e6, theta["E0"] + theta["EMAX"]),
    ]:
        effect = model.observe(jnp.array([0.0, 0.0, ce]), th)[1]
        assert float(effect) == pytest.approx(expected, rel=1e-5)
    # A slightly negative effect-site value from round-off does not break the Emax law.
    assert float(model.observe(jnp.array([0.0, 0.0, -1e-12]), th)[1]) == theta["E0"]


def test_declaration(model):
    assert model.states[0] == "depot" and model.default_dose_cmt == 1
    assert {(a.parameter, a.exponent) for a in model.allometric} == {("CL", 0.75), ("V", 1.0)}
    assert model.hill == 1.0
