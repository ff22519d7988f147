"""The per-patient view of a cohort posterior: built once, consistent with the fit.

Expected values are computed here from the stored posterior draws and the model's own
declarations (allometric exponents, error models), independently of the view's code.
"""

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.posterior import PatientPosterior, UnknownPatientError


def _flat(da):
    values = da.transpose("chain", "draw", ...).values
    return values.reshape(-1, *values.shape[2:])


def test_view_is_built_once_and_read_only(oral_fit):
    pid = oral_fit.patient_ids[3]
    view = oral_fit.patient(pid)
    assert isinstance(view, PatientPosterior)
    assert oral_fit.patient(pid) is view
    with pytest.raises(ValueError, match="read-only"):
        view.theta[0, 0] = 1.0


def test_view_draws_are_the_patients_posterior_draws(oral_fit):
    pid = oral_fit.patient_ids[5]
    view = oral_fit.patient(pid)
    theta = _flat(oral_fit.posterior["theta"].sel(patient=pid))
    np.testing.assert_array_equal(view.theta, theta)
    # residual parameters of the same draws, at the output's position
    post = oral_fit.posterior
    if "sigma_add" in post:
        np.testing.assert_array_equal(view.add[:, 0], _flat(post["sigma_add"])[:, 0])
    if "sigma_prop" in post:
        np.testing.assert_array_equal(view.prop[:, 0], _flat(post["sigma_prop"])[:, 0])
    assert view.n_draws == post.sizes["chain"] * post.sizes["draw"]
    assert view.n_chains == post.sizes["chain"]


def test_population_mean_follows_allometry(oral_fit, oral_sim):
    """Without covariate effects, log theta's population mean is log(typical) + allometry."""
    model = oral_fit.model
    typical = _flat(oral_fit.posterior["typical"])  # (S, K)
    for pid in oral_fit.patient_ids[:3]:
        wt = float(oral_sim.cohort.covariates.loc[pid, "WT"])
        offset = np.zeros(len(model.parameters))
        for a in model.allometric:
            offset[model.parameter_names.index(a.parameter)] += a.exponent * np.log(
                wt / a.reference
            )
        expected = np.log(typical) + offset
        # log scale: rounding of sums of terms of order 1 (|mean| can be near 0)
        np.testing.assert_allclose(
            oral_fit.patient(pid).population.mean, expected, rtol=0, atol=1e-12
        )


def test_observations_match_the_cohort_table(oral_fit):
    pid = oral_fit.patient_ids[0]
    view = oral_fit.patient(pid)
    table = oral_fit.cohort.table
    rows = table[(table["id"] == pid) & (table["evid"] == 0) & (table["mdv"] == 0)]
    np.testing.assert_allclose(view.observations["time"], rows["time"])
    np.testing.assert_allclose(view.observations["value"], rows["dv"])
    assert view.last_observation_time == float(rows["time"].max())


def test_unknown_patient_names_close_ids(oral_fit):
    pid = oral_fit.patient_ids[2]
    with pytest.raises(UnknownPatientError, match=repr(pid)) as err:
        oral_fit.patient(pid + "x")
    assert isinstance(err.value, KeyError) and isinstance(err.value, tq.TwinUQError)


def test_twin_is_built_from_the_view(oral_fit):
    pid = oral_fit.patient_ids[1]
    twin = oral_fit.twin(pid)
    view = oral_fit.patient(pid)
    assert twin.posterior is view and twin.theta is view.theta


def test_what_patients_share_is_computed_once(oral_fit):
    """Population scale and residual draws are the same arrays in every patient's view."""
    a, b = (oral_fit.patient(pid).population for pid in oral_fit.patient_ids[:2])
    assert a.chol is b.chol and a.add is b.add and a.nu is b.nu
    assert not np.array_equal(a.mean, b.mean)  # the per-patient part differs
