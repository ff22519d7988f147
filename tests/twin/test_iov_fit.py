"""A fit with inter-occasion variability, end to end: twins, refusals, report, reload.

Slow: a short NUTS fit (minutes on a loaded 2-core machine). The parts are checked
fast in tests/inference/test_iov.py (log density by hand, refusals) and
tests/twin/test_iov_twin.py (occasion paths, new-occasion forecasts).
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
    for p in range(8):
        cl = 5.0 * np.exp(0.2 * rng.standard_normal())
        for occ, t0 in ((1, 0.0), (2, 48.0)):
            cl_k = cl * np.exp(0.3 * rng.standard_normal())
            rows.append(dict(ID=p, TIME=t0, AMT=100.0, EVID=1, DV=np.nan, OCC=occ))
            for dt in (1.0, 4.0, 8.0, 16.0):
                c = 100 / 50.0 * np.exp(-cl_k / 50.0 * dt)
                y = c * (1 + 0.1 * rng.standard_normal())
                rows.append(dict(ID=p, TIME=t0 + dt, AMT=0.0, EVID=0, DV=y, OCC=occ))
    frame = pd.DataFrame(rows).sort_values(["ID", "TIME"], kind="stable").reset_index(drop=True)
    spec = tq.PopulationModel(
        OneCompartmentIV(), error={"concentration": "proportional"}, prior_check="off", iov=["CL"]
    )
    cohort = tq.read_cohort(frame, time_unit="h")
    return tq.fit(
        spec.model, cohort, population=spec, method=tq.NUTS(chains=2, warmup=150, draws=150), seed=1
    )


def test_twin_forecasts_within_and_for_a_new_occasion(post):
    pp = post.patient("0")
    assert list(pp.occasions["occ"]) == [1, 2]
    np.testing.assert_array_equal(pp.change_time, [0.0, 48.0])
    times = np.array([60.0, 100.0])
    within = post.twin("0").predict(times)
    fresh = post.twin("0", new_occasion_at=96.0).predict(times)
    np.testing.assert_array_equal(within["f"].values[:, 0], fresh["f"].values[:, 0])
    assert float(fresh["f_upper"][0, 1] - fresh["f_lower"][0, 1]) > float(
        within["f_upper"][0, 1] - within["f_lower"][0, 1]
    )
    assert "new occasion" in fresh.attrs["occasion_note"]
    with pytest.raises(tq.errors.InputError, match="inter-occasion"):
        post.twin("0").update(pd.DataFrame({"time": [70.0], "dv": [0.5]}))
    with pytest.raises(tq.errors.InputError, match="inter-occasion"):
        post.twin("0", future_covariates={100.0: {"WT": 80.0}})


def test_summary_report_and_reload_keep_the_occasion_variability(post, tmp_path):
    summary = post.population_summary()
    assert np.isfinite(summary.loc["CL", "omega_occ"]) and np.isnan(summary.loc["V", "omega_occ"])
    html = tq.report.cohort(post, tmp_path / "cohort.html").read_text()
    assert "Between-occasion SD" in html
    page = tq.report.patient(post, "0", tmp_path / "p0.html").read_text()
    assert "occasion 2 (the last recorded) holds" in page
    path = post.save(tmp_path / "fit.nc")
    loaded = tq.load_posterior(path)
    assert tuple(loaded.population_model.iov) == ("CL",)
    assert loaded.cohort.time_unit == "h"
    np.testing.assert_allclose(loaded.patient("3").theta_path, post.patient("3").theta_path)


def test_a_new_patient_is_on_a_new_occasion(post):
    from twin_uq.posterior.population import population_for_covariates

    schedule = [tq.Bolus(time=0.0, amount=100.0)]
    pp = post.new_patient({}, schedule, seed=3)
    without = population_for_covariates(post, {}).sample_log_theta(3)
    # the same between-patient draws plus omega_occ * kappa on CL only
    np.testing.assert_allclose(np.log(pp.theta[:, 1]), without[:, 1])
    kappa = (np.log(pp.theta[:, 0]) - without[:, 0]) / pp.omega_occ[:, 0]
    assert abs(kappa.mean()) < 4 / np.sqrt(kappa.size) and kappa.std() == pytest.approx(1, abs=0.15)
    ds = tq.simulate_patient(post, {}, schedule, [1.0, 8.0])
    assert ds.attrs["new_occasion_at"] == 0.0 and "new occasion" in ds.attrs["occasion_note"]
