"""one_compartment_iv against closed forms: repeated boluses and infusions to steady state."""

import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.simulate import Bolus, Infusion, Schedule
from twin_uq.testing import check_model

CL, V = 3.0, 30.0
K = CL / V


@pytest.fixture(scope="module")
def model():
    return tq.load_model("one_compartment_iv")


def test_passes_check_model(model):
    # The checks tq.fit and tq.simulate run on every model, called as a model's author would.
    assert check_model(model) is model


def test_declaration(model):
    assert model.states == ("central",) and model.parameter_names == ("CL", "V")
    assert model.solver.method == "exact" and model.is_linear


@pytest.mark.parametrize("method", ["exact", "dopri5"])
def test_repeated_boluses(model, method):
    times = np.array([0.0, 1.0, 5.0, 6.0, 10.0, 15.0, 20.0, 40.0])
    doses = [0.0, 10.0, 20.0]
    sched = Schedule.build([Bolus(t, 100.0) for t in doses], n_bolus=4, n_infusion=1)
    settings = tq.SolverSettings(method=method, rtol=1e-10, atol=1e-12)
    traj = tq.simulate(model, {"CL": CL, "V": V}, sched, times, settings=settings)
    # Observations at dose times (0, 10, 20) see the post-dose state.
    expected = sum(100.0 / V * np.exp(-K * (times - t)) * (times >= t) for t in doses)
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("method", ["exact", "dopri5"])
def test_infusion_reaches_rate_over_clearance(model, method):
    rate, dur = 12.0, 200.0
    times = np.array([0.0, 1.0, 5.0, 20.0, 100.0, 200.0, 201.0, 210.0])
    sched = Schedule.build([], [Infusion(0.0, rate, dur)], n_bolus=4, n_infusion=1)
    settings = tq.SolverSettings(method=method, rtol=1e-10, atol=1e-12)
    traj = tq.simulate(model, jnp.array([CL, V]), sched, times, settings=settings)
    during = rate / CL * (1 - np.exp(-K * np.minimum(times, dur)))
    expected = during * np.exp(-K * np.maximum(times - dur, 0.0))
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-6, atol=1e-12)
    # Steady state rate/CL is reached (e^-20 away) at the end of the infusion.
    np.testing.assert_allclose(traj.outputs[5, 0], rate / CL, rtol=1e-8)
