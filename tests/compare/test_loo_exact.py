"""PSIS-LOO as twin_uq calls it, against exact leave-one-out of a conjugate normal model."""

import numpy as np
import xarray as xr

from twin_uq.compare.loo import psis_loo


def test_conjugate_normal_against_exact_leave_one_out():
    # y_i ~ N(mu, 1), mu ~ N(0, 10^2); the posterior of mu given any subset is normal, so
    # p(y_i | y_-i) = N(y_i | m_-i, 1 + v_-i) exactly.
    rng = np.random.default_rng(3)
    y = rng.normal(1.0, 1.0, size=12)
    tau2 = 100.0

    def post(ys):
        v = 1.0 / (1.0 / tau2 + len(ys))
        return v * ys.sum(), v

    m, v = post(y)
    mu = rng.normal(m, np.sqrt(v), size=(4, 2000))
    ll = -0.5 * np.log(2 * np.pi) - 0.5 * (y[None, None, :] - mu[..., None]) ** 2
    exact = []
    for i in range(y.size):
        mi, vi = post(np.delete(y, i))
        exact.append(-0.5 * np.log(2 * np.pi * (1 + vi)) - 0.5 * (y[i] - mi) ** 2 / (1 + vi))
    loglik = xr.DataArray(ll, dims=("chain", "draw", "unit"))
    posterior = xr.Dataset({"mu": (("chain", "draw"), mu)})
    result = psis_loo(posterior, loglik, "unit")
    # Monte Carlo SE of each elpd_i: the harmonic-mean estimator log(1 / mean(1 / p_s)) has
    # SE ~ sd(1/p) / (mean(1/p) sqrt(S)) (delta method, independent draws).
    inv = np.exp(-ll.reshape(-1, y.size))
    se = inv.std(axis=0) / (inv.mean(axis=0) * np.sqrt(inv.shape[0]))
    assert np.all(np.abs(np.asarray(result.elpd_i) - exact) < 4 * se)
    assert se.max() < 0.02  # the check has teeth: an error of 0.08 would fail it
    assert np.all(np.asarray(result.pareto_k) < 0.5)
