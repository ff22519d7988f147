"""two_compartment against the bi-exponential IV-bolus closed form."""

import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.simulate import Bolus, Schedule
from twin_uq.testing import check_model

KA, CL, V1, Q, V2 = 1.1, 5.0, 20.0, 8.0, 60.0
TIMES = np.array([0.0, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0, 48.0, 72.0])


@pytest.fixture(scope="module")
def model():
    return tq.load_model("two_compartment")


def test_passes_check_model(model):
    # The checks tq.fit and tq.simulate run on every model, called as a model's author would.
    assert check_model(model) is model


def biexponential(t, dose):
    k10, k12, k21 = CL / V1, Q / V1, Q / V2
    s = k10 + k12 + k21
    disc = np.sqrt(s**2 - 4 * k10 * k21)
    alpha, beta = (s + disc) / 2, (s - disc) / 2
    a = (alpha - k21) / (alpha - beta)
    b = (k21 - beta) / (alpha - beta)
    return dose / V1 * (a * np.exp(-alpha * t) + b * np.exp(-beta * t))


def test_declaration(model):
    assert model.states == ("depot", "central", "peripheral")
    assert model.parameter_names == ("ka", "CL", "V1", "Q", "V2")
    assert model.default_dose_cmt == 1 and model.solver.method == "exact"


@pytest.mark.parametrize("method", ["exact", "kvaerno5"])
def test_iv_bolus_is_biexponential(model, method):
    sched = Schedule.build([Bolus(0.0, 500.0, cmt=2)], n_bolus=2)
    settings = tq.SolverSettings(method=method, rtol=1e-10, atol=1e-12)
    traj = tq.simulate(model, jnp.array([KA, CL, V1, Q, V2]), sched, TIMES, settings=settings)
    assert bool(traj.ok)
    np.testing.assert_allclose(traj.outputs[:, 0], biexponential(TIMES, 500.0), rtol=1e-6)
    # Depot is untouched by an IV dose.
    np.testing.assert_allclose(np.asarray(traj.states[:, 0]), 0.0, atol=1e-12)


def test_oral_dose_matches_ode(model):
    sched = Schedule.build([Bolus(0.0, 500.0), Bolus(12.0, 500.0)], n_bolus=2)
    theta = jnp.array([KA, CL, V1, Q, V2])
    exact = tq.simulate(model, theta, sched, TIMES)
    ode = tq.simulate(
        model, theta, sched, TIMES, settings=tq.SolverSettings("tsit5", rtol=1e-10, atol=1e-12)
    )
    np.testing.assert_allclose(exact.outputs, ode.outputs, rtol=1e-6, atol=1e-12)
