"""Data-informed centring weights: Fisher information against its closed form, and use."""

import dataclasses
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import twin_uq as tq
from twin_uq.inference.centering import (
    centering_point,
    fisher_information,
    latent_prior,
    population_step,
    shrinkage_weights,
    whitened_log_theta,
)
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prepare import centering_weights, prepare_fit
from twin_uq.inference.whitening import solve_upper, solve_upper_transposed, upper_cholesky

TIMES = [0.25, 1.0, 3.0, 8.0, 24.0]
DOSE = 100.0


@pytest.fixture(scope="module")
def iv_cohort():
    """Six IV patients; the last two keep only their first observation."""
    design = tq.Design(times=TIMES, doses=[tq.Bolus(0.0, DOSE, 1)])
    sim = tq.simulate_cohort("one_compartment_iv", 6, design, seed=4)
    table = sim.cohort.to_dataframe()
    sparse = table["id"].isin(sim.cohort.ids[-2:]) & (table["evid"] == 0) & (table["time"] > 0.3)
    return tq.read_cohort(table[~sparse].reset_index(drop=True))


def _analytic_information(log_theta, add, prop, times):
    """Closed form for C(t) = D/V exp(-CL t / V) with combined error: J^T diag(1/var) J."""
    cl, v = np.exp(log_theta)
    t = np.asarray(times)
    f = DOSE / v * np.exp(-cl / v * t)
    J = np.stack([-f * cl * t / v, f * (cl * t / v - 1.0)], axis=1)  # d f / d log(CL, V)
    var = add**2 + (prop * f) ** 2
    return J.T @ (J / var[:, None])


def test_fisher_information_matches_closed_form(iv_cohort):
    model = tq.load_model("one_compartment_iv")
    prepared = prepare_fit(PopulationModel(model=model, centering=0.0), iv_cohort)
    P = iv_cohort.n_patients
    rng = np.random.default_rng(0)
    log_theta = np.log([5.0, 50.0]) + rng.normal(0.0, 0.3, size=(P, 2))
    add, prop = 0.05, 0.15
    info = np.asarray(
        fisher_information(
            model,
            model.solver,
            jnp.asarray(log_theta),
            prepared.data.arrays,
            prepared.data.error_code,
            jnp.asarray([add]),
            jnp.asarray([prop]),
        )
    )
    arrays = prepared.data.arrays
    for i in range(P):
        mask = np.asarray(arrays.obs_mask[i])
        expected = _analytic_information(
            log_theta[i], add, prop, np.asarray(arrays.obs_time[i])[mask]
        )
        # Central differences with step 1e-3: each sensitivity has relative error O(1e-6),
        # so every entry is off by O(1e-6) of sqrt(F_aa F_bb). Off-diagonal entries are
        # sums that nearly cancel, so compare on that scale, not relative to themselves.
        scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
        np.testing.assert_allclose(info[i] / scale, expected / scale, rtol=0, atol=1e-5)


def test_censored_and_missing_observations_carry_no_information(iv_cohort):
    model = tq.load_model("one_compartment_iv")
    prepared = prepare_fit(PopulationModel(model=model, centering=0.0), iv_cohort)
    arrays = prepared.data.arrays
    censored = np.zeros(arrays.obs_censored.shape, dtype=bool)
    censored[0] = True  # every observation of patient 0 below the limit
    arrays = eqx.tree_at(lambda a: a.obs_censored, arrays, jnp.asarray(censored))
    log_theta = jnp.tile(jnp.log(jnp.array([5.0, 50.0])), (iv_cohort.n_patients, 1))
    sigmas = (jnp.asarray([0.05]), jnp.asarray([0.15]))
    info = np.asarray(
        fisher_information(
            model, model.solver, log_theta, arrays, prepared.data.error_code, *sigmas
        )
    )
    assert np.all(info[0] == 0.0)
    assert np.all(np.diagonal(info[1:], axis1=1, axis2=2) > 0.0)


