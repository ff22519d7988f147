"""Binning, prediction correction and BLQ-aware percentiles of the VPC, on hand-made data."""

import numpy as np
import pytest

from twin_uq.checks.binning import assign_bins, auto_bins, blq_percentiles, prediction_correct
from twin_uq.errors import InputError


def test_nominal_design_gets_one_bin_per_time():
    x = np.repeat([0.5, 1.0, 2.0, 4.0, 8.0, 24.0], 5)
    edges = auto_bins(x)
    np.testing.assert_allclose(edges, [0.5, 0.75, 1.5, 3.0, 6.0, 16.0, 24.0])
    b = assign_bins(x, edges)
    # Every sampling time is its own bin, in order.
    np.testing.assert_array_equal(b, np.repeat(np.arange(6), 5))


def test_irregular_times_get_equal_count_quantile_bins():
    x = np.random.default_rng(0).uniform(0.0, 24.0, 300)
    edges = auto_bins(x, 6)
    assert edges.size == 7 and edges[0] == x.min() and edges[-1] == x.max()
    counts = np.bincount(assign_bins(x, edges), minlength=6)
    assert counts.sum() == 300 and counts.min() >= 49 and counts.max() <= 51
    # Default number of bins: min(10, max(3, n // 15)) = 10 for 300 irregular times.
    assert auto_bins(x).size == 11


def test_user_bins_are_right_closed_and_out_of_range_is_minus_one():
    b = assign_bins([0.0, 1.0, 1.5, 4.0, 5.0, np.nan], [0.0, 1.0, 4.0])
    np.testing.assert_array_equal(b, [0, 0, 1, 1, -1, -1])
    with pytest.raises(InputError, match="increasing"):
        assign_bins([1.0], [0.0, 2.0, 1.0])


def test_prediction_correction_formula_by_hand():
    # Bin with PRED 2 and 8: PRED_bin (median) = 5.
    y = np.array([4.0, 6.0])
    pred = np.array([2.0, 8.0])
    np.testing.assert_allclose(prediction_correct(y, pred, 5.0), [10.0, 3.75])
    # Lower bound 1: 1 + (4 - 1) * (5 - 1) / (2 - 1) = 13; 1 + 5 * 4 / 7.
    np.testing.assert_allclose(
        prediction_correct(y, pred, 5.0, lower_bound=1.0), [13.0, 1 + 20 / 7]
    )
    # Log-scale data: additive correction.
    np.testing.assert_allclose(
        prediction_correct(np.log(y), np.log(pred), np.log(5.0), log=True),
        np.log([10.0, 3.75]),
    )


def test_blq_percentiles_and_flags():
    # 10 values, 3 below the limit 1.0 (their recorded value is irrelevant).
    y = np.array([0.0, 0.0, 0.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    below = np.arange(10) < 3
    values, flagged = blq_percentiles(y, below, 1.0, [0.1, 0.3, 0.5, 0.9])
    ref = np.quantile(np.where(below, 1.0, y), [0.5, 0.9])
    np.testing.assert_allclose(values[2:], ref)
    # 10th and 30th percentiles lie among the censored points (fraction 0.3 >= level).
    np.testing.assert_array_equal(flagged, [True, True, False, False])
    np.testing.assert_allclose(values[:2], [1.0, 1.0])
    # Batched along leading axes, NaN (padding) left out.
    yy = np.stack([y, np.append(y[:-1], np.nan)])
    bb = np.stack([below, below])
    v2, _ = blq_percentiles(yy, bb, 1.0, [0.5])
    np.testing.assert_allclose(v2[0], [ref[0], np.quantile(np.where(below, 1.0, y)[:-1], 0.5)])
