"""The premise of shape buckets (docs/performance.md): padded observations add nothing.

A cohort padded along the observation axis ``N`` (extra columns with ``obs_mask`` False,
holding copies of each patient's last real observation) must give the same pointwise
log-likelihood on the real observations, exactly 0 on the padding, and the same total and
gradient, so that a fit on a bucketed cohort has the same target.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import twin_uq as tq
from twin_uq.data import read_cohort
from twin_uq.inference.likelihood import ResidualParams, patient_loglik
from twin_uq.inference.residual import ErrorKind

N_FIELDS = ("obs_time", "obs_value", "obs_output", "obs_lloq")


def pad_observations(arrays, n_to: int):
    """``arrays`` with ``n_to`` observation columns; new ones copy each patient's last."""
    n_obs = np.asarray(arrays.obs_mask).sum(axis=1)
    extra = n_to - arrays.obs_time.shape[1]
    last = np.repeat((n_obs - 1)[:, None], extra, axis=1)
    changes = {
        name: jnp.concatenate(
            [getattr(arrays, name), np.take_along_axis(np.asarray(getattr(arrays, name)), last, 1)],
            axis=1,
        )
        for name in N_FIELDS
    }
    pad_false = np.zeros((arrays.n_patients, extra), bool)
    changes["obs_mask"] = jnp.concatenate([arrays.obs_mask, pad_false], axis=1)
    changes["obs_censored"] = jnp.concatenate([arrays.obs_censored, pad_false], axis=1)
    return dataclasses.replace(arrays, **changes)


def test_padded_observations_leave_the_likelihood_and_its_gradient_unchanged():
    oral = tq.load_model("one_compartment_oral")
    times = {"a": [0.5, 2.0, 6.0], "b": [0.5, 1.0, 2.0, 4.0, 8.0]}
    rows = []
    for pid, ts in times.items():
        rows.append({"ID": pid, "TIME": 0.0, "DV": np.nan, "AMT": 100.0, "WT": 70.0})
        rows += [{"ID": pid, "TIME": t, "DV": 2.0 + t / 4, "AMT": np.nan, "WT": 70.0} for t in ts]
    arrays = read_cohort(pd.DataFrame(rows)).for_model(oral)
    padded = pad_observations(arrays, 8)
    assert arrays.obs_time.shape == (2, 5) and padded.obs_time.shape == (2, 8)
    residual = ResidualParams(add=jnp.array([0.3]), prop=jnp.array([0.1]), nu=jnp.asarray(1e6))
    code = jnp.array([int(ErrorKind.COMBINED)])
    theta0 = jnp.array([[p.typical for p in oral.parameters]] * 2) * jnp.array([[1.0], [1.3]])

    @jax.jit
    def pointwise(theta, arr):
        def one(th, cov, a):
            return patient_loglik(oral, oral.solver, th, cov, a, code, residual)[0]

        return jax.vmap(one)(theta, arr.covariates, arr)

    ll, ll_pad = pointwise(theta0, arrays), pointwise(theta0, padded)
    mask = np.asarray(arrays.obs_mask)
    np.testing.assert_array_equal(np.asarray(ll)[mask], np.asarray(ll_pad)[:, :5][mask])
    assert np.all(np.asarray(ll_pad)[~np.asarray(padded.obs_mask)] == 0.0)
    total = jax.jit(jax.value_and_grad(lambda th, arr: pointwise(th, arr).sum()))
    (v, g), (v_pad, g_pad) = total(theta0, arrays), total(theta0, padded)
    assert np.isfinite(v) and np.all(np.isfinite(g_pad))
    np.testing.assert_allclose(v_pad, v, rtol=1e-15)
    np.testing.assert_allclose(g_pad, g, rtol=1e-13, atol=1e-13)