def test_centering_point_estimates_the_residual_sd_and_the_modes():
    # 40 rich patients with proportional error 0.1; the search starts four times too small.
    design = tq.Design(times=[0.25, 0.5, 1, 2, 3, 5, 8, 12, 24], doses=[tq.Bolus(0.0, DOSE, 1)])
    error = {"concentration": "proportional"}
    sim = tq.simulate_cohort(
        "one_compartment_iv", 40, design, seed=7, error=error, sigma_prop={"concentration": 0.1}
    )
    model = tq.load_model("one_compartment_iv")
    prepared = prepare_fit(PopulationModel(model=model, centering=0.0, error=error), sim.cohort)
    arrays = prepared.data.arrays
    censored = np.zeros(arrays.obs_censored.shape, dtype=bool)
    censored[0] = True  # patient 0: every observation below the limit, so no information
    arrays = eqx.tree_at(lambda a: a.obs_censored, arrays, jnp.asarray(censored))
    typical = np.log([p.typical for p in model.parameters])
    mean = np.tile(typical, (40, 1))
    omega = np.array([0.3, 0.3])
    point = centering_point(
        model,
        model.solver,
        mean,
        omega,
        arrays,
        prepared.data.error_code,
        np.zeros(1),
        np.array([0.025]),
    )
    # 351 used observations and 78 fitted parameters at most: the SD estimate has a
    # relative standard error of about 1/sqrt(2 * 273) = 4.3 %; allow four of them.
    assert abs(point.prop[0] - 0.1) < 4 * 0.1 / np.sqrt(2 * 273), point.prop
    truth = np.log(sim.truth.theta.to_numpy())
    rms = lambda x: np.sqrt(np.mean((x[1:] - truth[1:]) ** 2))  # noqa: E731
    # Nine samples at 10 % error fix each log parameter to ~0.05; the population spread is 0.3.
    assert rms(point.log_theta) < 0.4 * rms(mean), (rms(point.log_theta), rms(mean))
    # The data sit at the prior medians: the mean is kept and the search runs its three
    # rounds, as before the mean could be estimated; the patient without data sits there.
    np.testing.assert_array_equal(point.mean, mean)
    assert point.rounds == 3
    np.testing.assert_array_equal(point.log_theta[0], mean[0])
    assert np.all(point.information[0] == 0.0)
    assert np.all(point.information_vector[0] == 0.0)
    # h = F θ̂: the linearised likelihood peaks at θ̂ = F⁻¹ h, one Gauss–Newton step from
    # the mode for the weighted least-squares objective with the SDs held at the mode
    # (sd = prop f(mode)). Against that objective's minimum from scipy (closed-form
    # C = D/V exp(-CL t/V)), θ̂ must agree to a small fraction of its standard error: the
    # step's error is second order in the distance from the mode (~0.05 here).
    from scipy.optimize import minimize

    F, h = point.information[1:], point.information_vector[1:]
    theta_hat = np.linalg.solve(F, h[:, :, None])[:, :, 0]
    se = np.sqrt(np.einsum("pkk->pk", np.linalg.inv(F)))
    table = sim.cohort.to_dataframe()
    obs = table[table["evid"] == 0]
    for i, pid in enumerate(sim.cohort.ids[1:]):
        rows = obs[obs["id"] == pid]
        t, y = rows["time"].to_numpy(), rows["dv"].to_numpy()

        def conc(lt, t=t):
            cl, v = np.exp(lt)
            return DOSE / v * np.exp(-cl / v * t)

        sd = point.prop[0] * conc(point.log_theta[i + 1])

        def nll(lt, y=y, sd=sd):
            return 0.5 * np.sum(((y - conc(lt)) / sd) ** 2)

        mle = minimize(
            nll,
            point.log_theta[i + 1],
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
        ).x
        assert np.all(np.abs(theta_hat[i] - mle) < 0.05 * se[i]), (pid, theta_hat[i], mle, se[i])


