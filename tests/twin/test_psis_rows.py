"""The many-row PSIS equals arviz-stats' row-by-row PSIS bit for bit (independent implementation)."""

import numpy as np
import pytest
from arviz_stats.base import array_stats

from twin_uq.twin.psis_rows import psis_rows


def _arviz(log_ratios):
    slw, k = array_stats.psislw(-log_ratios, axis=-1)
    return np.asarray(slw), np.asarray(k)


@pytest.mark.parametrize("S", [1000, 200, 64])
def test_psis_rows_equal_arviz_bitwise(S):
    rng = np.random.default_rng(S)
    R = 300
    # importance ratios of an imagined measurement: Gaussian log-likelihoods of draws
    # spread over 0.2 to 20 SDs, so that light, heavy and degenerate tails all occur
    spread = np.exp(rng.uniform(np.log(0.2), np.log(20.0), size=(R, 1)))
    lr = -0.5 * (spread * rng.standard_normal((R, S))) ** 2
    lr[:5] = rng.standard_normal((5, S)) * 1e-3  # nearly even weights
    lr[5] = 0.0  # flat: arviz-stats' "all tail values are the same" is not reached here...
    lr[5, :3] = [1.0, 2.0, 3.0]  # ...because three draws stand out
    lr[6] = np.where(np.arange(S) < 2, 0.0, -50.0)  # two draws carry all the weight
    got_w, got_k = psis_rows(lr)
    want_w, want_k = _arviz(lr)
    np.testing.assert_array_equal(got_k, want_k)
    np.testing.assert_array_equal(got_w, want_w)
    assert np.isfinite(got_k).mean() > 0.9


def test_psis_rows_raises_as_arviz_on_a_flat_tail():
    lr = np.zeros((2, 500))
    with pytest.raises(ValueError):
        _arviz(lr[:1])
    with pytest.raises(ValueError):
        psis_rows(lr)
