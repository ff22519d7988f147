"""windkessel3: arterial pressure from a half-sine aortic inflow."""

import sys

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.testing import check_model

N_BEATS = 8
PERIOD = 60.0 / 75.0
TIMES = np.linspace(0.0, N_BEATS * PERIOD, 641)


@pytest.fixture(scope="module")
def model():
    return tq.load_model("windkessel3")


def test_passes_check_model(model):
    # The checks tq.fit and tq.simulate run on every model, called as a model's author would.
    assert check_model(model) is model


@pytest.fixture(scope="module")
def module(model):
    return sys.modules[type(model).__module__]


@pytest.fixture(scope="module")
def inflow(module):
    return module.half_sine_inflow(stroke_volume=70.0, heart_rate=75.0, n_beats=N_BEATS)


@pytest.fixture(scope="module")
def pressure(model, inflow):
    schedule = tq.Schedule.build(signals=[inflow], signal_names=model.signals)
    traj = tq.simulate(model, {"R": 1.0, "C": 1.5, "Z": 0.05}, schedule, TIMES)
    assert bool(traj.ok)
    return np.asarray(traj.outputs)[:, 0]


def test_half_sine_delivers_stroke_volume(inflow):
    t, q = np.asarray(inflow.times), np.asarray(inflow.values)
    assert np.trapezoid(q, t) == pytest.approx(70.0 * N_BEATS, rel=1e-9)
    assert q.min() >= 0.0


def test_half_sine_rejects_impossible_ejection(module):
    with pytest.raises(ValueError, match="ejection_time"):
        module.half_sine_inflow(heart_rate=150.0, ejection_time=0.5)


def test_pressure_in_physiological_range(pressure):
    last = TIMES >= (N_BEATS - 1) * PERIOD
    systolic, diastolic = pressure[last].max(), pressure[last].min()
    assert 100.0 < systolic < 140.0
    assert 60.0 < diastolic < 90.0


def test_mean_pressure_is_mean_flow_times_resistance(pressure):
    # Periodic steady state: mean Pc = R·mean Q, so mean P = (R + Z)·mean Q. The start
    # transient (80 mmHg vs ~92) decays as exp(-t/RC): < 0.2 mmHg left after 7 beats.
    last = TIMES >= (N_BEATS - 1) * PERIOD
    mean_p = np.trapezoid(pressure[last], TIMES[last]) / PERIOD
    mean_q = 70.0 / PERIOD
    assert mean_p == pytest.approx(mean_q * (1.0 + 0.05), rel=5e-3)


def test_resistance_what_if_settles_at_the_steady_state_mean(module):
    # At periodic steady state the three-element model's mean pressure is (R + Z)·mean flow
    # exactly (mean Pc = R·mean Qf, mean Qf = mean Q). R·C about 1 s, so after 12 beats
    # (9.6 s) the start from P0 has decayed to exp(-9.6/0.8) of its size: < 1e-3 mmHg.
    from heart_twins import PERIOD, STROKE_VOLUME, circulation_twin, inflow

    rng = np.random.default_rng(3)
    S = 40
    theta = np.column_stack(
        [
            np.exp(0.1 * rng.standard_normal(S)),  # R
            np.exp(0.1 * rng.standard_normal(S)),  # C
            0.05 * np.exp(0.2 * rng.standard_normal(S)),  # Z
        ]
    )
    twin = circulation_twin(theta, n_chains=2)
    mean_flow = STROKE_VOLUME / PERIOD
    truth = {f: (f * theta[:, 0] + theta[:, 2]) * mean_flow for f in (1.0, 0.8)}
    # The threshold in the widest gap between middle draws, so that no draw sits on it.
    v = np.sort(truth[0.8])
    i = 10 + int(np.argmax(np.diff(v[10:30])))
    assert v[i + 1] - v[i] > 0.1
    threshold = 0.5 * (v[i] + v[i + 1])
    w = module.resistance_what_if(twin, 0.8, inflow(13), PERIOD, threshold=threshold)
    assert w["n_draws"] == S and w["n_failed"] == 0
    for key, f in (("before", 1.0), ("after", 0.8)):
        median, lower, upper = w[key]["mean"]
        expect = np.quantile(truth[f], [0.5, 0.05, 0.95])
        np.testing.assert_allclose([median, lower, upper], expect, atol=0.05)
        assert w[key]["diastolic"][0] < median < w[key]["systolic"][0]
    # lowering R lowers every pressure
    assert w["after"]["systolic"][0] < w["before"]["systolic"][0]
    assert w["p_below"] == pytest.approx(np.mean(truth[0.8] < threshold))
    assert 0 < w["mcse"] < 0.5


def test_resistance_what_if_refuses_a_short_inflow(module):
    from heart_twins import PERIOD, circulation_twin, inflow

    twin = circulation_twin(np.tile([1.0, 1.4, 0.05], (4, 1)))
    with pytest.raises(tq.errors.InputError, match="inflow ends"):
        module.resistance_what_if(twin, 0.8, inflow(3), PERIOD)