def test_population_step_converges_to_the_marginal_maximum_likelihood():
    # Linear-Gaussian case with a known answer: patient i's data say y_i ~ N(θ_i, 1/f_i),
    # θ_i ~ N(m, ω²) with ω known. Patient i's mode given m is m + w_i (y_i - m) with the
    # shrinkage w_i = ω² f_i / (1 + ω² f_i); the marginal maximum likelihood of m
    # (y_i ~ N(m, ω² + 1/f_i)) is the mean of y_i weighted by 1 / (ω² + 1/f_i), i.e. by
    # w_i. A patient without data (f = 0) has no weight; the second parameter is a fixed
    # effect (ω = 0), whose mean never moves.
    rng = np.random.default_rng(3)
    P, omega = 300, np.array([0.3, 0.0, 0.6])
    f = rng.uniform(0.0, 30.0, (P, 3))
    f[:20] = 0.0
    noise = rng.normal(0, 1, (P, 3)) / np.sqrt(np.where(f > 0, f, 1.0))
    y = np.where(f > 0, rng.normal([0.4, 7.0, -1.0], omega, (P, 3)) + noise, 99.0)
    mean = np.zeros((P, 3))  # far from the answer
    for _ in range(300):
        w = omega**2 * f / (1 + omega**2 * f)
        mean, eta = population_step(mean, w * (y - mean), omega)
    w = omega**2 * f / (1 + omega**2 * f)
    expected = (w * y).sum(0) / np.where(w.sum(0) > 0, w.sum(0), 1.0)
    np.testing.assert_allclose(mean[0, [0, 2]], expected[[0, 2]], rtol=0, atol=1e-9)
    assert np.all(mean[:, 1] == 0.0)
    # the modes stay where they are: mean + eta is each patient's mode
    np.testing.assert_allclose(mean + eta, mean + w * (y - mean), atol=1e-12)


def test_centering_point_finds_data_far_from_the_prior():
    # The typical V is 20 L, the prior's median 50 L (1.3 prior SDs: no prior-data
    # conflict), and the search starts at ω 0.15: under that prior the modes could not
    # reach the data, the residual SD came out several times too large and the whitening
    # was linearised far from the posterior (a funnel along ω, see test_prefit).
    # Estimating the population mean with the modes puts both where the data are.
    design = tq.Design(times=[0.25, 0.5, 1, 2, 3, 5, 8, 12, 24], doses=[tq.Bolus(0.0, DOSE, 1)])
    error = {"concentration": "proportional"}
    sim = tq.simulate_cohort(
        "one_compartment_iv", 24, design, seed=2, error=error, typical={"CL": 2.0, "V": 20.0},
        sigma_prop={"concentration": 0.1},
    )  # fmt: skip
    model = tq.load_model("one_compartment_iv")
    prepared = prepare_fit(PopulationModel(model=model, centering=0.0, error=error), sim.cohort)
    typical = np.log([p.typical for p in model.parameters])  # CL 5, V 50
    args = (model, model.solver, np.tile(typical, (24, 1)), np.array([0.2, 0.15]))
    data = (prepared.data.arrays, prepared.data.error_code, np.zeros(1), np.array([0.05]))
    point = centering_point(*args, *data)
    truth = np.log(sim.truth.theta.to_numpy())
    # Nine samples at 10 % error fix each log parameter to about 0.05 (shrinkage weight
    # above 0.9 at the starting ω), so the modes' mean is that of the true values to a few
    # hundredths, far inside the 0.9 between the prior and the data.
    np.testing.assert_allclose(point.mean[0], truth.mean(0), atol=0.06)
    assert abs(point.prop[0] - 0.1) < 0.02, point.prop  # 216 observations: SE 5 %
    assert point.rounds < 12
    held = centering_point(*args, *data, estimate_population=False)
    assert held.prop[0] > 0.2, held.prop  # the fixed prior's modes misfit the data
    np.testing.assert_array_equal(held.mean, args[2])


