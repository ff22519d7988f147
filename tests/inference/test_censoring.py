"""Censored observations: M3, upper-limit, interval and M4 against analytic CDFs (scipy)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import twin_uq as tq
from twin_uq.data import read_cohort
from twin_uq.inference.likelihood import censoring_args
from twin_uq.inference.residual import ErrorKind, observation_loglik

F, A, B, NU = 2.0, 0.3, 0.2, 5.0

# (error code, scipy distribution of Y, whether Y can be negative)
CASES = {
    "additive": (ErrorKind.ADDITIVE, stats.norm(F, A)),
    "proportional": (ErrorKind.PROPORTIONAL, stats.norm(F, B * F)),
    "combined": (ErrorKind.COMBINED, stats.norm(F, np.hypot(A, B * F))),
    "lognormal": (ErrorKind.LOGNORMAL, stats.lognorm(s=B, scale=F)),
    "student_t": (ErrorKind.STUDENT_T, stats.t(NU, loc=F, scale=np.hypot(A, B * F))),
}


def loglik(code, y, cens, bound, limit=None):
    n = len(y)
    return np.asarray(
        observation_loglik(
            jnp.full(n, int(code)),
            jnp.asarray(y, float),
            jnp.full(n, F),
            jnp.full(n, A),
            jnp.full(n, B),
            jnp.full(n, NU),
            jnp.asarray(cens),
            jnp.asarray(bound, float),
            None if limit is None else jnp.asarray(limit, float),
        )
    )


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_kind_of_censoring_against_the_analytic_cdf(kind):
    code, dist = CASES[kind]
    # rows: observed; below 1.5 (M3); above 2.6; below 2.4 within (1.1, 2.4); above 2.2
    # within (2.2, 3.5); M4: below 0.9 within (0, 0.9)
    y = [2.2, 1.5, 2.6, 2.4, 2.2, 0.9]
    cens = [0, 1, -1, 1, -1, 1]
    bound = [-np.inf, 1.5, 2.6, 2.4, 2.2, 0.9]
    limit = [np.nan, np.nan, np.nan, 1.1, 3.5, 0.0]
    got = loglik(code, y, cens, bound, limit)
    cdf = dist.cdf
    m4 = (cdf(0.9) - cdf(0.0)) / (1.0 - cdf(0.0))  # lognormal: cdf(0) = 0, plain M3
    expected = [
        dist.logpdf(2.2),
        np.log(cdf(1.5)),
        np.log(dist.sf(2.6)),
        np.log(cdf(2.4) - cdf(1.1)),
        np.log(cdf(3.5) - cdf(2.2)),
        np.log(m4),
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_m4_is_conditioned_on_positive_values_only_where_they_can_be_negative():
    code = CASES["additive"][0]
    f_low = 0.2  # a prediction near zero, where P(Y < 0) is large
    got = observation_loglik(
        jnp.array([int(code)]), jnp.array([0.5]), jnp.array([f_low]), jnp.array([A]),
        jnp.array([0.0]), jnp.array([NU]), jnp.array([1]), jnp.array([0.5]), jnp.array([0.0]),
    )  # fmt: skip
    d = stats.norm(f_low, A)
    expected = np.log((d.cdf(0.5) - d.cdf(0.0)) / d.sf(0.0))
    np.testing.assert_allclose(np.asarray(got), [expected], rtol=1e-10)
    assert expected > np.log(d.cdf(0.5) - d.cdf(0.0))  # conditioning changes the value


def test_far_tail_intervals_keep_their_precision():
    # (10, 11) standard deviations above the prediction: Phi(11) - Phi(10) underflows as a
    # difference of CDFs; the upper tails give it to full precision.
    y = [F + 10 * A]
    got = loglik(ErrorKind.ADDITIVE, y, [-1], y, [F + 11 * A])
    lo, hi = stats.norm.logsf(10.0), stats.norm.logsf(11.0)
    np.testing.assert_allclose(got, [lo + np.log1p(-np.exp(hi - lo))], rtol=1e-9)
    got = loglik(ErrorKind.ADDITIVE, [F - 10 * A], [1], [F - 10 * A], [F - 11 * A])
    lo, hi = stats.norm.logcdf(-11.0), stats.norm.logcdf(-10.0)
    np.testing.assert_allclose(got, [hi + np.log1p(-np.exp(lo - hi))], rtol=1e-9)


def test_boolean_censoring_is_the_m3_computation_as_before():
    code = jnp.array([0, 1, 2, 3, 4, 0])
    args = (jnp.array([2.2, 1.5, 1.0, 0.9, 1.7, 2.5]), jnp.full(6, F), jnp.full(6, A),
            jnp.full(6, B), jnp.full(6, NU))  # fmt: skip
    flags = jnp.array([False, True, True, True, True, False])
    bound = jnp.array([-jnp.inf, 1.5, 1.0, 0.9, 1.7, 0.5])
    old = observation_loglik(code, *args, flags, bound)
    new = observation_loglik(code, *args, flags.astype(jnp.int32), bound, jnp.full(6, jnp.nan))
    np.testing.assert_array_equal(np.asarray(old), np.asarray(new))

    def total(f, flags, limit):
        return jnp.sum(observation_loglik(code, args[0], f, *args[2:], flags, bound, limit))

    g_old = jax.grad(total)(args[1], flags, None)
    g_new = jax.grad(total)(args[1], flags.astype(jnp.int32), jnp.full(6, jnp.nan))
    np.testing.assert_array_equal(np.asarray(g_old), np.asarray(g_new))


@pytest.mark.parametrize("kind", sorted(CASES))
def test_gradients_are_finite_and_match_finite_differences(kind):
    code, _ = CASES[kind]
    y = jnp.array([2.2, 1.5, 2.6, 2.4, 2.2, 0.9])
    cens = jnp.array([0, 1, -1, 1, -1, 1])
    limit = jnp.array([jnp.nan, jnp.nan, jnp.nan, 1.1, 3.5, 0.0])
    bound = jnp.where(cens != 0, y, -jnp.inf)

    def total(f):
        n = y.size
        c = jnp.full(n, int(code))
        return jnp.sum(
            observation_loglik(
                c, y, f, jnp.full(n, A), jnp.full(n, B), jnp.full(n, NU), cens, bound, limit
            )
        )

    f0 = jnp.full(6, F)
    g = np.asarray(jax.grad(total)(f0))
    assert np.all(np.isfinite(g))
    h = 1e-6
    for j in range(6):
        e = jnp.zeros(6).at[j].set(h)
        fd = (total(f0 + e) - total(f0 - e)) / (2 * h)
        np.testing.assert_allclose(g[j], float(fd), rtol=1e-5, atol=1e-7)


# ---- the cohort's arrays carry the censoring to the likelihood -------------------------------


def _cohort(cens, limit=None):
    df = pd.DataFrame(
        {
            "ID": ["a"] * 3,
            "TIME": [0.0, 1.0, 2.0],
            "DV": [np.nan, 2.0, 0.5],
            "AMT": [100.0, np.nan, np.nan],
            "CMT": [2, 0, 0],
            "CENS": [0, 0, cens],
            "WT": [70.0] * 3,
        }
    )
    if limit is not None:
        df["LIMIT"] = [np.nan, np.nan, limit]
    return read_cohort(df)


def test_below_limit_only_keeps_the_m3_arrays():
    oral = tq.load_model("one_compartment_oral")
    arrays = _cohort(1).for_model(oral)
    assert arrays.obs_cens is None and arrays.obs_limit is None
    censored, lloq, limit = censoring_args(arrays)
    assert censored.dtype == jnp.bool_ and limit is None
    np.testing.assert_array_equal(np.asarray(lloq)[0], [-np.inf, 0.5])


@pytest.mark.parametrize(("cens", "limit"), [(-1, None), (1, 0.0)])
def test_upper_or_interval_censoring_reaches_the_likelihood(cens, limit):
    oral = tq.load_model("one_compartment_oral")
    arrays = _cohort(cens, limit).for_model(oral)
    censored, lloq, lim = censoring_args(arrays)
    np.testing.assert_array_equal(np.asarray(censored)[0], [0, cens])
    np.testing.assert_array_equal(np.asarray(lloq)[0], [-np.inf, 0.5])
    expected_limit = np.nan if limit is None else limit
    np.testing.assert_array_equal(np.asarray(lim)[0], [np.nan, expected_limit])
    with pytest.raises(tq.CohortError, match="A twin update handles observations censored below"):
        arrays.require_lower_censoring_only("A twin update")


def test_the_fits_patient_likelihood_scores_each_censoring_by_its_interval():
    """patient_loglik (what every fit method sums) on a cohort with CENS -1, 1 and M4 rows."""
    from twin_uq.inference.likelihood import ResidualParams, patient_loglik, patient_predictions

    oral = tq.load_model("one_compartment_oral")
    df = pd.DataFrame(
        {
            "ID": ["a"] * 5,
            "TIME": [0.0, 1.0, 2.0, 4.0, 8.0],
            "DV": [np.nan, 3.0, 9.0, 0.5, 0.4],
            "AMT": [100.0, np.nan, np.nan, np.nan, np.nan],
            "CENS": [0, 0, -1, 1, 1],
            "LIMIT": [np.nan, np.nan, np.nan, np.nan, 0.0],
            "WT": [70.0] * 5,
        }
    )
    arrays = read_cohort(df).for_model(oral)
    one = jax.tree.map(lambda x: x[0], arrays)
    theta = jnp.array([p.typical for p in oral.parameters])
    settings = oral.solver
    sd = 0.4  # additive error
    residual = ResidualParams(add=jnp.array([sd]), prop=jnp.array([0.0]), nu=jnp.asarray(1e6))
    code = jnp.array([int(ErrorKind.ADDITIVE)])
    ll, ok = patient_loglik(oral, settings, theta, one.covariates, one, code, residual)
    f, _ = patient_predictions(
        oral, settings, theta, one.covariates, one.schedule, one.obs_time, one.obs_output
    )
    f = np.asarray(f)
    d = [stats.norm(m, sd) for m in f[:4]]
    expected = [
        d[0].logpdf(3.0),
        d[1].logsf(9.0),
        d[2].logcdf(0.5),
        np.log((d[3].cdf(0.4) - d[3].cdf(0.0)) / d[3].sf(0.0)),
    ]
    assert bool(ok)
    np.testing.assert_allclose(np.asarray(ll)[:4], expected, rtol=1e-9)
