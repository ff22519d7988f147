"""The audit's "sampling that would close the gap" (twin_uq/audit/sampling.py)."""

from __future__ import annotations

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.audit.sampling import closing_sentences, weakest_parameter
from twin_uq.twin.next_sample import ParameterInterval

# oral_trust judges the shared short run's convergence as for a short run (tests/short_run.py)
CANDIDATES = np.array([1.0, 4.0, 12.0, 24.0])


def test_weakest_parameter_skips_summaries_and_fixed_effects():
    metrics = {
        "contraction_median": 0.1,
        "contraction_min": 0.05,
        "contraction_CL": 0.9,
        "contraction_V": 0.3,
        "contraction_ka": float("nan"),  # a fixed effect: no individual contraction
        "n_obs": 3.0,
    }
    assert weakest_parameter(metrics) == ("V", 0.3)
    assert weakest_parameter({"contraction_ka": float("nan")}) is None


@pytest.fixture(scope="module")
def sampled(oral_fit, oral_trust):
    trust = oral_trust  # assess_cohort(oral_fit, SHORT_RUN), computed once per session
    res = tq.audit(
        oral_fit,
        by="sampling",
        trust=trust,
        min_group_size=3,
        n_boot=400,
        next_samples=True,
        candidate_times=CANDIDATES,
    )
    return trust, res


def test_next_samples_cover_the_data_poor_of_the_gap_groups(oral_fit, sampled):
    trust, res = sampled
    d = res.disparities
    gap = d[(d["metric"] == "data_flagged") & d["detected"] & (d["difference"] > 0)]
    s = res.sampling
    # every examined patient belongs to a group with a detected data gap and is data-poor
    assert set(s["group"]) <= set(gap["group"])
    for r in s.itertuples():
        assert res.groups.loc[r.patient, r.grouping] == r.group
        assert trust[r.patient].data_verdict != "informed"
        assert r.best_time in CANDIDATES
    if not gap.empty:  # the sparse group of the shared fixture is the one expected
        assert not s.empty
        assert len(closing_sentences(s)) == s[["grouping", "group"]].drop_duplicates().shape[0]


def test_next_sample_row_is_the_twins_own_answer(oral_fit, sampled):
    """One row recomputed directly from the patient's twin gives the same best time."""
    _, res = sampled
    if res.sampling.empty:
        pytest.fail("the shared fixture's sparse group should show a data gap")
    r = res.sampling.iloc[0]
    direct = oral_fit.twin(r["patient"]).next_measurement(
        CANDIDATES,
        goal=ParameterInterval(r["parameter"]),
        output=r["output"],
        n_imagined=64,
        draws=400,
        seed=0,
    )
    assert direct.best["time"] == r["best_time"]
    assert direct.best["effect"] == pytest.approx(r["narrowing"])
    c_now = r["contraction_now"]
    ratio = direct.best["after"] / direct.best["now"]
    assert r["contraction_after"] == pytest.approx(1 - (1 - c_now) * ratio**2)
    # a narrower interval can only raise the predicted contraction
    assert (r["contraction_after"] >= c_now) == (r["narrowing"] >= 0)


def test_sampling_section_in_html(sampled):
    _, res = sampled
    html = res.to_html()
    assert ("Sampling that would close the data gap" in html) == (not res.sampling.empty)
    for f in res.findings[-1:]:
        assert "measurement around" in f or "no sampling to propose" in f


def test_next_samples_needs_per_parameter_contraction(oral_fit, oral_trust):
    status = oral_trust.table["status"]
    with pytest.raises(tq.errors.InputError, match="per-parameter contraction"):
        tq.audit(oral_fit, by="sampling", trust=status, n_boot=50, next_samples=True)
