"""NPDE machinery on small Gaussian cases with known answers (no fit)."""

import numpy as np
import scipy.linalg
from scipy import stats

from twin_uq.checks.npde import decorrelated_pde, normality_tests, patient_npde


def _independent_pde(y, Y):
    """The decorrelated pde written out step by step (explicit inverse, loops)."""
    R, n = Y.shape
    E = Y.sum(axis=0) / R
    V = sum(np.outer(Y[k] - E, Y[k] - E) for k in range(R)) / (R - 1)
    Linv = np.linalg.inv(scipy.linalg.cholesky(V, lower=True))
    ys = Linv @ (y - E)
    out = np.empty(n)
    for j in range(n):
        below = sum(1 for k in range(R) if (Linv @ (Y[k] - E))[j] < ys[j])
        out[j] = min(max(below / R, 0.5 / R), 1 - 0.5 / R)
    return out


def test_decorrelation_matches_an_independent_computation():
    rng = np.random.default_rng(1)
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 2.0, 0.5], [0.3, 0.5, 0.7]])
    Y = rng.multivariate_normal([1.0, 2.0, 3.0], cov, size=400)
    y = np.array([1.5, 1.0, 3.2])
    np.testing.assert_allclose(decorrelated_pde(y, Y), _independent_pde(y, Y), atol=1e-12)


def test_decorrelated_pde_converges_to_the_gaussian_answer():
    # Large R: pde -> Phi(L^-1 (y - m)) with the true mean and Cholesky factor.
    rng = np.random.default_rng(2)
    m = np.array([1.0, 2.0, 3.0])
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 2.0, 0.5], [0.3, 0.5, 0.7]])
    R = 40_000
    Y = rng.multivariate_normal(m, cov, size=R)
    y = np.array([1.5, 1.0, 3.2])
    exact = stats.norm.cdf(np.linalg.solve(np.linalg.cholesky(cov), y - m))
    # Binomial error sqrt(p(1-p)/R) <= 0.0025 plus the error of the estimated mean and
    # Cholesky factor (about 1/sqrt(R) in z, times the density <= 0.4): 4 SDs < 0.015.
    np.testing.assert_allclose(decorrelated_pde(y, Y), exact, atol=0.015)
    # Without decorrelation: the marginal PIT.
    marg = stats.norm.cdf((y - m) / np.sqrt(np.diag(cov)))
    np.testing.assert_allclose(decorrelated_pde(y, Y, decorrelate=False), marg, atol=0.015)


def _hierarchical(rng, P, R, times):
    """Observations of a random-intercept-and-slope model with log-normal noise: one
    observed set ``(P, n)`` and ``R`` replicates ``(R, P, n)`` from the same model."""

    def draw(size):
        a = 1.0 + 0.5 * rng.standard_normal((*size, 1))
        b = -0.2 + 0.1 * rng.standard_normal((*size, 1))
        return np.exp(a + b * times + 0.2 * rng.standard_normal((*size, times.size)))

    return draw((P,)), draw((R, P))


def test_npde_of_data_from_the_simulation_model_are_standard_normal():
    rng = np.random.default_rng(3)
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    y, Y = _hierarchical(rng, 200, 500, times)
    none = np.zeros(times.size, bool)
    values = np.concatenate(
        [patient_npde(y[i], Y[:, i], none, none, np.full(times.size, -np.inf), rng)[1]
         for i in range(200)]
    )  # fmt: skip
    res = normality_tests(values)
    # 1000 values: SE of the mean 0.032, of the variance about 0.045 (4 SEs below).
    assert abs(res["mean"]) < 0.13
    assert abs(res["variance"] - 1.0) < 0.18
    assert not res["flag"], res


def test_npde_with_censored_points_stay_standard_normal():
    # Observations below 1.5 are censored (about a third of them): imputed by the pd
    # method, the npde are still N(0, 1) under the true model.
    rng = np.random.default_rng(4)
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    y, Y = _hierarchical(rng, 200, 500, times)
    lloq = np.full(times.size, 1.5)
    values, pds, n_cens = [], [], 0
    for i in range(200):
        below = y[i] < lloq
        n_cens += below.sum()
        obs = np.where(below, lloq, y[i])  # what a data set records for a BLQ point
        pd_, npde_ = patient_npde(obs, Y[:, i], below, np.zeros_like(below), lloq, rng, lloq)
        values.append(npde_)
        pds.append(pd_)
    assert 150 < n_cens < 700
    values, pds = np.concatenate(values), np.concatenate(pds)
    res = normality_tests(values)
    assert abs(res["mean"]) < 0.13 and abs(res["variance"] - 1.0) < 0.18, res
    assert not res["flag"], res
    # The PIT of every observation is uniform: KS test at the 1% level.
    assert stats.kstest(pds, "uniform").pvalue > 0.01


def test_normality_tests_flag_a_shifted_sample():
    x = np.random.default_rng(5).standard_normal(400)
    assert not normality_tests(x)["flag"]
    shifted = normality_tests(x + 0.5)
    assert shifted["flag"] and shifted["p_mean"] < 1e-6
    wide = normality_tests(2.0 * x)
    assert wide["flag"] and wide["p_variance"] < 1e-6
