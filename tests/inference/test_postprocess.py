"""Derived quantities of posterior draws: the posterior predictive uses the residual contract."""

import jax
import numpy as np
import pytest
from residual_checks import KS_CRIT_001, assert_student_t_replicates, ks_distance, pit

import twin_uq as tq
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.postprocess import derive_draw_quantities
from twin_uq.inference.prepare import prepare_fit
from twin_uq.inference.residual import ErrorKind

#: Degrees of freedom of the draws, alternating draw by draw: a replicate that used
#: another draw's nu (or Normal noise) fails the checks.
NU_DRAWS = (2.5, 8.0)


@pytest.fixture(scope="module")
def student_t_problem():
    model = tq.load_model("one_compartment_iv")
    times = [0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0]
    design = tq.Design(times=times, doses=[tq.Bolus(0.0, 100.0, 1)])
    sim = tq.simulate_cohort(model, 8, design, seed=6)
    spec = PopulationModel(model=model, error={"concentration": "student_t"}, centering=0.0)
    return prepare_fit(spec, sim.cohort)


def test_posterior_predictive_replicates_of_a_student_t_output_are_student_t(student_t_problem):
    prepared = student_t_problem
    structure, data = prepared.structure, prepared.data
    P, K = data.n_patients, structure.n_params
    C, D = 1, 200
    rng = np.random.default_rng(0)
    mu = np.log([p.typical for p in structure.model.parameters])
    samples = {
        "mu": mu + 0.05 * rng.standard_normal((C, D, K)),
        "omega": 0.2 + 0.05 * rng.random((C, D, K)),
        "z": rng.standard_normal((C, D, P, K)),
        "sigma_add": 0.02 + 0.03 * rng.random((C, D, 1)),
        "sigma_prop": 0.05 + 0.1 * rng.random((C, D, 1)),
        "nu": np.resize(NU_DRAWS, (C, D)),
    }
    q = derive_draw_quantities(structure, samples, data, prepared.centering, jax.random.key(3))
    y, f = np.asarray(q["y_rep"]), np.asarray(q["f"])  # (C, D, P, N)
    observed = np.broadcast_to(np.asarray(data.arrays.obs_mask), y.shape)
    assert np.isnan(y[~observed]).all()
    a, b, nu = (samples[k].reshape(C, D, 1, 1) for k in ("sigma_add", "sigma_prop", "nu"))
    a, b, nu = (np.broadcast_to(x, y.shape)[observed] for x in (a, b, nu))
    assert_student_t_replicates(y[observed], f[observed], a, b, nu)


def test_a_nuts_fit_with_a_student_t_output_runs(student_t_fit):
    # On the original code this fit failed before its first step (no gradient in nu).
    post = student_t_fit
    nu = np.asarray(post.posterior["nu"])
    assert np.isfinite(nu).all() and (nu > 0).all()
    pp = post.idata["posterior_predictive"]
    y = np.asarray(pp["y"].transpose("chain", "draw", "patient", "obs").values, float)
    f = np.asarray(pp["f"].transpose("chain", "draw", "patient", "obs").values, float)
    observed = ~np.isnan(y)
    assert observed.any() and np.isfinite(f[observed]).all()
    # Its posterior predictive is consistent with its own likelihood, draw by draw.
    site = {
        k: np.asarray(post.posterior[k].values, float).reshape(*y.shape[:2], -1)[..., :1, None]
        for k in ("sigma_add", "sigma_prop")
    }
    nu = nu.reshape(*y.shape[:2], 1, 1)
    a, b, v = (
        np.broadcast_to(x, y.shape)[observed] for x in (site["sigma_add"], site["sigma_prop"], nu)
    )
    u = pit(ErrorKind.STUDENT_T, y[observed], f[observed], a, b, v)
    assert ks_distance(u) < KS_CRIT_001
