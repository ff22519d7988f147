"""Population checks of a fit with OU-autocorrelated residuals simulate correlated noise.

``_simulate_batch`` on a tiny dense cohort (one observation every 0.5 h): the residuals of
the new patients (replicates with additive SD 1 minus the same replicates without noise:
the same keys give the same random effects) have variance 1 and lag-one correlation
``exp(-0.5 / tau)``; with ``tau = 0`` they are independent, and without ``tau`` the
replicates are the ones every fit without ``residual_correlation`` gets.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from models.one_compartment_iv import OneCompartmentIV
from twin_uq.checks.simulate import _simulate_batch
from twin_uq.inference.prepare import prepare_fit
from twin_uq.inference.residual import sample_observations


def _args(tau_value, sigma):
    rows = []
    for pid in range(2):
        rows.append(dict(ID=pid, TIME=0.0, AMT=100.0, EVID=1, DV=np.nan))
        for t in np.arange(1.0, 11.0, 0.5):
            rows.append(dict(ID=pid, TIME=t, AMT=0.0, EVID=0, DV=1.0))
    cohort = tq.read_cohort(pd.DataFrame(rows))
    model = OneCompartmentIV()
    spec = tq.PopulationModel(
        model, prior_check="off", error={"concentration": "additive"}, residual_correlation="ou"
    )
    arrays = prepare_fit(spec, cohort).data.arrays
    B, P = 500, 2
    mean = jnp.broadcast_to(jnp.log(jnp.array([4.0, 45.0])), (B, P, 2))
    chol = jnp.broadcast_to(jnp.diag(jnp.array([0.2, 0.2])), (B, 2, 2))
    add, prop, nu = jnp.full((B, 1), sigma), jnp.zeros((B, 1)), jnp.full(B, 1e6)
    keys = jax.random.split(jax.random.PRNGKey(0), B)
    args = (model, model.solver, False, mean, chol, add, prop, nu, arrays, None, jnp.array([0]))
    return args, keys, jnp.full((B, 1), tau_value)


def _residuals(tau_value):
    args, keys, tau = _args(tau_value, 1.0)
    noisy, ok = _simulate_batch(*args, keys, tau=tau)
    args0, _, _ = _args(tau_value, 1e-12)
    clean, _ = _simulate_batch(*args0, keys, tau=tau)
    assert np.asarray(ok).all()
    return np.asarray(noisy) - np.asarray(clean)  # (B, P, N)


def test_replicates_carry_the_ou_correlation():
    r = _residuals(5.0)
    n = r.shape[0] * r.shape[1]
    lag1 = np.corrcoef(r[..., :-1].reshape(-1), r[..., 1:].reshape(-1))[0, 1]
    # 19 lags x 1000 series; the SE of a correlation near 0.9 is about (1 - 0.9^2)/sqrt(n)
    # for n independent pairs (0.006 at n = 1000; the lags of one series overlap, so 4x).
    assert abs(lag1 - np.exp(-0.5 / 5.0)) < 0.03, lag1
    assert abs(r.var() - 1.0) < 0.1
    # Two hours apart: exp(-2 / 5).
    lag4 = np.corrcoef(r[..., :-4].reshape(-1), r[..., 4:].reshape(-1))[0, 1]
    assert abs(lag4 - np.exp(-2.0 / 5.0)) < 0.05, (lag4, n)
    independent = _residuals(0.0)
    lag1 = np.corrcoef(independent[..., :-1].reshape(-1), independent[..., 1:].reshape(-1))[0, 1]
    assert abs(lag1) < 0.03 and abs(independent.var() - 1.0) < 0.1


@pytest.mark.slow  # 20 s (a compile of its own); the fast sibling is the test above
def test_without_tau_the_noise_is_the_independent_contract():
    # No tau: the replicates are exactly sample_observations' with the same noise key.
    args, keys, _ = _args(0.0, 1.0)
    y, _ = _simulate_batch(*args, keys)
    clean, _ = _simulate_batch(*_args(0.0, 1e-12)[0], keys)
    arrays = args[8]
    k_noise = jax.vmap(lambda k: jax.random.split(k)[1])(keys)
    code = jnp.zeros_like(arrays.obs_output)  # additive
    expected = jax.vmap(
        lambda k, f: sample_observations(k, code, f, 1.0, 0.0, 1e6, student_t=False)
    )(k_noise, clean)
    mask = np.asarray(arrays.obs_mask)
    np.testing.assert_allclose(np.asarray(y)[:, mask], np.asarray(expected)[:, mask], atol=1e-9)
