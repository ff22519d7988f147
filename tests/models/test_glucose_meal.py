"""glucose_meal: steady state, meal and insulin responses in type 1 diabetes."""

import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.testing import check_model

BASAL_U_PER_H = 1.0
TIMES = np.arange(0.0, 481.0, 5.0)
MEAL_TIME = 60.0


@pytest.fixture(scope="module")
def model():
    return tq.load_model("glucose_meal")


def test_passes_check_model(model):
    # The checks tq.fit and tq.simulate run on every model, called as a model's author would.
    assert check_model(model) is model


@pytest.fixture(scope="module")
def theta(model):
    return {p.name: p.typical for p in model.parameters}


def glucose(model, theta, carbs, insulin):
    """Glucose with a meal of ``carbs`` g and a bolus of ``insulin`` U at 60 min, on basal.

    Every call has the same schedule shape (one meal, one bolus, one basal infusion), so
    the solver compiles once for the module.
    """
    schedule = tq.Schedule.build(
        boluses=[tq.Bolus(MEAL_TIME, carbs, 1), tq.Bolus(MEAL_TIME, insulin, 2)],
        infusions=[tq.Infusion(0.0, BASAL_U_PER_H / 60.0, 1000.0, 2)],
    )
    traj = tq.simulate(
        model, theta, schedule, TIMES, covariates={"WT": 70.0, "BASAL": BASAL_U_PER_H}
    )
    assert bool(traj.ok)
    return np.asarray(traj.outputs)[:, 0]


def test_start_is_steady_state_of_basal(model, theta):
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    cov = {"WT": jnp.asarray(70.0), "BASAL": jnp.asarray(BASAL_U_PER_H)}
    y0 = model.y0(th, cov)
    basal = np.zeros(len(model.states))
    basal[1] = BASAL_U_PER_H / 60.0  # the infusion the engine adds to cmt 2
    np.testing.assert_allclose(np.asarray(model.rhs(0.0, y0, th, {}, cov)) + basal, 0.0, atol=1e-12)
    # The start is the basal glucose GB itself (the parameter replaces production EGP).
    assert float(y0[5]) == pytest.approx(theta["GB"], rel=1e-12)


def test_glucose_depends_on_sensitivity_over_clearance_only(model, theta):
    # Insulin clearance is the population value at the person's weight: a heavier person
    # clears more insulin (WT^0.75), has lower basal plasma insulin, and the same glucose
    # response needs SI scaled by the clearance ratio — the combination the data see.
    from models.glucose_meal import basal_plasma_insulin, insulin_clearance

    light = {"WT": jnp.asarray(70.0), "BASAL": jnp.asarray(1.0)}
    heavy = {"WT": jnp.asarray(70.0 * 16.0), "BASAL": jnp.asarray(1.0)}
    assert float(insulin_clearance(heavy) / insulin_clearance(light)) == pytest.approx(8.0)
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    y_light, y_heavy = model.y0(th, light), model.y0(dict(th, SI=th["SI"] * 8.0), heavy)
    assert float(y_heavy[4]) == pytest.approx(float(y_light[4]), rel=1e-12)  # insulin action
    assert float(basal_plasma_insulin(light)) == pytest.approx(1e6 / 60.0 / 2000.0)


def test_no_meal_no_bolus_stays_flat(model, theta):
    g = glucose(model, theta, 0.0, 0.0)
    np.testing.assert_allclose(g, g[0], rtol=1e-6)


def test_meal_raises_glucose(model, theta):
    g = glucose(model, theta, 50.0, 0.0)
    before = TIMES <= MEAL_TIME
    assert g.max() > g[0] + 50.0
    assert TIMES[np.argmax(g)] > MEAL_TIME + 30.0  # absorption takes time
    np.testing.assert_allclose(g[before], g[0], rtol=1e-6)


def test_insulin_bolus_lowers_glucose(model, theta):
    g = glucose(model, theta, 0.0, 3.0)
    assert g.min() < g[0] - 20.0
    assert np.all(g <= g[0] + 1e-6)


def test_more_insulin_gives_lower_peak(model, theta):
    peaks = [glucose(model, theta, 50.0, units).max() for units in (0.0, 2.5, 5.0)]
    assert peaks[0] > peaks[1] > peaks[2]


def test_weight_scales_volumes(model):
    assert {(a.parameter, a.covariate, a.exponent) for a in model.allometric} == {
        ("VG", "WT", 1.0),
    }
    assert model.parameter_names == ("SI", "GEZI", "GB", "VG", "TAU_M")
    assert len(model.states) <= 7
    assert model.states[0].startswith("gut") and model.states[1] == "insulin_sc"
