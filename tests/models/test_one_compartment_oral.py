"""one_compartment_oral against the Bateman function (single dose and superposition)."""

import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.simulate import Bolus, Schedule
from twin_uq.testing import check_model

KA, CL, V = 1.3, 4.0, 40.0
K = CL / V
TIMES = np.array([0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 6.0, 8.0, 12.0, 12.5, 16.0, 24.0, 30.0, 48.0])


def bateman(t, dose, t_dose):
    dt = np.maximum(t - t_dose, 0.0)
    return dose * KA / (V * (KA - K)) * (np.exp(-K * dt) - np.exp(-KA * dt))


@pytest.fixture(scope="module")
def model():
    return tq.load_model("one_compartment_oral")


def test_passes_check_model(model):
    # The checks tq.fit and tq.simulate run on every model, called as a model's author would.
    assert check_model(model) is model


def test_declaration(model):
    assert model.states == ("depot", "central")
    assert model.parameter_names == ("ka", "CL", "V")
    assert model.default_dose_cmt == 1
    assert model.covariate_defaults == {"WT": 70.0}
    assert model.solver.method == "exact" and model.is_linear
    allo = {(a.parameter, a.exponent, a.reference) for a in model.allometric}
    assert allo == {("CL", 0.75, 70.0), ("V", 1.0, 70.0)}
    assert model.card.time_unit == "h" and model.card.references


@pytest.mark.parametrize("method", ["exact", "tsit5"])
def test_single_dose_is_bateman(model, method):
    sched = Schedule.build([Bolus(0.0, 100.0)], n_bolus=4)
    settings = tq.SolverSettings(method=method, rtol=1e-10, atol=1e-12)
    traj = tq.simulate(model, {"ka": KA, "CL": CL, "V": V}, sched, TIMES, settings=settings)
    assert bool(traj.ok)
    np.testing.assert_allclose(
        traj.outputs[:, 0], bateman(TIMES, 100.0, 0.0), rtol=1e-6, atol=1e-12
    )


@pytest.mark.parametrize("method", ["exact", "tsit5"])
def test_multiple_doses_superpose(model, method):
    doses = [(0.0, 100.0), (8.0, 50.0), (12.0, 100.0), (24.0, 75.0)]
    sched = Schedule.build([Bolus(t, a) for t, a in doses], n_bolus=4)
    settings = tq.SolverSettings(method=method, rtol=1e-10, atol=1e-12)
    traj = tq.simulate(model, jnp.array([KA, CL, V]), sched, TIMES, settings=settings)
    expected = sum(bateman(TIMES, a, t) for t, a in doses)
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-6, atol=1e-12)
    # The depot holds exactly what has not been absorbed yet.
    depot = sum(a * np.exp(-KA * np.maximum(TIMES - t, 0)) * (t <= TIMES) for t, a in doses)
    np.testing.assert_allclose(traj.states[:, 0], depot, rtol=1e-6, atol=1e-12)


def test_iv_dose_to_central(model):
    sched = Schedule.build([Bolus(0.0, 100.0, cmt=2)], n_bolus=4)
    traj = tq.simulate(model, jnp.array([KA, CL, V]), sched, TIMES)
    np.testing.assert_allclose(traj.outputs[:, 0], 100.0 / V * np.exp(-K * TIMES), rtol=1e-6)
