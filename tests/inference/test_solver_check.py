"""The after-fit check of a fixed-step (RK4) fit against the adaptive reference solver."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.inference.likelihood import patient_predictions
from twin_uq.inference.postprocess import residuals_of_draws
from twin_uq.inference.solver_check import check_fixed_step, draws_to_check

KNOTS = np.array([0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100, 120, 150, 180.0])
DESIGN = tq.Design(
    times=[5, 10, 15, 20, 30, 45, 60, 90, 120, 180],
    signals={"insulin": (KNOTS, 10 + 90 * np.exp(-KNOTS / 8) + 20 * (KNOTS / 30) * np.exp(1 - KNOTS / 30))},
)


@pytest.fixture(scope="module")
def rk4_fit():
    model = tq.load_model("bergman_minimal")
    assert model.solver.method == "rk4"  # the built-in default this module exercises
    sim = tq.simulate_cohort(model, 4, DESIGN, seed=2)
    post = tq.fit(model, sim.cohort, chains=2, warmup=150, draws=100, seed=3, progress=False)
    return post


def test_default_bergman_fit_passes_its_solver_check(rk4_fit):
    check = json.loads(rk4_fit.idata.attrs["fixed_step_check"])
    n_obs = int(np.asarray(rk4_fit.prepared.data.arrays.obs_mask).sum())
    assert check["threshold_sd"] == pytest.approx(0.1 / np.sqrt(n_obs))
    assert check["passed"] and check["disagreements"] == 0
    # RK4 at 1 min is ~1e-6 relative; residual SDs are several percent of glucose.
    assert check["max_error_sd"] < 0.05 * check["threshold_sd"]
    assert check["draws_checked"] == 32
    assert check["reference"]["method"] == "tsit5"
    assert not any("fixed-step" in r for r in rk4_fit.diagnostics().reasons)
    assert check["message"].startswith("The fixed-step solver (rk4, fixed_step=1.0) agrees")
    assert check["remedy"] == "" and check["reference_failures"] == {}


def _coarse_check(post, step, **settings):
    """The check applied to predictions of the same draws on a much coarser grid."""
    prepared = post.prepared
    coarse = dataclasses.replace(prepared.structure.settings, fixed_step=step, **settings)
    structure = dataclasses.replace(prepared.structure, settings=coarse)
    theta = np.asarray(post.posterior["theta"].values)
    C, D = theta.shape[:2]
    pick = draws_to_check(C, D)
    theta = theta.reshape(C * D, *theta.shape[2:])[pick]
    arr = prepared.data.arrays
    f, ok = jax.vmap(
        lambda th: jax.vmap(
            lambda t, cov, a: patient_predictions(
                structure.model, coarse, t, cov, a.schedule, a.obs_time, a.obs_output
            )
        )(th, arr.covariates, arr)
    )(jnp.asarray(theta))
    sigma = {
        "sigma_prop": np.asarray(post.posterior["sigma_prop"].values).reshape(C * D, -1)[pick]
    }
    add, prop, _ = residuals_of_draws(structure, sigma, prepared.data.error_code.shape[0])
    return check_fixed_step(
        structure, prepared.data, theta, np.asarray(f), np.asarray(ok), add, prop,
        prepared.cohort.ids,
    )  # fmt: skip


def test_a_too_coarse_step_fails_the_check_and_the_diagnostics_say_so(rk4_fit):
    check = _coarse_check(rk4_fit, 30.0)
    assert not check["passed"]
    assert check["max_error_sd"] > check["threshold_sd"]
    assert "differs from the adaptive reference" in check["message"]
    assert "smaller fixed_step" in check["remedy"]
    bad = tq.CohortPosterior(
        rk4_fit.idata.copy(), rk4_fit.model, rk4_fit.cohort, rk4_fit.prepared
    )
    bad.idata.attrs["fixed_step_check"] = json.dumps(check)
    diag = bad.diagnostics()
    assert not diag.converged
    assert any("fixed-step solver error" in r and "smaller fixed_step" in r for r in diag.reasons)


def test_a_failing_reference_solve_is_named_with_its_remedy(rk4_fit):
    # The reference (Tsit5) inherits max_steps from the settings: 2 steps per segment cannot
    # reach 180 min, while RK4 on its fixed grid does not use the budget.
    check = _coarse_check(rk4_fit, 1.0, max_steps=2)
    n = check["draws_checked"] * len(rk4_fit.patient_ids)
    assert check["reference_failures"] == {"max_steps_reached": n}
    assert check["disagreements"] == n and not check["passed"]
    assert f"{n} solve(s) failed with the adaptive reference but not with rk4" in check["message"]
    assert "Raise SolverSettings.max_steps" in check["remedy"]