def test_shrinkage_weights_are_posterior_shrinkage():
    omega = np.array([0.3, 0.3])
    diag = np.array([[0.0, 1.0], [100.0, 1e9]])
    w = shrinkage_weights(np.stack([np.diag(d) for d in diag]), omega)
    np.testing.assert_allclose(w, 0.09 * diag / (1.0 + 0.09 * diag), rtol=1e-9)
    assert w[0, 0] == 0.0 and w[1, 1] > 0.999999


def test_parameters_that_trade_off_are_not_over_centred():
    # Data that pin down only log(CL) + log(V): each alone is as uncertain as the
    # population says along the other direction, so each keeps half its prior variance.
    omega = np.array([0.3, 0.3])
    F = 1e8 * np.array([[[1.0, 1.0], [1.0, 1.0]]])
    w = shrinkage_weights(F, omega)
    np.testing.assert_allclose(w, [[0.5, 0.5]], atol=1e-6)
    V = np.linalg.inv(F[0] + np.diag(1 / omega**2))
    np.testing.assert_allclose(w[0], 1 - np.diag(V) / omega**2)


def test_auto_weights_follow_the_data(iv_cohort):
    spec = PopulationModel(model=tq.load_model("one_compartment_iv"), centering="auto")
    w = np.asarray(prepare_fit(spec, iv_cohort).centering.weights)
    assert w.shape == (6, 2)
    assert np.all((w >= 0.0) & (w < 1.0))
    # Patients 4 and 5 kept one observation: less centred on every parameter than any rich one.
    assert np.all(w[4:].max(axis=0) < w[:4].min(axis=0))
    fixed = prepare_fit(PopulationModel(model=spec.model, centering=0.7), iv_cohort)
    assert np.all(np.asarray(fixed.centering.weights) == 0.7)


def test_auto_weights_follow_omega(iv_cohort):
    spec = PopulationModel(model=tq.load_model("one_compartment_iv"), centering="auto")
    prepared = prepare_fit(spec, iv_cohort)
    centering = prepared.centering
    assert centering.whitened
    assert centering.auto.sensitivity.shape == (6, 2, 5)
    assert centering.auto.point.shape == (6, 2)
    start = np.asarray(prepared.init_values()["omega"])
    np.testing.assert_allclose(
        centering.weights_at(jnp.asarray(start)), centering.weights, atol=1e-12
    )
    small, large = (np.asarray(centering.weights_at(jnp.asarray(f * start))) for f in (1e-3, 10.0))
    w = np.asarray(centering.weights)
    # A vanishing between-patient SD makes every patient non-centred, a large one centred.
    assert np.all(small < 1e-3) and np.all(large[:4] > w[:4]) and np.all(large[:4] > 0.99)
    fixed = prepare_fit(PopulationModel(model=spec.model, centering=0.7), iv_cohort).centering
    assert fixed.auto is None and not fixed.whitened
    np.testing.assert_array_equal(fixed.weights_at(jnp.asarray(1e-3 * start)), fixed.weights)


