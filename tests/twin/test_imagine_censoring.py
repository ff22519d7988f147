"""Without a quantification limit, the pre-posterior log-likelihood skips the censored branch.

The skipped branch (``censoring=False``) must give what the full computation gives when
nothing can be censored: the same imagined values, and the same log-likelihood up to the
last bits (XLA compiles the smaller program with a different fusion).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twin_uq.inference.residual import ErrorKind
from twin_uq.twin.next_sample import _imagine


@pytest.mark.slow  # two compilations of the pre-posterior kernel, ~15 s under load
@pytest.mark.parametrize("kind", [ErrorKind.COMBINED, ErrorKind.PROPORTIONAL, ErrorKind.LOGNORMAL])
def test_no_limit_skips_the_censored_branch_without_changing_the_result(kind):
    rng = np.random.default_rng(1)
    S, T, M = 200, 6, 16
    f = np.abs(rng.normal(2.0, 0.5, (S, T)))
    args = (
        jax.random.key(3),
        jnp.asarray(f),
        jnp.asarray(int(kind)),
        jnp.full(S, 0.05),
        jnp.full(S, 0.15),
        jnp.full(S, 5.0),
        jnp.asarray(-np.inf),
        jnp.asarray(rng.integers(0, S, (T, M))),
    )
    y1, b1, ll1 = (np.asarray(a) for a in _imagine(*args, student_t=False, censoring=True))
    y2, b2, ll2 = (np.asarray(a) for a in _imagine(*args, student_t=False, censoring=False))
    np.testing.assert_array_equal(y1, y2)
    assert not b1.any() and not b2.any()
    np.testing.assert_allclose(ll2, ll1, rtol=1e-13, atol=1e-12)
