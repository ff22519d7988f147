"""Trust statuses on the shared oral fit and on deliberately damaged copies of it."""

import json

import numpy as np
import pytest
import xarray as xr
from short_run import SHORT_RUN

from twin_uq.posterior import CohortPosterior, UnknownPatientError
from twin_uq.trust import Status, TrustThresholds, assess_cohort, assess_patient


@pytest.fixture(scope="module")
def report(oral_trust):
    # the session's assess_cohort(oral_fit, SHORT_RUN) (tests/conftest.py): oral_fit is a
    # short run that misses the strict default convergence criteria (test_validation.py)
    return oral_trust


@pytest.fixture(scope="module")
def sampling(oral_sim):
    return oral_sim.table.groupby("id")["sampling"].first()


def _variant(post, group=None, dataset=None, **attrs):
    """A copy of ``post`` with one group replaced and/or root attributes changed."""
    tree = post.idata.copy(deep=True)
    if group is not None:
        tree[group] = xr.DataTree(dataset)
    tree.attrs.update(attrs)
    return CohortPosterior(tree, post.model, post.cohort, post.prepared)


def test_report_table_counts_and_provenance(report, oral_fit):
    table = report.table
    assert list(table.index) == list(oral_fit.patient_ids)
    for col in (
        "status",
        "reasons",
        "contraction_median",
        "contraction_CL",
        "n_obs",
        "obs_span",
        "rhat_max",
        "ess_bulk_min",
        "ppc_fraction_outside95",
        "mahalanobis_d2",
    ):
        assert col in table.columns, col
    assert set(table["status"]) <= {s.value for s in Status}
    counts = report.counts()
    assert list(counts.index) == ["trustworthy", "limited", "insufficient", "unreliable"]
    assert counts.sum() == 16
    assert TrustThresholds.from_json(table.attrs["thresholds"]) == report.thresholds
    assert table.attrs["data_hash"] == oral_fit.idata.attrs["data_hash"]
    assert report.to_dataframe().equals(table)


def test_short_run_thresholds_leave_no_patient_unreliable(report):
    assert report.counts()["unreliable"] == 0


def test_data_poor_patients_are_flagged_with_reasons(report, sampling):
    for pid in sampling.index[sampling == "sparse"]:
        a = report[pid]
        assert a.status in (Status.LIMITED, Status.INSUFFICIENT), str(a)
        assert a.metrics["n_obs"] == 2
        assert any("2 measurement" in r for r in a.reasons), a.reasons


def test_patients_with_abundant_data_are_trustworthy(report, sampling):
    rich = sampling.index[sampling == "rich"]
    statuses = [report[p].status for p in rich]
    # Eight observations over 24 h pin the parameters down (contraction well above 0.5).
    assert all(report[p].metrics["contraction_median"] > 0.5 for p in rich)
    # Allow one rich patient to be flagged by chance (PPC misfit, unusual covariates).
    assert sum(s is Status.TRUSTWORTHY for s in statuses) >= len(rich) - 1, [
        str(report[p]) for p in rich if report[p].flagged
    ]


def test_contraction_is_larger_with_more_data(report, sampling):
    c = report.table["contraction_median"]
    assert c[sampling == "rich"].min() > c[sampling == "sparse"].max()


def test_assess_patient_matches_the_report_and_names_unknown_ids(report, oral_fit):
    a = assess_patient(oral_fit, "P02", SHORT_RUN)
    assert a.status == report["P02"].status and a.reasons == report["P02"].reasons
    # the same numbers, though only this patient's convergence was computed
    assert a.metrics.keys() == report["P02"].metrics.keys()
    np.testing.assert_array_equal(
        np.array(list(a.metrics.values())), np.array(list(report["P02"].metrics.values()))
    )
    with pytest.raises(UnknownPatientError, match="P99"):
        assess_patient(oral_fit, "P99", SHORT_RUN)


def test_divergences_make_every_patient_unreliable(oral_fit):
    stats = oral_fit.idata["sample_stats"].to_dataset()
    div = stats["diverging"].values.copy()
    div[0, :3] = True
    broken = _variant(
        oral_fit, "sample_stats", stats.assign(diverging=(stats["diverging"].dims, div))
    )
    rep = assess_cohort(broken, SHORT_RUN)
    assert rep.counts()["unreliable"] == 16
    assert all(any("3 divergent" in r for r in a.reasons) for a in rep)


def test_one_patient_not_converged_is_unreliable_alone(oral_fit, report):
    post = oral_fit.posterior
    theta = post["theta"].values.copy()
    i = oral_fit.patient_ids.index("P05")
    theta[1, :, i, :] *= 1.5  # second chain sits elsewhere: chains disagree for P05 only
    broken = _variant(oral_fit, "posterior", post.assign(theta=(post["theta"].dims, theta)))
    rep = assess_cohort(broken, SHORT_RUN)
    assert rep["P05"].status is Status.UNRELIABLE
    assert any("did not converge for this patient (R-hat" in r for r in rep["P05"].reasons)
    others = [p for p in oral_fit.patient_ids if p != "P05"]
    assert [rep[p].status for p in others] == [report[p].status for p in others]


def test_solver_failures_make_the_patient_unreliable(oral_fit):
    cd = oral_fit.idata["constant_data"].to_dataset()
    rate = cd["solver_ok_rate"].values.copy()
    rate[0] = 0.97
    rep = assess_cohort(
        _variant(oral_fit, "constant_data", cd.assign(solver_ok_rate=("patient", rate))), SHORT_RUN
    )
    a = rep[oral_fit.patient_ids[0]]
    assert a.status is Status.UNRELIABLE and any("3.0%" in r for r in a.reasons)


def test_zero_observations_is_insufficient(oral_fit):
    cd = oral_fit.idata["constant_data"].to_dataset()
    mask = cd["obs_mask"].values.copy()
    mask[2, :] = False
    rep = assess_cohort(
        _variant(oral_fit, "constant_data", cd.assign(obs_mask=(cd["obs_mask"].dims, mask))),
        SHORT_RUN,
    )
    a = rep[oral_fit.patient_ids[2]]
    assert a.status is Status.INSUFFICIENT
    assert a.metrics["n_obs"] == 0 and np.isnan(a.metrics["obs_span"])
    assert any("No measurements" in r and "population average" in r for r in a.reasons)


def test_approximate_fit_is_at_best_limited(oral_fit):
    rep = assess_cohort(_variant(oral_fit, approximate="true", method="laplace"))
    assert rep.counts()["trustworthy"] == 0
    assert all(any("approximate method (laplace)" in r for r in a.reasons) for a in rep)
    # ... unless the user decides otherwise, stated in the provenance.
    rep2 = assess_cohort(
        _variant(oral_fit, approximate="true", method="laplace"), {"approximate_cap": "trustworthy"}
    )
    assert rep2.counts()["trustworthy"] > 0
    assert json.loads(rep2.table.attrs["thresholds"])["approximate_cap"] == "trustworthy"
