"""Twins with inter-occasion variability, without a fit: occasion paths and forecasts.

A patient's posterior is written down by hand (one-compartment IV, 100 mg at 0 h and
24 h, occasion 2 from the second dose, IOV on CL): the twin's noise-free predictions must
follow the piecewise exponential with each occasion's own clearance, and a forecast for a
new occasion must carry the between-occasion variance (wider than within the last one).
"""

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from models.one_compartment_iv import OneCompartmentIV
from twin_uq.data.occasions import occasion_segments
from twin_uq.posterior.patient import PatientPosterior, empty_observations, occasion_path
from twin_uq.twin.occasions import with_new_occasion


def _patient(theta, kappa, omega_occ):
    """A PatientPosterior with occasions 1 (0-24 h) and 2 (from 24 h); IOV on CL."""
    rows = [
        dict(ID="1", TIME=0.0, AMT=100.0, EVID=1, DV=np.nan, OCC=1),
        dict(ID="1", TIME=24.0, AMT=100.0, EVID=1, DV=np.nan, OCC=2),
    ]
    cohort = tq.read_cohort(pd.DataFrame(rows))
    model = OneCompartmentIV()
    occasions = occasion_segments(cohort.table, cohort.ids).frame(0)
    S = theta.shape[0]
    change_time, path = occasion_path(model, theta, kappa, omega_occ, (0,), occasions)
    full_omega = np.zeros_like(theta)
    full_omega[:, 0] = omega_occ[:, 0]
    return PatientPosterior(
        patient_id="1",
        model=model,
        settings=model.solver,
        theta=theta,
        add=np.zeros((S, 1)),
        prop=np.full((S, 1), 0.1),
        nu=np.full(S, 1e6),
        n_chains=1,
        error_code=np.array([1]),
        covariates=np.array([70.0]),
        baseline={},
        schedule=cohort.schedule("1"),
        observations=empty_observations(),
        table=cohort.table,
        population=None,
        change_time=change_time,
        theta_path=path,
        occasions=occasions,
        omega_occ=full_omega,
    )


def test_predictions_follow_each_occasions_clearance():
    theta = np.array([[4.0, 45.0], [6.0, 30.0], [3.0, 60.0]])
    kappa = np.array([[[0.8], [-1.2]], [[-0.3], [0.6]], [[1.5], [-2.0]]])
    omega_occ = np.full((3, 1), 0.25)
    twin = tq.PosteriorTwin(_patient(theta, kappa, omega_occ))
    times = np.array([1.0, 12.0, 23.5, 24.5, 30.0, 60.0])
    f = twin.predict(times)["f"].values[:, :, 0]  # (S, T)
    for s in range(3):
        cl = theta[s, 0] * np.exp(0.25 * kappa[s, :, 0])
        k0, k1 = cl / theta[s, 1]
        a24 = 100.0 * np.exp(-k0 * 24.0) + 100.0
        amount = np.where(
            times < 24.0, 100.0 * np.exp(-k0 * times), a24 * np.exp(-k1 * (times - 24.0))
        )
        np.testing.assert_allclose(f[s], amount / theta[s, 1], rtol=1e-9)
    assert np.isnan(twin.predict(times).attrs["new_occasion_at"])
    assert "occasion 2" in twin.predict(times).attrs["occasion_note"]


def test_a_new_occasion_forecast_carries_the_occasion_variance():
    rng = np.random.default_rng(1)
    S, sd_patient, omega = 4000, 0.1, 0.3
    theta = np.column_stack([4.0 * np.exp(sd_patient * rng.standard_normal(S)), np.full(S, 45.0)])
    kappa = np.zeros((S, 2, 1))  # the known occasions: no occasion effect
    patient = _patient(theta, kappa, np.full((S, 1), omega))
    new = with_new_occasion(patient, 48.0)
    assert new.new_occasion_at == 48.0
    np.testing.assert_array_equal(new.change_time, [0.0, 24.0, 48.0])
    # log CL on the new occasion: patient uncertainty plus the occasion variance
    sd_new = np.std(np.log(new.theta_path[:, 2, 0]))
    expected = np.hypot(sd_patient, omega)
    assert sd_new == pytest.approx(expected, abs=4 * expected / np.sqrt(2 * S))
    # At 120 h: within occasion 2, log f has SD about k x 96 h x 0.1 = 0.85 (k = CL/V =
    # 0.089/h); the new occasion's 72 h add its occasion variance.
    times = np.array([30.0, 120.0])
    within = tq.PosteriorTwin(patient).predict(times, seed=0)
    fresh = tq.PosteriorTwin(new).predict(times, seed=0)
    log_sd = lambda ds: float(np.log(ds["f"].values[:, 1, 0]).std())  # noqa: E731
    assert log_sd(within) == pytest.approx(0.089 * 96 * sd_patient, rel=0.1)
    # each draw's forecast is the piecewise exponential with its fresh clearance
    k = new.theta_path[:, :, 0] / 45.0  # (S, 3)
    a48 = (100.0 * np.exp(-k[:, 0] * 24.0) + 100.0) * np.exp(-k[:, 1] * 24.0)
    np.testing.assert_allclose(
        fresh["f"].values[:, 1, 0], a48 * np.exp(-k[:, 2] * 72.0) / 45.0, rtol=1e-8
    )
    width = lambda ds: float(ds["f_upper"][0, 1] - ds["f_lower"][0, 1])  # noqa: E731
    assert width(fresh) > 2 * width(within)
    # before the new occasion both forecasts are the same draws
    np.testing.assert_array_equal(within["f"].values[:, 0], fresh["f"].values[:, 0])
    assert fresh.attrs["new_occasion_at"] == 48.0
    assert "new occasion" in fresh.attrs["occasion_note"]
    with pytest.raises(tq.errors.InputError, match="must come after"):
        with_new_occasion(patient, 10.0)
