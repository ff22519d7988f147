"""The lag/bioavailability variants of the oral PK models follow NONMEM's ALAG1 and F1.

A dose AMT at time t into the depot must act exactly like a dose F1·AMT at t + ALAG1 into
the base model (DESIGN §2): the reference is the base model given those shifted, scaled
doses, plus the Bateman function with a lag for the one-compartment model.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.simulate import Bolus, Infusion, Schedule
from twin_uq.testing import check_model

VARIANTS = {
    "one_compartment_oral_lag": ("one_compartment_oral", {"ka": 1.3, "CL": 4.0, "V": 40.0}),
    "two_compartment_lag": (
        "two_compartment",
        {"ka": 1.1, "CL": 5.0, "V1": 20.0, "Q": 8.0, "V2": 60.0},
    ),
    "one_compartment_transit_f": (
        "one_compartment_transit",
        {"MTT": 1.5, "ka": 0.8, "CL": 4.0, "V": 40.0},
    ),
}
TIMES = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0, 12.0, 12.5, 13.0, 24.0, 36.0])
DOSES = [(0.0, 100.0), (12.0, 200.0)]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_passes_check_model_and_declares_nonmem_dose_parameters(name):
    model = tq.load_model(name)
    assert check_model(model) is model
    base = tq.load_model(VARIANTS[name][0])
    assert isinstance(model, type(base)) and model.states == base.states
    assert model.parameter_names[: len(base.parameters)] == base.parameter_names
    declared = model.dose_parameters[1]
    f1 = model.parameter("F1")
    assert declared.bioavailability == "F1"
    assert f1.scale == "logit" and not f1.bsv and f1.typical == 0.8
    if name.endswith("_lag"):
        assert declared.lag == "ALAG1"
        assert model.parameter("ALAG1").unit == "h" and model.parameter("ALAG1").typical == 0.5
    else:
        assert declared.lag is None  # the transit chain is the delay
    assert set(model.dose_parameters) == {1}  # IV doses (central) are neither lagged nor scaled


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("method", ["exact", "tsit5"])
def test_doses_enter_at_t_plus_alag_as_f_times_amt(name, method):
    model = tq.load_model(name)
    base_name, theta = VARIANTS[name]
    lag = 0.6 if name.endswith("_lag") else 0.0
    f = 0.7
    full = {**theta, "F1": f, **({"ALAG1": lag} if lag else {})}
    settings = tq.SolverSettings(method=method, rtol=1e-10, atol=1e-12)
    traj = tq.simulate(
        model,
        full,
        Schedule.build([Bolus(t, a) for t, a in DOSES], n_bolus=2),
        TIMES,
        settings=settings,
    )
    shifted = Schedule.build([Bolus(t + lag, f * a) for t, a in DOSES], n_bolus=2)
    ref = tq.simulate(base_name, theta, shifted, TIMES, settings=settings)
    assert bool(traj.ok)
    np.testing.assert_allclose(traj.states, ref.states, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(traj.outputs, ref.outputs, rtol=1e-8, atol=1e-12)


def test_one_compartment_lag_is_the_lagged_bateman_function():
    model = tq.load_model("one_compartment_oral_lag")
    ka, cl, v, lag, f = 1.3, 4.0, 40.0, 0.6, 0.7
    k = cl / v
    traj = tq.simulate(
        model,
        {"ka": ka, "CL": cl, "V": v, "ALAG1": lag, "F1": f},
        Schedule.build([Bolus(0.0, 100.0)], n_bolus=1),
        TIMES,
    )
    s = np.maximum(TIMES - lag, 0.0)
    expected = f * 100.0 * ka / (v * (ka - k)) * (np.exp(-k * s) - np.exp(-ka * s))
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-9, atol=1e-14)
    assert np.all(np.asarray(traj.outputs[lag >= TIMES, 0]) == 0.0)  # nothing before the lag


def test_iv_doses_are_neither_lagged_nor_scaled():
    model = tq.load_model("one_compartment_oral_lag")
    theta = {"ka": 1.3, "CL": 4.0, "V": 40.0, "ALAG1": 0.6, "F1": 0.7}
    sched = Schedule.build(
        [Bolus(0.0, 100.0, cmt=2)], [Infusion(1.0, 20.0, 2.0, cmt=2)], n_bolus=1, n_infusion=1
    )
    traj = tq.simulate(model, theta, sched, TIMES)
    base = {k: theta[k] for k in ("ka", "CL", "V")}
    ref = tq.simulate("one_compartment_oral", base, sched, TIMES)
    np.testing.assert_allclose(traj.outputs, ref.outputs, rtol=1e-10, atol=1e-14)


def test_gradient_in_lag_and_f_matches_finite_differences():
    # Lag times move event times: the exact path's gradient must follow them.
    model = tq.load_model("one_compartment_oral_lag")
    sched = Schedule.build([Bolus(0.0, 100.0), Bolus(12.0, 100.0)], n_bolus=2)
    times = jnp.array([1.0, 2.0, 13.0, 16.0])
    x0 = jnp.array([1.3, 4.0, 40.0, 0.6, 0.7])

    def total(x):
        return tq.simulate(model, x, sched, times).outputs[:, 0].sum()

    g = np.asarray(jax.grad(total)(x0))
    eps = 1e-6
    fd = np.array(
        [(total(x0.at[i].add(eps)) - total(x0.at[i].add(-eps))) / (2 * eps) for i in range(5)]
    )
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-10)
    assert abs(g[3]) > 1e-3 and abs(g[4]) > 1e-3  # both dose parameters act on the output


def test_transit_f_with_other_transits_keeps_f1():
    model = tq.load_model("one_compartment_transit_f").with_transits(5)
    assert model.name == "one_compartment_transit_f_n5" and len(model.states) == 8
    assert model.parameter_names == ("MTT", "ka", "CL", "V", "F1")
    assert model.dose_parameters[1].bioavailability == "F1"
    assert "bioavailability F1" in model.card.summary and "n = 5" in model.card.equations
    assert check_model(model) is model


@pytest.mark.parametrize("lag", [0.6, 13.0])  # a lag shorter and one longer than II
def test_steady_state_with_lag_and_f_is_the_sum_of_lagged_bateman_functions(lag):
    # SS=1 at t = 0 with II = 12: doses at -k·II entered at -k·II + ALAG1 as F1·AMT.
    model = tq.load_model("one_compartment_oral_lag")
    ka, cl, v, f, ii = 1.3, 4.0, 40.0, 0.7, 12.0
    k = cl / v
    times = np.array([0.0, 0.3, 1.0, 2.0, 6.0, 11.9])
    traj = tq.simulate(
        model,
        {"ka": ka, "CL": cl, "V": v, "ALAG1": lag, "F1": f},
        Schedule.build([Bolus(0.0, 100.0, ss=1, ii=ii)]),
        times,
    )
    s = times[:, None] + ii * np.arange(400)[None, :] - lag  # time since each dose entered
    s = np.where(s > 0, s, 0.0)
    expected = (f * 100.0 * ka / (v * (ka - k)) * (np.exp(-k * s) - np.exp(-ka * s))).sum(axis=1)
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-8)
