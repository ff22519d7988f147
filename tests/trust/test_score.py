"""The trust score p_miss: closed forms, monotonicity, margins, the status rule, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from twin_uq.errors import InputError
from twin_uq.trust.assess import Status, TrustAssessment, TrustReport, _score_rule, report_json
from twin_uq.trust.score import (
    any_miss_probability,
    clinical_margins,
    expected_abs_error,
    gaussian_miss_probability,
    miss_probability,
)
from twin_uq.trust.thresholds import TrustThresholds


def test_gaussian_closed_form_against_normal_cdf():
    # P(|Z| > 1.96) = 0.05 and P(|Z| > 1) = 0.3173 (standard normal tables)
    assert gaussian_miss_probability(1.0, 1.959964) == pytest.approx(0.05, abs=1e-6)
    assert gaussian_miss_probability(2.0, 2.0) == pytest.approx(0.317311, abs=1e-6)


def test_draw_score_equals_gaussian_closed_form():
    rng = np.random.default_rng(1)
    S, sd = 200_000, np.array([0.5, 1.0, 2.0])
    draws = 3.0 + sd * rng.standard_normal((S, 3))
    margin = 1.0
    p = miss_probability(draws, margin)
    exact = gaussian_miss_probability(sd, margin)
    mcse = np.sqrt(exact * (1 - exact) / S)
    assert np.all(np.abs(p - exact) < 4 * mcse + 2e-3)  # + median's own Monte Carlo error
    # expected absolute error of a Gaussian around its median: sd * sqrt(2 / pi)
    eae = expected_abs_error(draws)
    assert eae == pytest.approx(sd * math.sqrt(2 / math.pi), rel=0.01)


def test_inflation_is_a_wider_gaussian():
    rng = np.random.default_rng(2)
    draws = rng.standard_normal((100_000, 1))
    p = miss_probability(draws, 1.0, inflation=1.5)[0]
    assert p == pytest.approx(gaussian_miss_probability(1.5, 1.0), abs=0.006)
    with pytest.raises(InputError):
        miss_probability(draws, 1.0, inflation=0.0)


def test_monotone_in_margin():
    rng = np.random.default_rng(3)
    draws = rng.gamma(2.0, 1.0, (5000, 4))
    margins = np.linspace(0.0, 6.0, 25)
    ps = np.array([miss_probability(draws, m) for m in margins])
    assert np.all(np.diff(ps, axis=0) <= 0)
    anys = [any_miss_probability(draws, m) for m in margins]
    assert np.all(np.diff(anys) <= 0)
    assert anys[-1] < anys[0]


def test_any_miss_of_independent_points_and_identical_points():
    rng = np.random.default_rng(4)
    S = 200_000
    z = rng.standard_normal((S, 2))
    p1 = gaussian_miss_probability(1.0, 1.0)
    # independent points: 1 - (1 - p)^2; identical points: p
    assert any_miss_probability(z, 1.0) == pytest.approx(1 - (1 - p1) ** 2, abs=0.005)
    same = np.repeat(z[:, :1], 2, axis=1)
    assert any_miss_probability(same, 1.0) == pytest.approx(p1, abs=0.005)
    # kept leading axis (patients): one value each
    per_patient = any_miss_probability(np.stack([z, same], axis=1), 1.0, keep=1)
    assert per_patient.shape == (2,)
    assert per_patient[0] > per_patient[1]


def test_failed_draws_are_left_out():
    draws = np.array([[0.0], [1.0], [-1.0], [np.nan], [0.2]])
    assert miss_probability(draws, 0.5)[0] == pytest.approx(2 / 4)
    assert any_miss_probability(draws, 0.5) == pytest.approx(2 / 4)


def test_clinical_margins_precedence():
    th = TrustThresholds(score_margin_fraction=0.1, clinical_range={"c": (0.0, 4.0)})
    assert clinical_margins(["c", "e"], th) == {"c": pytest.approx(0.4)}
    th2 = TrustThresholds(clinical_margin={"c": 0.25, "e": 2.0})
    assert clinical_margins(["c", "e"], th2) == {"c": 0.25, "e": 2.0}
    assert clinical_margins(["c"], th, margin=0.3) == {"c": 0.3}
    with pytest.raises(InputError):
        clinical_margins(["c"], th, margin=-1.0)


def _assessment(pid: str, p: float) -> TrustAssessment:
    return TrustAssessment(pid, Status.TRUSTWORTHY, (), {"p_miss": p}, p_miss=p)


def test_status_rule_uses_the_score():
    th = TrustThresholds(p_miss_limited=0.2)
    row = {"p_miss": 0.35, "score_margin_concentration": 0.4}
    text = _score_rule(row, th)
    assert text is not None and "35%" in text and "0.4 for concentration" in text
    assert _score_rule({"p_miss": 0.19}, th) is None
    assert _score_rule({"p_miss": np.nan}, th) is None
    assert _score_rule({"p_miss": 0.19}, TrustThresholds(p_miss_limited=0.1)) is not None
    with pytest.raises(InputError):
        TrustThresholds(p_miss_limited=0.0)


def test_thresholds_and_report_json_round_trip():
    th = TrustThresholds(clinical_margin={"glucose": 15.0}, p_miss_limited=0.3)
    assert TrustThresholds.from_json(th.to_json()) == th
    report = TrustReport(
        {"P1": _assessment("P1", 0.125), "P2": _assessment("P2", np.nan)}, th, {"k": "v"}
    )
    back = json.loads(report_json(report))
    assert [p["p_miss"] for p in back["patients"]] == [0.125, None]
    assert back["patients"][0]["fit_verdict"] == "sound"
    assert report.table.loc["P1", "p_miss"] == 0.125
    assert report["P1"].score == 0.125


def test_auc_interval_and_calibration_table_against_known_truth():
    from twin_uq.trust.validation import _auc_ranks, auc, auc_interval, calibration_table

    rng = np.random.default_rng(5)
    # binormal model: score ~ N(d, 1) for events, N(0, 1) otherwise: AUC = Phi(d / sqrt 2)
    n, d = 4000, 1.0
    y = rng.random(n) < 0.3
    s = rng.standard_normal(n) + d * y
    exact = 0.5 * math.erfc(-d / 2)  # Phi(d / sqrt(2))
    est, lo, hi = auc_interval(s, y, n_boot=300, seed=1)
    assert est == pytest.approx(auc(s, y), abs=1e-12) == pytest.approx(_auc_ranks(s, y))
    assert lo < exact < hi and hi - lo < 0.05
    # outcomes drawn with probability p are calibrated: each decile's 95 % interval covers
    # its mean prediction with probability ~0.95, so >= 8 of 10 fail only 1 time in 90
    p = rng.random(20_000)
    tab = calibration_table(p, rng.random(p.size) < p)
    assert len(tab) == 10 and tab["inside"].sum() >= 8
    assert tab["realised"].is_monotonic_increasing
    # a forecast that says 0.5 for events of probability 0.1 is not
    bad = calibration_table(np.full(2000, 0.5), rng.random(2000) < 0.1)
    assert not bad["inside"].any()