def test_whitened_latents_have_a_standard_normal_posterior_under_a_gaussian_likelihood():
    # Likelihood exp(-θᵀFθ/2 + hᵀθ), prior N(m, Ω²): the posterior of θ is N(M, V) with
    # V = (F + Ω⁻²)⁻¹ and M = V (h + Ω⁻² m) (textbook conjugacy). The inverse of
    # θ = m + Ω U⁻ᵀ (z - loc) is z = loc + Uᵀ Ω⁻¹ (θ - m), so z must have mean 0 and
    # covariance I, for every (m, ω), including ω far from where F was evaluated.
    rng = np.random.default_rng(0)
    P, K = 4, 3
    A = rng.normal(size=(P, K, 6))
    F = A @ np.swapaxes(A, 1, 2) * np.array([1.0, 30.0, 1e4, 0.0])[:, None, None]
    h = np.einsum("pkl,pl->pk", F, rng.normal(size=(P, K)))
    for scale in (0.05, 0.3, 2.0):
        omega = scale * np.array([1.0, 0.5, 2.0])
        m = rng.normal(size=(P, K))
        prior = latent_prior(jnp.asarray(F), jnp.asarray(h), jnp.asarray(m), jnp.asarray(omega))
        loc, upper = (np.asarray(a) for a in prior)
        assert np.allclose(np.tril(upper, -1), 0.0)
        V = np.linalg.inv(F + np.diag(1 / omega**2))
        M = np.einsum("pkl,pl->pk", V, h + m / omega**2)
        to_z = np.swapaxes(upper, 1, 2) / omega[None, None, :]  # Uᵀ Ω⁻¹
        z_mean = loc + np.einsum("pkl,pl->pk", to_z, M - m)
        z_cov = to_z @ V @ np.swapaxes(to_z, 1, 2)
        np.testing.assert_allclose(z_mean, 0.0, atol=1e-8)
        np.testing.assert_allclose(z_cov, np.broadcast_to(np.eye(K), (P, K, K)), atol=1e-8)
        # and the map is the inverse: z = 0 lands on the posterior mean
        theta = whitened_log_theta(
            jnp.asarray(m), jnp.asarray(omega), jnp.zeros((P, K)), loc, upper
        )
        np.testing.assert_allclose(np.asarray(theta), M, rtol=1e-8, atol=1e-8)
    # A patient without data is non-centred: loc 0, U = I.
    assert np.allclose(loc[3], 0.0) and np.allclose(upper[3], np.eye(K))


def test_omega_dependent_weights_keep_the_population_distribution(iv_cohort):
    # The latents' prior depends on (mu, omega) only, so z ~ N(loc, UᵀU) must map to
    # log theta ~ N(mean, omega^2): draw from the program's prior and standardise.
    from numpyro.infer import Predictive

    spec = PopulationModel(model=tq.load_model("one_compartment_iv"), centering="auto")
    prepared = prepare_fit(spec, iv_cohort)
    draws = Predictive(cohort_program, num_samples=4000)(
        jax.random.key(3), prepared.structure, *prepared.program_args()
    )
    mean = np.asarray(draws["mu"])[:, None, :] + np.asarray(prepared.data.allometric)[None]
    standard = (np.log(np.asarray(draws["theta"])) - mean) / np.asarray(draws["omega"])[:, None, :]
    for k in range(2):
        for patient in (0, 5):  # a rich and a sparse patient: different weights
            x = standard[:, patient, k]
            assert stats.kstest(x, "norm").pvalue > 0.001, (patient, k)


def test_given_weights_are_used_and_checked(iv_cohort):
    spec = PopulationModel(model=tq.load_model("one_compartment_iv"), centering="auto")
    w = np.linspace(0.0, 1.0, 12).reshape(6, 2)
    assert np.array_equal(
        np.asarray(prepare_fit(spec, iv_cohort, centering=w).centering.weights), w
    )
    with pytest.raises(ValueError, match=r"shape \(2, 6\), expected \(6, 2\)"):
        prepare_fit(spec, iv_cohort, centering=w.T)


def test_saved_fit_keeps_its_weights(oral_fit, tmp_path):
    path = tmp_path / "fit.nc"
    oral_fit.save(path)
    loaded = tq.load_posterior(path)
    np.testing.assert_array_equal(
        np.asarray(loaded.prepared.centering.weights),
        np.asarray(oral_fit.prepared.centering.weights),
    )
    for part in (
        "sensitivity",
        "residual",
        "point",
        "var_add",
        "var_prop",
        "unused",
        "output",
        "add",
        "prop",
    ):
        np.testing.assert_array_equal(
            np.asarray(getattr(loaded.prepared.centering.auto, part)),
            np.asarray(getattr(oral_fit.prepared.centering.auto, part)),
        )
    stored = oral_fit.idata["constant_data"]["centering_weight"]
    assert stored.dims == ("patient", "parameter")
    info = oral_fit.idata["constant_data"]["centering_information"]
    assert info.dims == ("patient", "parameter", "parameter_")


