"""No disparity in, none out: the false-alarm rate of the audit matches its stated level.

Simulated at the level of per-patient metrics rather than full fits (a fit per replicate
would take minutes): in every replicate, 90 patients are split at random into two groups
(30 and 60) whose per-patient flags, widths, coverages and errors come from the *same*
distributions, and :func:`audit_metrics` compares them exactly as ``tq.audit`` does. The
rate at which a 95 % interval excludes zero must stay at 5 % (within binomial tolerance).
"""

import numpy as np
import pandas as pd
import pytest

from twin_uq.audit import audit_metrics

pytestmark = pytest.mark.slow


def _null_cohort(rng, n=90):
    ids = [f"P{i:03d}" for i in range(n)]
    grp = np.where(rng.permutation(n) < 30, "B", "A")
    metrics = pd.DataFrame(
        {
            "n_obs": rng.integers(2, 9, n),
            "flagged": (rng.random(n) < 0.3).astype(float),
            "width": rng.lognormal(0.0, 0.4, n),
            "coverage": rng.binomial(3, 0.9, n) / 3,
            "mae": rng.gamma(2.0, 0.1, n),
        },
        index=ids,
    )
    return metrics, pd.DataFrame({"grp": grp}, index=ids)


def test_no_disparity_reports_none_at_the_stated_rate():
    rng = np.random.default_rng(123)
    reps, alarms, total = 250, 0, 0
    for r in range(reps):
        metrics, cov = _null_cohort(rng)
        res = audit_metrics(metrics, cov, by="grp", reference="A", n_boot=1000, seed=r)
        d = res.disparities[res.disparities["metric"].isin(["flagged", "width", "coverage", "mae"])]
        assert len(d) == 4 and not d["small"].any()
        alarms += int(d["detected"].sum())
        total += len(d)
        if r == 0:  # the sentences say so
            assert any(f.startswith("No difference detected") for f in res.findings)
    rate = alarms / total
    # 1000 comparisons (4 independent metrics x 250 cohorts); stated rate 5 %.
    sd = np.sqrt(0.05 * 0.95 / total)
    assert rate <= 0.05 + 3 * sd, rate
    # and the test can fail the other way: the intervals are not vacuously wide
    assert rate >= 0.05 - 3 * sd, rate
