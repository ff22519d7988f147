"""Twin updates score upper-limit (CENS=-1) and interval (LIMIT) censoring, not refuse it.

The update's likelihood goes through the one residual contract
(``observation_loglik(..., limit=)``); checked against the censored likelihood written out
with scipy on a tiny case, and by the direction an upper-censored value moves the twin.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from censored_iv import censored_iv_table
from scipy import stats

import twin_uq as tq
from twin_uq.twin.engine import bucket_schedule
from twin_uq.twin.update import UpdateData, log_target, observed, patient_arrays, run_update

NAN = np.nan
TIMES = np.array([1.0, 4.0, 8.0])


@pytest.fixture(scope="module")
def iv():
    return tq.load_model("one_compartment_iv")


@pytest.fixture(scope="module")
def schedule():
    return tq.Schedule.build(boluses=[tq.Bolus(0.0, 100.0, 1)])


def _data(model, schedule, obs, mean, sd, add, prop, code):
    arrays = patient_arrays(model, obs, bucket_schedule(schedule), np.asarray([70.0]))
    K = mean.shape[0]
    chol = np.diag(np.full(K, sd))[None]
    return UpdateData(
        arrays=arrays,
        error_code=jnp.asarray([code]),
        mean=jnp.asarray(mean[None]),
        chol_inv=jnp.asarray(np.linalg.inv(chol)),
        logdet=jnp.asarray(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)),
        add=jnp.full((1, 1), add),
        prop=jnp.full((1, 1), prop),
        nu=jnp.full(1, 1e6),
    )


def _obs(values, cens, lloq, limit):
    return {
        "time": TIMES,
        "value": np.asarray(values, float),
        "output": np.zeros(3, int),
        "censored": np.asarray(cens) != 0,
        "lloq": np.asarray(lloq, float),
        "cens": np.asarray(cens, np.int32),
        "limit": np.asarray(limit, float),
    }


def test_update_target_is_the_analytic_censored_likelihood(iv, schedule):
    # one measured value, one above an upper limit (CENS=-1), one inside (0.2, 1.0) (LIMIT)
    obs = _obs([1.5, 3.0, 1.0], [0, -1, 1], [-np.inf, 3.0, 1.0], [NAN, NAN, 0.2])
    mean = np.log([5.0, 50.0])
    data = _data(iv, schedule, obs, mean, 0.3, add=0.2, prop=0.1, code=2)  # combined
    x = mean + np.array([0.1, -0.2])
    got = float(jax.jit(lambda x_: log_target(iv, iv.solver, x_, data, False))(jnp.asarray(x)))
    cl, v = np.exp(x)
    f = 100.0 / v * np.exp(-cl / v * TIMES)  # one compartment IV bolus, WT = 70 (reference)
    sd = np.sqrt(0.2**2 + (0.1 * f) ** 2)
    ll = stats.norm.logpdf(1.5, f[0], sd[0])
    ll += stats.norm.logsf(3.0, f[1], sd[1])  # P(Y > 3)
    ll += np.log(stats.norm.cdf(1.0, f[2], sd[2]) - stats.norm.cdf(0.2, f[2], sd[2]))
    prior = stats.norm.logpdf(x, mean, 0.3).sum()
    assert got == pytest.approx(prior + ll, rel=1e-9, abs=1e-9)


MEAN = np.log([5.0, 50.0])  # log CL, log V of the (single) population draw
F_PRIOR = 100.0 / 50.0 * np.exp(-5.0 / 50.0 * 4.0)  # 1.34 mg/L at 4 h at the median
LIMIT = 2.0 * F_PRIOR  # "above 2.7 mg/L": higher than the population expects


def _upper_censored(iv, schedule):
    obs = {
        "time": np.array([4.0]),
        "value": np.array([LIMIT]),
        "output": np.zeros(1, int),
        "censored": np.array([True]),
        "lloq": np.array([LIMIT]),
        "cens": np.array([-1], np.int32),
        "limit": np.array([NAN]),
    }
    return _data(iv, schedule, obs, MEAN, 0.4, add=0.05, prop=0.1, code=2)


def _conc(x):
    cl, v = np.exp(x[..., 0]), np.exp(x[..., 1])
    return 100.0 / v * np.exp(-cl / v * 4.0)


def _grid_posterior(log_density):
    """Posterior mean of the 4 h concentration and P(f > LIMIT) by quadrature on a grid."""
    axis = np.linspace(-2.4, 2.4, 161)  # +- 6 prior SDs
    x = MEAN + np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    lp = log_density(x)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    f = _conc(x)
    return float(np.sum(w * f)), float(np.sum(w * (f > LIMIT)))


def _analytic(x):
    f = _conc(x)
    sd = np.sqrt(0.05**2 + (0.1 * f) ** 2)
    return stats.norm.logpdf(x, MEAN, 0.4).sum(axis=-1) + stats.norm.logsf(LIMIT, f, sd)


def test_an_upper_censored_value_moves_the_update_target_up(iv, schedule):
    data = _upper_censored(iv, schedule)
    target = jax.jit(jax.vmap(lambda x: log_target(iv, iv.solver, x, data, False)))
    mean_f, p_above = _grid_posterior(lambda x: np.asarray(target(jnp.asarray(x))))
    prior_f, prior_above = _grid_posterior(lambda x: stats.norm.logpdf(x, MEAN, 0.4).sum(-1))
    # "above the limit" moves the twin up: from 4 % of the prior mass above it to most
    assert prior_above < 0.1 and p_above > 0.5 and mean_f > 1.5 * prior_f
    ref_f, ref_above = _grid_posterior(_analytic)
    assert mean_f == pytest.approx(ref_f, rel=1e-8)
    assert p_above == pytest.approx(ref_above, rel=1e-8)


@pytest.mark.slow
def test_the_nuts_update_samples_the_upper_censored_posterior(iv, schedule):
    # NUTS compile and run: about 75 s on 2 shared cores.
    up = run_update(
        iv, iv.solver, _upper_censored(iv, schedule), MEAN, chains=2, warmup=300, draws=400, seed=0
    )
    assert up.divergences == 0
    f = _conc(np.log(up.theta))
    ref_f, ref_above = _grid_posterior(_analytic)
    mcse = np.std(f) / np.sqrt(up.ess_bulk)
    assert abs(np.mean(f) - ref_f) < 4 * mcse, (np.mean(f), ref_f, mcse)
    p = np.mean(f > LIMIT)
    assert abs(p - ref_above) < 4 * np.sqrt(ref_above * (1 - ref_above) / up.ess_bulk)


def test_observed_carries_upper_and_interval_censoring_from_a_cohort(iv):
    table = censored_iv_table()
    arrays = tq.read_cohort(table, time_unit="h").for_model(iv)
    obs = observed(arrays, 0)
    np.testing.assert_array_equal(obs["cens"], [0, -1, 1])
    np.testing.assert_array_equal(obs["limit"], [NAN, NAN, 0.2])
    np.testing.assert_array_equal(obs["lloq"][1:], [3.0, 1.0])
    padded = patient_arrays(iv, obs, bucket_schedule(tq.Schedule.build()), np.asarray([70.0]))
    assert padded.obs_cens is not None and int(padded.obs_cens[3]) == 0