def test_unrolled_factorisation_and_solves_match_lapack():
    rng = np.random.default_rng(5)
    A = rng.normal(size=(7, 5, 5))
    B = np.eye(5) + A @ np.swapaxes(A, 1, 2)
    U = np.asarray(upper_cholesky(jnp.asarray(B)))
    np.testing.assert_allclose(np.tril(U, -1), 0.0, atol=0)
    np.testing.assert_allclose(U @ np.swapaxes(U, 1, 2), B, rtol=1e-12, atol=1e-12)
    b = rng.normal(size=(7, 5))
    np.testing.assert_allclose(
        np.asarray(solve_upper(U, b)), np.linalg.solve(U, b[..., None])[..., 0], rtol=1e-10
    )
    np.testing.assert_allclose(
        np.asarray(solve_upper_transposed(U, b)),
        np.linalg.solve(np.swapaxes(U, 1, 2), b[..., None])[..., 0],
        rtol=1e-10,
    )
    np.testing.assert_allclose(upper_cholesky(B, xp=np), U, rtol=1e-12)  # the NumPy path


def test_whitened_normal_is_the_multivariate_normal_with_scale_tril_u_transpose():
    import numpyro.distributions as dist

    from twin_uq.inference.numpyro_model import WhitenedNormal

    rng = np.random.default_rng(6)
    A = rng.normal(size=(3, 4, 4))
    U = upper_cholesky(jnp.asarray(np.eye(4) + A @ np.swapaxes(A, 1, 2)))
    loc = jnp.asarray(rng.normal(size=(3, 4)))
    ours = WhitenedNormal(loc, U)
    theirs = dist.MultivariateNormal(loc, scale_tril=jnp.swapaxes(U, -1, -2))
    x = jnp.asarray(rng.normal(size=(10, 3, 4)))
    np.testing.assert_allclose(ours.log_prob(x), theirs.log_prob(x), rtol=1e-12)
    draws = np.asarray(ours.sample(jax.random.key(0), (20000,)))
    assert draws.shape == (20000, 3, 4)
    # Sample covariance of 20 000 draws: each entry within 5 standard errors of UᵀU.
    cov = np.asarray(jnp.swapaxes(U, -1, -2) @ U)
    emp = np.einsum("spk,spl->pkl", draws - loc, draws - loc) / 20000
    se = np.sqrt((cov**2 + np.einsum("pkk,pll->pkl", cov, cov)) / 20000)
    assert np.all(np.abs(emp - cov) < 5 * se)


def test_linearised_likelihood_follows_the_residual_sd():
    # Proportional error: every observation's SD is prop * f, so scaling prop by c scales
    # F and h by 1/c² (θ̂ = F⁻¹ h does not move); at the SDs of the centring point they
    # are the point's own F and h.
    design = tq.Design(times=TIMES, doses=[tq.Bolus(0.0, DOSE, 1)])
    error = {"concentration": "proportional"}
    sim = tq.simulate_cohort("one_compartment_iv", 5, design, seed=9, error=error)
    spec = PopulationModel(model=tq.load_model("one_compartment_iv"), centering="auto", error=error)
    auto = prepare_fit(spec, sim.cohort).centering.auto
    F0, h0 = (np.asarray(a) for a in auto.canonical(auto.add, auto.prop))
    F2, h2 = (np.asarray(a) for a in auto.canonical(auto.add, 2.0 * auto.prop))
    np.testing.assert_allclose(F2, F0 / 4.0, rtol=1e-12)
    np.testing.assert_allclose(h2, h0 / 4.0, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(F0) > 0)  # five observations each inform both parameters


