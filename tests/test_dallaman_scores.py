"""The scores of benchmarks/dallaman_validation.py against known truth (fast)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "dallaman_validation.py"
_spec = importlib.util.spec_from_file_location("dallaman_validation", _PATH)
dv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dv)


def _gaussian_crps(mu: float, sd: float, y: float) -> float:
    """Closed form (Gneiting and Raftery 2007): sd (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi))."""
    z = (y - mu) / sd
    return sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


@pytest.mark.parametrize("y", [-2.5, 0.0, 0.7, 4.0])
def test_crps_of_gaussian_quantiles_matches_the_closed_form(y):
    n = 4000
    x = 3.0 + 2.0 * stats.norm.ppf((np.arange(n) + 0.5) / n)  # N(3, 2²) quantiles
    # The quantile grid's CRPS differs from the distribution's by O(1/n) (a few 1e-4 here).
    assert dv.crps_sample(x, y) == pytest.approx(_gaussian_crps(3.0, 2.0, y), abs=2e-3)


def test_crps_equals_the_pairwise_definition_and_the_absolute_error_of_a_point():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 3.0, size=37)
    brute = np.mean(np.abs(x - 5.0)) - 0.5 * np.mean(np.abs(x[:, None] - x[None, :]))
    assert dv.crps_sample(rng.permutation(x), 5.0) == pytest.approx(brute, rel=1e-12)
    assert dv.crps_sample(np.array([7.5]), 5.0) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        dv.crps_sample(np.array([1.0, np.nan]), 0.0)


def test_reliability_bins_and_exact_binomial_intervals():
    p = np.array([0.0, 0.01, 0.05, 0.05, 0.5, 0.9, 0.95])
    e = np.array([0, 0, 1, 0, 1, 1, 0], dtype=float)
    rows = {r["bin"]: r for r in dv.reliability(p, e)}
    assert [rows[b]["n"] for b in rows] == [2, 2, 1, 2]
    assert rows["0.02-0.10"]["observed"] == 0.5
    assert rows["0.60-1.00"]["predicted"] == pytest.approx(0.925)
    # Clopper-Pearson for 0 of 2: upper limit 1 - 0.025**(1/2)
    assert rows["0.00-0.02"]["hi"] == pytest.approx(1 - 0.025**0.5)
