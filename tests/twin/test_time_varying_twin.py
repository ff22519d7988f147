"""A twin of a patient whose weight changes during the record predicts along that path.

Slow: a Laplace fit (minutes on a loaded 2-core machine); the parts are checked fast in
tests/inference/test_time_varying_covariates.py (likelihood, parameter path).
"""

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from models.one_compartment_iv import OneCompartmentIV

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def post():
    rng = np.random.default_rng(0)
    rows = []
    for p in range(6):
        w0 = 60.0 + 4 * p
        w1 = w0 + (20.0 if p == 0 else 0.0)  # P0 gains 20 kg at 12 h
        cl, v = 5 * (w0 / 70) ** 0.75, 50 * w0 / 70
        rows.append(dict(ID=p, TIME=0.0, AMT=100.0, EVID=1, DV=np.nan, WT=w0))
        rows.append(dict(ID=p, TIME=12.0, AMT=0.0, EVID=2, DV=np.nan, WT=w1))
        for t in (1.0, 4.0, 8.0, 16.0):
            c = 100 / v * np.exp(-cl / v * t)
            rows.append(
                dict(
                    ID=p,
                    TIME=t,
                    AMT=0.0,
                    EVID=0,
                    DV=c * (1 + 0.1 * rng.standard_normal()),
                    WT=np.nan,
                )
            )
    frame = pd.DataFrame(rows).sort_values(["ID", "TIME"], kind="stable").reset_index(drop=True)
    spec = tq.PopulationModel(OneCompartmentIV(), prior_check="off", centering=0.0)
    return tq.fit(OneCompartmentIV(), tq.read_cohort(frame), population=spec,
                  method=tq.Laplace(steps=300, draws=50), seed=0)  # fmt: skip


def test_twin_predicts_along_the_patients_covariate_path(post):
    pp = post.patient("0")
    np.testing.assert_array_equal(pp.change_time, [0.0, 12.0])
    assert pp.covariate_path["WT"].tolist() == [60.0, 80.0]
    np.testing.assert_allclose(pp.theta_path[:, 0], pp.theta, rtol=1e-12)
    np.testing.assert_allclose(
        pp.theta_path[:, 1], pp.theta * [(80 / 60) ** 0.75, 80 / 60], rtol=1e-12
    )
    assert post.patient("1").change_time is None  # constant weight: one segment
    # Beyond the last record the last weight is carried forward: at 30 h, by hand.
    times = np.array([6.0, 12.0, 30.0])
    f = post.twin("0").predict(times)["f"].sel(output="concentration").values  # (draw, time)
    (cl0, v0), (cl1, v1) = pp.theta_path[:, 0].T, pp.theta_path[:, 1].T
    a12 = 100 * np.exp(-cl0 / v0 * 12.0)
    expected = np.stack(
        [100 / v0 * np.exp(-cl0 / v0 * 6.0), a12 / v1, a12 / v1 * np.exp(-cl1 / v1 * 18.0)], axis=1
    )
    np.testing.assert_allclose(f, expected, rtol=1e-10)


def test_update_refuses_time_varying_covariates(post):
    with pytest.raises(tq.errors.InputError, match="time-varying"):
        post.twin("0").update(pd.DataFrame({"time": [20.0], "value": [0.5]}))


def test_future_covariates_extend_the_path(post):
    twin = post.twin("0", future_covariates={20.0: {"WT": 100.0}})
    pp = twin.posterior
    np.testing.assert_array_equal(pp.change_time, [0.0, 12.0, 20.0])
    assert pp.covariate_path["WT"].tolist() == [60.0, 80.0, 100.0]
    np.testing.assert_allclose(
        pp.theta_path[:, 2], pp.theta * [(100 / 60) ** 0.75, 100 / 60], rtol=1e-12
    )
    f = twin.predict([30.0])["f"].sel(output="concentration").values[:, 0]
    (cl0, v0), (cl1, v1), (cl2, v2) = (pp.theta_path[:, g].T for g in range(3))
    a20 = 100 * np.exp(-cl0 / v0 * 12.0) * np.exp(-cl1 / v1 * 8.0)
    np.testing.assert_allclose(f, a20 / v2 * np.exp(-cl2 / v2 * 10.0), rtol=1e-10)
    with pytest.raises(tq.errors.InputError, match="after the record"):
        post.twin("0", future_covariates={10.0: {"WT": 90.0}})
    with pytest.raises(tq.errors.InputError, match="unknown covariate"):
        post.twin("0", future_covariates={30.0: {"HEIGHT": 180.0}})


def test_heldout_predictions_of_the_trust_check_follow_the_path(post):
    from twin_uq.trust.validation import heldout_predictive

    P = len(post.patient_ids)
    times = np.full((P, 1), 30.0)
    y = heldout_predictive(post, times, np.zeros((P, 1), int), seed=1)[:, 0, 0]  # patient 0
    f = post.twin("0").predict([30.0])["f"].sel(output="concentration").values[:, 0]
    # Medians over the draws agree within Monte Carlo error of the ~10 % proportional noise
    # (5 standard errors); the baseline weight alone would be ~25 % off (V: 80 vs 60 kg).
    se = 1.25 * 0.1 * np.median(f) / np.sqrt(len(f))
    assert abs(np.median(y) - np.median(f)) < 5 * se