def test_auto_fits_start_each_patient_at_its_mode(iv_cohort):
    spec = PopulationModel(model=tq.load_model("one_compartment_iv"), centering="auto")
    prepared = prepare_fit(spec, iv_cohort)
    values = prepared.init_values()
    auto = prepared.centering.auto
    mean = np.asarray(prepared.data.allometric) + values["mu"]
    n_out = prepared.data.error_code.shape[0]
    add, prop = np.zeros(n_out), np.zeros(n_out)
    add[list(prepared.structure.add_outputs)] = values["sigma_add"]
    prop[list(prepared.structure.prop_outputs)] = values["sigma_prop"]
    np.testing.assert_allclose(add, np.asarray(auto.add))  # residual SDs start at their estimates
    loc, upper = auto.latent_prior(jnp.asarray(mean), jnp.asarray(values["omega"]), add, prop)
    start = whitened_log_theta(
        jnp.asarray(mean), jnp.asarray(values["omega"]), jnp.asarray(values["z"]), loc, upper
    )
    np.testing.assert_allclose(np.asarray(start), np.asarray(auto.point), rtol=1e-10, atol=1e-10)
    assert not np.allclose(np.asarray(auto.point), mean)  # the modes are not the median


@pytest.mark.parametrize(
    ("error", "fast"),
    [
        ({"concentration": "proportional", "effect": "additive"}, True),
        ({"concentration": "lognormal", "effect": "proportional"}, True),
        ({"concentration": "combined", "effect": "additive"}, False),
    ],
)
def test_unit_scale_terms_equal_the_sum_over_observations(error, fast):
    # The precomputed per-output terms must give F and h of the general formula at any
    # residual SDs, with one output's SD moved and not the other's; combined error keeps
    # the general formula.
    design = tq.Design(times=[0.5, 2.0, 6.0, 12.0], doses=[tq.Bolus(0.0, 10.0, 1)])
    sim = tq.simulate_cohort("pkpd_emax", 4, design, seed=3, error=error)
    spec = PopulationModel(model=tq.load_model("pkpd_emax"), centering="auto", error=error)
    auto = prepare_fit(spec, sim.cohort).centering.auto
    assert (auto.unit_information is not None) == fast
    general = eqx.tree_at(
        lambda a: (a.unit_information, a.unit_vector),
        auto,
        (None, None),
        is_leaf=lambda x: x is None,
    )
    for add, prop in ((auto.add, auto.prop), (auto.add * 3.0 + 0.1, auto.prop * 0.5 + 0.01)):
        F1, h1 = auto.canonical(add, prop)
        F0, h0 = general.canonical(add, prop)
        np.testing.assert_allclose(F1, F0, rtol=1e-10, atol=1e-12 * float(jnp.max(jnp.abs(F0))))
        np.testing.assert_allclose(h1, h0, rtol=1e-10, atol=1e-12 * float(jnp.max(jnp.abs(h0))))


