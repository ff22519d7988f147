"""mitchell_schaeffer: APD helper, restitution, and the smoothed gate against a hard switch."""

import sys

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import twin_uq as tq
from twin_uq.testing import check_model

BCLS = (300.0, 1000.0)
N_BEATS = 4  # like-for-like with the reference; steady state is not needed
AMPLITUDE = 0.3


@pytest.fixture(scope="module")
def model():
    return tq.load_model("mitchell_schaeffer")


def test_passes_check_model(model):
    # The checks tq.fit and tq.simulate run on every model, called as a model's author would.
    assert check_model(model) is model


@pytest.fixture(scope="module")
def ms(model):
    return sys.modules[type(model).__module__]


@pytest.fixture(scope="module")
def curve(ms):
    return ms.restitution_curve(BCLS, n_beats=N_BEATS, amplitude=AMPLITUDE)


def hard_switch_apd90(theta, bcl, n_beats):
    """Independent reference: the original discontinuous gate, SciPy Radau, paced by jumps."""

    def f(t, y):
        v, h = y
        dv = h * v * v * (1 - v) / theta["tau_in"] - v / theta["tau_out"]
        if v < theta["v_gate"]:
            return [dv, (1 - h) / theta["tau_open"]]
        return [dv, -h / theta["tau_close"]]

    def gate(t, y):
        return y[0] - theta["v_gate"]

    y = np.array([0.0, 1.0])
    for _ in range(n_beats):
        y = y + np.array([AMPLITUDE, 0.0])
        sol = solve_ivp(
            f, (0.0, bcl), y, method="Radau", rtol=1e-8, atol=1e-10,
            dense_output=True, events=gate,
        )
        y = sol.y[:, -1]
    t = np.linspace(0.0, bcl, 40001)
    v = sol.sol(t)[0]
    k = np.flatnonzero((v[:-1] > 0.1) & (v[1:] <= 0.1))[0]
    return t[k] + (v[k] - 0.1) / (v[k] - v[k + 1]) * (t[1] - t[0])


def test_apd_of_synthetic_trace(ms):
    t = np.linspace(0.0, 1000.0, 1001)
    # Two trapezoidal "action potentials": the level 0.1 is crossed upwards at 99.2 and
    # 599.2 ms, downwards at 350.8 and 800.8 ms.
    v = np.interp(t, [0, 99, 101, 349, 351, 599, 601, 799, 801, 1000], [0, 0, 1, 1, 0, 0, 1, 1, 0, 0])
    apds = ms.action_potential_durations(t, v)  # APD90: level 0.1
    np.testing.assert_allclose(apds, [251.6, 201.6], atol=1e-9)
    # A trace ending mid-action-potential does not count the unfinished one.
    assert ms.action_potential_durations(t[:700], v[:700]).size == 1


def test_restitution_apd_shortens_with_faster_pacing(curve):
    assert np.all(np.isfinite(curve["apd"]))
    assert curve["apd"][0] < curve["apd"][1] - 50.0
    np.testing.assert_allclose(curve["di"], curve["bcl"] - curve["apd"])


def test_smoothed_gate_matches_hard_switch(curve, model):
    theta = {p.name: p.typical for p in model.parameters}
    reference = [hard_switch_apd90(theta, bcl, N_BEATS) for bcl in BCLS]
    # The logistic switch (width 0.005) shifts APD by well under a millisecond; the last
    # beat is sampled every ~1-2.5 ms and crossings are interpolated linearly.
    np.testing.assert_allclose(curve["apd"], reference, atol=1.0)


def test_restitution_theory_shape(ms):
    di = np.array([20.0, 100.0, 400.0, 5000.0])
    apd = ms.restitution_theory(di)
    assert np.all(np.diff(apd) > 0)
    assert apd[-1] == pytest.approx(150.0 * np.log(6.0 / (4 * 0.3)), rel=1e-6)
