"""Simulation-based calibration: ranks of prior-drawn truths among posterior draws."""

import numpy as np
import pytest
from scipy import stats

import twin_uq as tq
from twin_uq.validate import run_sbc

DESIGN = tq.Design(times=[0.25, 1.0, 3.0, 8.0, 24.0], doses=[tq.Bolus(0.0, 100.0, 1)])


def _check_uniform(result, alpha):
    table = result.uniformity(bins=4)
    # Bonferroni over quantities: the whole check has false-alarm rate <= alpha.
    threshold = alpha / len(table)
    assert (table["p_value"] > threshold).all(), table


def test_fast_sbc_one_compartment_iv():
    result = run_sbc(
        "one_compartment_iv", DESIGN, n_patients=6, n_replicates=20, seed=1,
        n_rank_draws=49, fit_kwargs={"chains": 1, "warmup": 200, "draws": 200},
    )
    assert not result.failed, result.failed
    assert len(result.ranks) == 20
    _check_uniform(result, alpha=0.01)
    # Ranks are not degenerate (a sampler stuck at its initial value gives 0 or max).
    assert result.ranks.to_numpy().std() > 5


@pytest.mark.slow
def test_full_sbc_one_compartment_oral():
    result = run_sbc(
        "one_compartment_oral", DESIGN, n_patients=10, n_replicates=100, seed=2,
        n_rank_draws=99, fit_kwargs={"chains": 2, "warmup": 500, "draws": 500},
    )
    assert len(result.failed) <= 2, result.failed
    table = result.uniformity(bins=10)
    assert (table["p_value"] > 0.01 / len(table)).all(), table


def test_uniformity_detects_miscalibration():
    # The check can fail: ranks piled at the top (an overconfident posterior) are rejected.
    import pandas as pd

    from twin_uq.validate.sbc import SBCResult

    rng = np.random.default_rng(0)
    ranks = pd.DataFrame({"q": np.minimum(49, rng.integers(40, 50, 20))})
    table = SBCResult(ranks, 49, ()).uniformity(bins=4)
    assert table.loc["q", "p_value"] < 1e-4
    assert stats.chisquare([6, 6, 6, 6]).pvalue == pytest.approx(1.0)