def test_centering_point_on_the_precomputed_grids_equals_the_schedule_path():
    # Fixed-step fits evaluate the centring point on the grids the sampler uses; building
    # the grid from the schedule inside the solve must give the same point (measured:
    # bit-identical; 1e-10 leaves room for a different fusion order only).
    model = tq.load_model("bergman_minimal")
    settings = dataclasses.replace(model.solver, precision="float64")
    # Two designs (different insulin profiles and sampling times), so the patients' grids differ.
    tables = []
    for k, (times, insulin) in enumerate(
        [
            ([5, 10, 20, 40, 90, 180], [90.0, 40.0, 15.0, 10.0]),
            ([3, 8, 30, 60, 120], [60.0, 50.0, 30.0, 12.0]),
        ]
    ):
        design = tq.Design(times=times, signals={"insulin": ([0, 10, 60, 180], insulin)})
        table = tq.simulate_cohort(model, 3, design, seed=11 + k).cohort.to_dataframe()
        tables.append(table.assign(id=table["id"] + f"-{k}"))
    cohort = tq.read_cohort(pd.concat(tables, ignore_index=True))
    spec = PopulationModel(model=model, centering="auto")
    prepared = prepare_fit(spec, cohort, settings)
    assert prepared.data.grids is not None
    with_grids = centering_weights(
        prepared.spec, prepared.structure, prepared.data, prepared.priors
    )
    without = centering_weights(
        prepared.spec,
        prepared.structure,
        dataclasses.replace(prepared.data, grids=None),
        prepared.priors,
    )
    np.testing.assert_allclose(with_grids[0], without[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(with_grids[1].point, without[1].point, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        with_grids[1].sensitivity, without[1].sensitivity, rtol=1e-10, atol=1e-12
    )


def test_an_observation_of_zero_variance_carries_no_information():
    # Proportional error at a prediction of exactly 0 (a sample before the lag time):
    # variance 0 and sensitivity 0. The general formula gave NaN F and h (0 ** -0.5), which
    # left NUTS stuck at its start with every transition divergent; it must give what the
    # observation gives when it is not used, as the precomputed per-output terms do.
    from twin_uq.inference.linearisation import AutoCentering

    rng = np.random.default_rng(1)
    P, K, N = 2, 3, 5
    f = rng.uniform(0.5, 2.0, (P, N))
    f[0, 0] = 0.0  # patient 0's first sample precedes its lag: predicted 0, observed 0.3
    g = rng.normal(size=(P, K, N)) * (f > 0)[:, None, :]
    residual = np.where(f > 0, rng.normal(scale=0.1, size=(P, N)), 0.3)
    pre_lag = AutoCentering(
        sensitivity=g, residual=residual, point=rng.normal(size=(P, K)),
        var_add=np.zeros((P, N)), var_prop=f**2, unused=np.zeros((P, N)),
        output=np.zeros((P, N), dtype=int), add=np.zeros(1), prop=np.array([0.2]),
    )  # fmt: skip
    not_used = dataclasses.replace(
        pre_lag, residual=np.where(f > 0, residual, 0.0), unused=(f == 0).astype(float)
    )
    F, h = pre_lag.canonical(pre_lag.add, pre_lag.prop, xp=np)
    F_ref, h_ref = not_used.canonical(pre_lag.add, pre_lag.prop, xp=np)
    assert np.all(np.isfinite(F)) and np.all(np.isfinite(h))
    np.testing.assert_allclose(F, F_ref, rtol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12)
    assert np.all(np.linalg.eigvalsh(F) > 0)  # the other four samples still inform patient 0
    F_fast, h_fast = pre_lag.with_unit_scale().canonical(pre_lag.add, pre_lag.prop, xp=np)
    np.testing.assert_allclose(F_fast, F_ref, rtol=1e-10)
    np.testing.assert_allclose(h_fast, h_ref, rtol=1e-10)


def test_population_model_takes_the_centring_default_of_tq_fit(iv_cohort):
    # One default: PopulationModel(model) is what tq.fit(model, cohort) builds, so both
    # spellings of a fit give the same draws; the change from 0 is announced.
    from twin_uq.inference.centering import CenteringDefaultWarning

    @dataclasses.dataclass(frozen=True)
    class Capture(tq.NUTS):
        """Hands back the population model tq.fit built instead of fitting."""

        def fit_cohort(self, spec, cohort, options):
            return spec

    model = tq.load_model("one_compartment_iv")
    flat = tq.fit(model, iv_cohort, method=Capture())
    with pytest.warns(CenteringDefaultWarning, match="earlier releases used 0"):
        spec = PopulationModel(model)
    assert spec.centering == "auto" and flat == spec
    assert tq.fit(model, iv_cohort, population=spec, method=Capture()) is spec
    with warnings.catch_warnings():
        warnings.simplefilter("error", CenteringDefaultWarning)
        # given explicitly, with occasions (0, as before) or correlated effects ("auto" is
        # 0 there): no change of draws, no warning
        assert PopulationModel(model, centering=0.0).centering == 0.0
        assert PopulationModel(model, iov=["CL"]).centering == 0.0
        assert PopulationModel(model, correlation="lkj").centering == "auto"
        assert dataclasses.replace(spec, priors={"mu.CL": (1.0, 0.5)}).centering == "auto"
