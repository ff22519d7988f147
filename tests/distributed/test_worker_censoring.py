"""The Dask worker scores upper-limit (CENS=-1) and interval (LIMIT) censoring (no cluster)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from censored_iv import TIMES, censored_iv_table
from scipy import stats

import twin_uq as tq
from twin_uq.distributed._worker import _derive_fn, batch_inputs


def test_worker_loglik_of_censored_rows_is_the_interval_probability():
    iv = tq.load_model("one_compartment_iv")
    table = censored_iv_table()
    ((_obs, arr),) = batch_inputs(iv, table, n_obs=4).values()
    theta = np.array([[5.0, 50.0], [4.0, 40.0]])
    add, prop = np.array([[0.2], [0.3]]), np.array([[0.1], [0.05]])
    _, ll, _, ok = _derive_fn()(
        iv, iv.solver, jnp.asarray(theta), arr, jnp.asarray([2]), jnp.asarray(add),
        jnp.asarray(prop), jnp.full(2, 1e6), jax.random.key(0), student_t=False,
    )  # fmt: skip
    assert bool(np.all(ok))
    t = TIMES
    for s in range(2):
        cl, v = theta[s]
        f = 100.0 / v * np.exp(-cl / v * t)
        sd = np.sqrt(add[s, 0] ** 2 + (prop[s, 0] * f) ** 2)
        want = [
            stats.norm.logpdf(1.5, f[0], sd[0]),
            stats.norm.logsf(3.0, f[1], sd[1]),
            np.log(stats.norm.cdf(1.0, f[2], sd[2]) - stats.norm.cdf(0.2, f[2], sd[2])),
        ]
        np.testing.assert_allclose(np.asarray(ll)[s, :3], want, rtol=1e-9)
    assert np.asarray(ll)[:, 3].tolist() == [0.0, 0.0]  # padding
