"""The Dask worker's per-draw quantities use the residual contract (no cluster needed)."""

import jax
import jax.numpy as jnp
import numpy as np
from residual_checks import assert_student_t_replicates

from twin_uq.distributed._worker import _derive_fn, batch_inputs
from twin_uq.inference.postprocess import residuals_of_draws
from twin_uq.inference.residual import uses_student_t
from twin_uq.posterior.population import flat_draws


def test_worker_replicates_of_a_student_t_output_are_student_t(student_t_fit):
    post = student_t_fit
    model = post.model
    table = post.cohort.to_dataframe()
    inputs = batch_inputs(model, table, n_obs=16)
    draws = flat_draws(post)
    error_code = np.asarray(post.prepared.data.error_code)
    add, prop, nu = residuals_of_draws(post.prepared.structure, draws, len(model.outputs))
    # The fit's own nu is weakly identified (nearly Normal): alternate 2.5 / 8 draw by draw
    # so that Student-t and Normal noise can be told apart.
    nu = np.resize([2.5, 8.0], nu.size)
    theta = np.asarray(post.posterior["theta"].transpose("chain", "draw", ...).values, float)
    theta = theta.reshape(-1, *theta.shape[2:])  # (S, P, K)
    derive = _derive_fn()
    ys, fs, a_, b_, nu_ = [], [], [], [], []
    for i, pid in enumerate(post.patient_ids):
        obs, arr = inputs[pid]
        n = obs["time"].size
        f, _, y, ok = derive(
            model, post.prepared.structure.settings, jnp.asarray(theta[:, i]), arr,
            jnp.asarray(error_code), jnp.asarray(add), jnp.asarray(prop), jnp.asarray(nu),
            jax.random.key(i), student_t=uses_student_t(error_code),
        )  # fmt: skip
        assert bool(np.all(ok))
        assert np.isnan(np.asarray(y)[:, n:]).all()  # padding
        ys.append(np.asarray(y)[:, :n].ravel())
        fs.append(np.asarray(f)[:, :n].ravel())
        a_.append(np.repeat(add[:, 0], n))
        b_.append(np.repeat(prop[:, 0], n))
        nu_.append(np.repeat(nu, n))
    y, f, a, b, v = (np.concatenate(x) for x in (ys, fs, a_, b_, nu_))
    assert_student_t_replicates(y, f, a, b, v)
