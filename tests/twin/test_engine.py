"""The twin's compiled prediction draws its residual noise from the residual contract."""

import jax
import jax.numpy as jnp
import numpy as np
from residual_checks import assert_student_t_replicates

import twin_uq as tq
from twin_uq.inference.residual import ErrorKind
from twin_uq.twin.engine import bucket_schedule, predict_draws


def test_predictions_of_a_student_t_output_have_student_t_noise():
    # Draw by draw its own sigma_add, sigma_prop and nu (nu alternating 2.5 / 8): a twin
    # that used another draw's, or Normal noise, fails the checks.
    model = tq.load_model("one_compartment_iv")
    S, T = 256, 48
    rng = np.random.default_rng(1)
    log_typical = np.log([p.typical for p in model.parameters])
    theta = np.exp(log_typical + 0.2 * rng.standard_normal((S, len(log_typical))))
    times = np.linspace(0.5, 30.0, T)
    add = 0.02 + 0.03 * rng.random((S, 1))
    prop = 0.05 + 0.1 * rng.random((S, 1))
    nu = np.resize([2.5, 8.0], S)
    schedule = bucket_schedule(tq.Schedule.build([tq.Bolus(0.0, 100.0, model.default_dose_cmt)]))
    covariates = np.array([model.covariate_defaults.get(c, 70.0) for c in model.covariates])
    f, y, ok = predict_draws(
        model,
        model.solver.covering(times),
        jnp.asarray(theta),
        jnp.asarray(covariates, dtype=float),
        schedule,
        jnp.asarray(times),
        jnp.asarray([ErrorKind.STUDENT_T], dtype=jnp.int32),
        jnp.asarray(add),
        jnp.asarray(prop),
        jnp.asarray(nu),
        jax.random.key(2),
    )
    assert bool(np.all(ok))
    f, y = np.asarray(f)[..., 0], np.asarray(y)[..., 0]  # (S, T)
    assert_student_t_replicates(y, f, add, prop, nu[:, None])
