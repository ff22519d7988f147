"""Bayesian bootstrap (pure numpy): calibration on data with a known difference."""

import numpy as np
import pytest

from twin_uq.audit.bootstrap import (
    bayesian_bootstrap,
    difference_interval,
    point_estimate,
    weighted_median,
)


def test_weighted_median_equal_weights_is_the_lower_median():
    x = np.array([5.0, 1.0, 3.0, 2.0])
    assert weighted_median(x, np.ones((1, 4)))[0] == 2.0
    assert point_estimate(x, "median") == 2.0
    # all weight on one patient picks that patient
    assert weighted_median(x, np.array([[0.0, 0.0, 1.0, 0.0]]))[0] == 3.0


def test_bootstrap_variance_of_mean_matches_theory():
    # Rubin (1981): Var of the Dirichlet-weighted mean = sum (x - xbar)^2 / (n (n + 1)).
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    d = bayesian_bootstrap(x, "mean", 20000, np.random.default_rng(2))
    theory = ((x - x.mean()) ** 2).sum() / (30 * 31)
    # sample variance of 20000 draws: relative SE ~ sqrt(2 / 20000) = 1 %; allow 5 SE
    assert d.var() == pytest.approx(theory, rel=0.05)
    assert d.mean() == pytest.approx(x.mean(), abs=5 * np.sqrt(theory / 20000))


def test_binary_share_is_never_degenerate():
    # every patient flagged: the share follows Beta(n + 1/2, 1/2), not a point mass at 1
    d = bayesian_bootstrap(np.ones(4), "mean", 20000, np.random.default_rng(0), binary=True)
    assert d.min() < 1.0
    # Beta(4.5, 0.5) mean = 0.9
    assert d.mean() == pytest.approx(0.9, abs=0.01)
    with pytest.raises(ValueError, match="0 or 1"):
        bayesian_bootstrap(np.array([0.5]), binary=True)


def test_nan_values_are_dropped_and_empty_groups_give_nan():
    assert np.isnan(bayesian_bootstrap(np.array([np.nan]), n_boot=5)).all()
    d = bayesian_bootstrap(np.array([1.0, np.nan, 3.0]), n_boot=200)
    assert np.all((d >= 1.0) & (d <= 3.0))


@pytest.mark.parametrize(("stat", "binary"), [("mean", False), ("median", False), ("mean", True)])
def test_interval_covers_a_known_difference(stat, binary):
    # Two groups of 40 and 60 patients with a known difference of their population mean /
    # median / share. A 95 % interval should cover it in 95 % of repeated studies; the
    # Bayesian bootstrap is slightly narrow for finite n (variance factor (n - 1)/(n + 1)),
    # so accept 0.95 within 3 binomial SDs of 300 studies (0.95 ± 0.038).
    rng = np.random.default_rng(7)
    reps, hits = 300, 0
    for r in range(reps):
        if binary:
            a, b = rng.random(40) < 0.45, rng.random(60) < 0.25
            a, b, truth = a.astype(float), b.astype(float), 0.20
        elif stat == "mean":
            a, b, truth = rng.normal(2.0, 1.0, 40), rng.normal(1.5, 1.5, 60), 0.5
        else:  # lognormal: medians exp(1) and exp(0.5)
            a, b = np.exp(rng.normal(1.0, 0.5, 40)), np.exp(rng.normal(0.5, 0.5, 60))
            truth = np.exp(1.0) - np.exp(0.5)
        _, lo, hi = difference_interval(a, b, stat, 0.95, 1000, seed=r, binary=binary)
        hits += lo <= truth <= hi
    sd = np.sqrt(0.95 * 0.05 / reps)
    assert abs(hits / reps - 0.95) <= 3 * sd, hits / reps
