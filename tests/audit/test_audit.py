"""``tq.audit`` on the shared 16-patient oral fit: 4 "sparse" patients (2 observations) vs 12 rich.

New measurements of every patient are simulated from their true parameters at times the fit
never saw (3, 10, 16 h) and serve as the holdout. The sparse group has 4 patients, so these
tests judge groups from 3 patients on (``min_group_size=3``); the default (5) is checked to
report it as too small. With 4 vs 12 patients only large disparities are decisive: the
trust flag and the interval width are (the data-poor twins are flagged and much less
certain); coverage and error are reported but not asserted to differ.
"""

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.audit import AuditResult, audit_metrics
from twin_uq.simulate.solve import solve_outputs

NEW_TIMES = np.array([3.0, 10.0, 16.0])
# the trust report oral_trust judges the shared short run's convergence as for a short run
# (tests/short_run.py, as tests/trust/test_validation.py does), so the flags reflect the data


@pytest.fixture(scope="module")
def new_observations(oral_sim, oral_fit):
    rng = np.random.default_rng(2024)
    model, truth = oral_fit.model, oral_sim.truth
    arrays = oral_fit.prepared.data.arrays
    out = model.output_names[0]
    rows = []
    for i, pid in enumerate(oral_fit.patient_ids):
        sched = oral_fit.cohort.schedule(pid, signals=model.signals)
        theta = truth.theta.loc[pid, list(model.parameter_names)].to_numpy(float)
        _, f, ok = solve_outputs(model, theta, arrays.covariates[i], sched, NEW_TIMES)
        assert bool(ok)
        f = np.asarray(f)[:, 0]
        sd = np.sqrt(truth.sigma_add[out] ** 2 + (truth.sigma_prop[out] * f) ** 2)
        for t, y in zip(NEW_TIMES, f + sd * rng.standard_normal(f.size), strict=True):
            rows.append(dict(id=pid, time=t, dv=y))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def trust_report(oral_trust):
    return oral_trust  # assess_cohort(oral_fit, SHORT_RUN), computed once per session


@pytest.fixture(scope="module")
def result(oral_fit, new_observations, trust_report) -> AuditResult:
    return tq.audit(
        oral_fit,
        by=["sampling", "SEX"],
        holdout=new_observations,
        intersections=True,
        trust=trust_report,
        min_group_size=3,
        n_boot=2000,
        seed=0,
    )


def _row(res, group, metric):
    d = res.disparities
    sel = d[(d["group"] == group) & (d["metric"] == metric)]
    assert len(sel) == 1, d[["grouping", "group", "metric"]]
    return sel.iloc[0]


def test_finds_the_disparity_in_flags_and_width(result):
    flag = _row(result, "sampling = sparse", "flagged")
    assert flag["reference"] == "sampling = rich"  # default: the largest group
    assert flag["detected"] and flag["lower"] > 0, flag
    width = _row(result, "sampling = sparse", "width")
    assert width["detected"] and width["lower"] > 0, width
    assert any(
        f.startswith("Patients in group sampling = sparse are flagged 'limited' or worse")
        and "percentage points more often than group sampling = rich (95% interval" in f
        for f in result.findings
    ), result.findings
    # the group table agrees with the data: 2 vs 8 observations per patient
    t = result.table.set_index(["group", "metric"])
    assert t.loc[("sampling = sparse", "obs_per_patient"), "estimate"] == 2
    assert t.loc[("sampling = rich", "obs_per_patient"), "estimate"] == 8
    assert t.loc[("sampling = sparse", "patients"), "estimate"] == 4
    assert t.loc[("sampling = sparse", "flagged"), "interval"] == "95% Bayesian bootstrap"


def test_held_out_metrics_are_reported_for_every_group(result):
    t = result.table
    for m in ("coverage", "mae"):
        rows = t[(t["grouping"] == "sampling") & (t["metric"] == m)]
        assert len(rows) == 2 and np.isfinite(rows["estimate"]).all()
        assert (rows["n"] == [12, 4]).all() or (rows["n"] == [4, 12]).all()
    # every comparison of a key metric ends in a sentence
    key = result.disparities[
        result.disparities["metric"].isin(["flagged", "width", "coverage", "mae"])
    ]
    assert key["finding"].str.len().gt(20).all()


def test_small_groups_are_reported_never_hidden(result, oral_fit):
    # intersections SEX x sampling: some cells have fewer than 3 patients
    t = result.table
    inter = t[(t["grouping"] == "sampling × SEX") & (t["metric"] == "patients")]
    assert inter["estimate"].sum() == 16  # every patient is in some cell
    small = inter[inter["estimate"] < 3]
    assert len(small) >= 1 and small["small"].all()
    for g in small["group"]:
        assert any(f"Group {g} has" in f and "too small to judge" in f for f in result.findings)
    # with the default minimum of 5, the 4 sparse patients are too small to judge
    res5 = audit_metrics(result.patient_metrics, oral_fit.cohort.covariates, by="sampling")
    assert not res5.disparities["detected"].any()
    assert res5.disparities["small"].all()
    assert any("sampling = sparse has 4 patients: too small to judge" in f for f in res5.findings)
    assert any("fewer than 5 patients" in x for x in res5.limitations)


def test_outputs_csv_xarray_html(result, tmp_path):
    p = result.to_csv(tmp_path / "audit.csv")
    back = pd.read_csv(p)
    pd.testing.assert_frame_equal(back, result.table, check_dtype=False)
    p2 = result.to_csv(tmp_path / "disp.csv", which="disparities")
    pd.testing.assert_frame_equal(pd.read_csv(p2), result.disparities, check_dtype=False)
    ds = result.to_xarray()
    key = "sampling: sampling = sparse"
    assert float(ds["difference"].sel(group=key, metric="flagged")) == pytest.approx(
        _row(result, "sampling = sparse", "flagged")["difference"]
    )
    assert bool(ds["detected"].sel(group=key, metric="width"))
    html = result.to_html(tmp_path / "audit.html")
    assert (tmp_path / "audit.html").read_text(encoding="utf-8") == html
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert "<script" not in html and 'src="http' not in html
    assert html.count("<img ") == 3 and html.count('alt="Forest plot') == 3
    assert "What this audit cannot tell" in html and '<th scope="col">' in html


def test_limitations_say_what_the_audit_cannot_tell(result):
    text = " ".join(result.limitations)
    for phrase in ("not causal", "conditional on the model", "recorded covariates", "multiplicity"):
        assert phrase in text, phrase


def test_without_holdout_widths_use_a_common_grid(oral_fit, trust_report):
    res = tq.audit(oral_fit, by="sampling", trust=trust_report, min_group_size=3, n_boot=500)
    assert not {"coverage", "mae"} & set(res.table["metric"])
    width = _row(res, "sampling = sparse", "width")
    assert width["detected"] and width["lower"] > 0
    assert any("No holdout was given" in x for x in res.limitations)
