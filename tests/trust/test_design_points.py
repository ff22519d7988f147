"""Repeated measurements at one time count once when judging whether data identify a twin."""

from types import SimpleNamespace

import numpy as np

from twin_uq.trust import Status, TrustThresholds
from twin_uq.trust.assess import _data_rules
from twin_uq.trust.metrics import _design_points


def _rules(**row):
    contraction = {"tau_close": 0.9, "tau_open": 0.8, "h_min": 0.7}
    row = dict(n_censored=0, span_fraction=1.0, contraction_median=0.8) | row
    return _data_rules(row, contraction, (), SimpleNamespace(model=None), TrustThresholds())


def test_distinct_output_time_pairs_are_counted():
    use = np.array([[True, True, True, True, False], [True, True, True, True, True]])
    times = np.array([[600.0, 600.0, 1000.0, 1000.0, 400.0], [1.0, 1.0, 2.0, 3.0, 4.0]])
    outputs = np.array([[0, 0, 0, 0, 0], [0, 1, 0, 0, 0]])  # two outputs at t = 1: two points
    assert _design_points(use, times, outputs).tolist() == [2, 5]


def test_six_beats_at_two_cycle_lengths_are_limited():
    v = _rules(n_obs=6, n_eff=6.0, n_design_points=2)
    assert v.status is Status.LIMITED
    assert "only 2 distinct time(s)" in v.reasons[0] and "3 parameters" in v.reasons[0]


def test_distinct_times_enough_or_column_absent_change_nothing():
    assert _rules(n_obs=6, n_eff=6.0, n_design_points=6).status is not Status.LIMITED
    assert _rules(n_obs=6, n_eff=6.0).status is not Status.LIMITED  # older metric tables
    # too few measurements at all: the existing sentence, said once
    v = _rules(n_obs=2, n_eff=2.0, n_design_points=2)
    assert v.reasons == [
        "Only 2 measurement(s) for 3 parameters; the simulation relies partly on the "
        "population average."
    ]
