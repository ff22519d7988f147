"""Ornstein-Uhlenbeck residuals of the residual contract, checked against independent
computations: SciPy's multivariate Normal with the OU covariance, Gaussian conditioning
by matrix algebra, and Monte Carlo lag correlations of sampled replicates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from twin_uq.inference.residual import (
    ERROR_CODES,
    observation_loglik,
    ou_conditional,
    ou_effective_observations,
    ou_noise,
    ou_observation_loglik,
    sample_correlated_observations,
)

A, B = 0.4, 0.12


def _case(seed=0):
    """One patient: two outputs on irregular, interleaved, unsorted times, with padding."""
    rng = np.random.default_rng(seed)
    t0 = np.sort(rng.uniform(0, 200, 9))
    t1 = np.sort(rng.uniform(0, 200, 7))
    times = np.concatenate([t0, t1])
    out = np.concatenate([np.zeros(9, int), np.ones(7, int)])
    perm = rng.permutation(times.size)  # the contract must not rely on the row order
    times, out = times[perm], out[perm]
    f = 5.0 + 3.0 * np.sin(times / 30.0)
    y = f * np.exp(rng.normal(0, 0.1, times.size)) + rng.normal(0, 0.2, times.size)
    pad = 3
    times = np.concatenate([times, np.zeros(pad)])
    out = np.concatenate([out, np.zeros(pad, int)])
    f = np.concatenate([f, np.ones(pad)])
    y = np.concatenate([y, np.zeros(pad)])
    mask = np.arange(times.size) < times.size - pad
    return times, out, f, y, mask


def _ou_joint_scipy(kinds, taus, times, out, f, y, mask):
    """Joint log density by SciPy: per output a multivariate Normal on the error model's scale."""
    total = 0.0
    for o, kind in enumerate(kinds):
        sel = mask & (out == o)
        t, fo, yo = times[sel], f[sel], y[sel]
        if kind == "lognormal":
            sd = np.full(t.size, B)
            value, centre, jac = np.log(yo), np.log(fo), -np.sum(np.log(yo))
        else:
            sd = {"additive": np.full(t.size, A), "combined": np.sqrt(A**2 + (B * fo) ** 2)}[kind]
            value, centre, jac = yo, fo, 0.0
        corr = np.exp(-np.abs(t[:, None] - t[None, :]) / taus[o])
        cov = corr * sd[:, None] * sd[None, :]
        total += stats.multivariate_normal(centre, cov).logpdf(value) + jac
    return total


@jax.jit
def _ou_ll(code, y, f, times, out, mask, tau):
    """The contract's OU log-likelihood with additive SD ``A`` and proportional ``B``.

    Jitted: one compilation instead of one per primitive (seconds in eager mode).
    """
    return ou_observation_loglik(
        code, y, f, jnp.full(y.shape, A), jnp.full(y.shape, B), times, out, mask, tau
    )


@pytest.mark.parametrize("kinds", [("combined", "lognormal"), ("additive", "combined")])
def test_ou_loglik_equals_scipy_multivariate_normal_on_irregular_times(kinds):
    times, out, f, y, mask = _case()
    taus = np.array([25.0, 60.0])
    code = np.array([ERROR_CODES[k] for k in kinds])[out]
    ll = _ou_ll(code, y, f, times, out, mask, taus[out])
    assert np.all(np.asarray(ll)[~mask] == 0.0)
    expected = _ou_joint_scipy(kinds, taus, times, out, f, y, mask)
    np.testing.assert_allclose(float(jnp.sum(ll)), expected, rtol=1e-10)


def test_ou_loglik_without_correlation_is_the_independent_contract():
    times, out, f, y, mask = _case(1)
    code = np.where(out == 0, ERROR_CODES["combined"], ERROR_CODES["lognormal"])
    args = (jnp.asarray(code), jnp.asarray(y), jnp.asarray(f), jnp.full(y.shape, A))
    args = (*args, jnp.full(y.shape, B))
    indep = jax.jit(observation_loglik)(
        *args, jnp.asarray(1e6), jnp.zeros(y.shape, bool), jnp.zeros(y.shape)
    )
    indep = np.where(mask, np.asarray(indep), 0.0)
    exact = _ou_ll(code, y, f, times, out, mask, np.zeros(y.shape))
    np.testing.assert_allclose(np.asarray(exact), indep, rtol=1e-12, atol=1e-12)
    # tau -> 0 (far below the smallest gap) recovers the independent likelihood
    gap = np.min(np.diff(np.sort(times[mask])))
    small = _ou_ll(code, y, f, times, out, mask, np.full(y.shape, gap / 100))
    np.testing.assert_allclose(float(jnp.sum(small)), indep.sum(), rtol=1e-9)


def test_ou_loglik_gradient_in_tau_matches_finite_difference():
    times, out, f, y, mask = _case(2)
    code = jnp.full(y.shape, ERROR_CODES["combined"])

    def total(tau):
        return jnp.sum(_ou_ll(code, y, f, times, out, mask, jnp.full(y.shape, tau)))

    g = float(jax.grad(total)(40.0))
    h = 1e-4
    fd = (float(total(40.0 + h)) - float(total(40.0 - h))) / (2 * h)
    assert np.isfinite(g)
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_conditional_forecast_equals_gaussian_conditioning_on_the_whole_past():
    # Markov: conditioning on every past residual gives the same moments as on the last.
    t = np.array([0.0, 3.0, 11.0, 12.5, 30.0])
    r = np.array([0.3, -1.1, 0.4, 0.9, 1.7])
    tau, lag = 17.0, np.array([5.0, 30.0, 120.0])
    for h in lag:
        s = np.append(t, t[-1] + h)
        cov = np.exp(-np.abs(s[:, None] - s[None, :]) / tau)
        k = cov[-1, :-1] @ np.linalg.inv(cov[:-1, :-1])
        mean, var = k @ r, cov[-1, -1] - k @ cov[:-1, -1]
        m, v = ou_conditional(jnp.asarray(r[-1]), jnp.asarray(h), jnp.asarray(tau))
        np.testing.assert_allclose([float(m), float(v)], [mean, var], rtol=1e-10, atol=1e-13)


_noise = jax.jit(ou_noise, static_argnums=(1,))


def test_sampled_replicates_have_the_ou_lag_correlation():
    S = 20000
    t = np.array([0.0, 5.0, 10.0, 15.0, 40.0, 41.0, 100.0])
    series = np.zeros(t.size, int)
    tau = 30.0
    r = np.asarray(
        _noise(
            jax.random.key(3),
            (S, t.size),
            jnp.asarray(t),
            jnp.asarray(series),
            jnp.full(t.size, tau),
        )
    )
    emp = np.corrcoef(r.T)
    want = np.exp(-np.abs(t[:, None] - t[None, :]) / tau)
    # SE of a sample correlation ~ (1 - rho^2) / sqrt(S) <= 0.0071; 5 SE
    np.testing.assert_allclose(emp, want, atol=5 / np.sqrt(S))
    np.testing.assert_allclose(r.std(axis=0), 1.0, atol=5 * np.sqrt(0.5 / S))
    # replicates on the error model's scale: lognormal log residuals have SD b and the lag
    # correlation of the process
    f = jnp.full(t.size, 4.0)
    code = jnp.full(t.size, ERROR_CODES["lognormal"])
    y = np.asarray(
        jax.jit(sample_correlated_observations)(
            jax.random.key(4),
            jnp.broadcast_to(code, (S, t.size)),
            f,
            jnp.full(t.size, A),
            jnp.full(t.size, B),
            jnp.asarray(t),
            jnp.asarray(series),
            jnp.full(t.size, tau),
        )
    )
    e = np.log(y / 4.0)
    np.testing.assert_allclose(e.std(axis=0), B, rtol=5 * np.sqrt(0.5 / S))
    np.testing.assert_allclose(np.corrcoef(e.T)[0, 1], np.exp(-5 / tau), atol=5 / np.sqrt(S))


def test_known_start_and_padding_in_ou_paths():
    t = np.array([0.0, 10.0, 20.0, 0.0])
    series = np.array([0, 0, 0, 0])
    mask = np.array([True, True, True, False])
    start = jnp.asarray([1.5, 0.0, 0.0, 0.0])
    S, tau = 20000, 10.0
    r = np.asarray(
        _noise(
            jax.random.key(5),
            (S, 4),
            jnp.asarray(t),
            jnp.asarray(series),
            jnp.full(4, tau),
            start=start,
            mask=jnp.asarray(mask),
        )
    )
    assert np.all(r[:, 0] == 1.5)
    rho = np.exp(-1.0)
    np.testing.assert_allclose(r[:, 1].mean(), rho * 1.5, atol=5 * np.sqrt((1 - rho**2) / S))
    np.testing.assert_allclose(r[:, 2].mean(), rho**2 * 1.5, atol=5 * np.sqrt((1 - rho**4) / S))
    # the padded point (time 0, same series) is independent of the path
    assert abs(np.corrcoef(r[:, 3], r[:, 1])[0, 1]) < 5 / np.sqrt(S)


def test_effective_observations():
    t = np.arange(0.0, 100.0, 5.0)
    assert ou_effective_observations(t, 0.0) == t.size
    rho = np.exp(-5 / 30)
    want = 1 + (t.size - 1) * (1 - rho) / (1 + rho)
    np.testing.assert_allclose(ou_effective_observations(t[::-1], 30.0), want, rtol=1e-12)
    # AR(1): the variance of the mean of n unit-variance points equals 1 / n_eff for
    # large n (the exact finite-n value is close; here within 10 %)
    n = 200
    rho = 0.8
    cov = rho ** np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    var_mean = cov.sum() / n**2
    tt = np.arange(n) * (-np.log(rho))
    assert abs(1 / ou_effective_observations(tt, 1.0) / var_mean - 1) < 0.1


# ---- the population model and the fit's data checks ----------------------------------


def _oral_cohort(rows):
    import pandas as pd

    import twin_uq as tq

    dose = [{"id": p, "time": 0.0, "amt": 100.0, "dv": np.nan} for p in {r["id"] for r in rows}]
    return tq.read_cohort(pd.DataFrame(dose + sorted(rows, key=lambda r: r["time"])))


def test_population_model_residual_correlation_spelling_and_refusals():
    import twin_uq as tq
    from twin_uq.errors import InputError
    from twin_uq.inference.numpyro_model import ProgramStructure
    from twin_uq.model.load import load_model

    model = load_model("one_compartment_oral")
    out = model.output_names[0]
    default = tq.PopulationModel(model)
    assert default.residual_correlation == "none" and default.correlated_outputs() == ()
    settings = model.solver
    assert ProgramStructure.from_spec(default, 0, settings) == ProgramStructure.from_spec(
        tq.PopulationModel(model, residual_correlation={out: "none"}), 0, settings
    )
    assert tq.PopulationModel(model, residual_correlation="ou").correlated_outputs() == (0,)
    assert tq.PopulationModel(model, residual_correlation={out: "ou"}).correlated_outputs() == (0,)
    with pytest.raises(InputError, match="residual_correlation must be one of"):
        tq.PopulationModel(model, residual_correlation="ar2")
    with pytest.raises(InputError, match="unknown output 'glucose'"):
        tq.PopulationModel(model, residual_correlation={"glucose": "ou"})
    with pytest.raises(InputError, match="Gaussian error model"):
        tq.PopulationModel(model, error={out: "student_t"}, residual_correlation="ou")


def test_fit_preparation_refuses_censored_points_and_ties_under_ou():
    import twin_uq as tq
    from twin_uq.errors import InputError
    from twin_uq.inference.prepare import prepare_fit
    from twin_uq.model.load import load_model

    model = load_model("one_compartment_oral")
    spec = tq.PopulationModel(model, residual_correlation="ou")
    good = [{"id": "A", "time": t, "dv": 1.0 + t / 10} for t in (1.0, 2.0, 5.0, 8.0)]
    prepared = prepare_fit(spec, _oral_cohort(good))
    assert prepared.structure.ou_outputs == (0,)
    # default prior median: sqrt(median gap 3 x span 7) time units
    np.testing.assert_allclose(np.exp(np.asarray(prepared.priors.tau_loc)), [np.sqrt(3.0 * 7.0)])
    tie = [*good, {"id": "A", "time": 5.0, "dv": 1.3}]
    with pytest.raises(InputError, match=r"Patient 'A'.*two observations at time 5"):
        prepare_fit(spec, _oral_cohort(tie))
    cens = [*good, {"id": "A", "time": 12.0, "dv": 0.1, "cens": 1}]
    with pytest.raises(InputError, match=r"Patient 'A'.*censored observation at time 12"):
        prepare_fit(spec, _oral_cohort(cens))
    # an explicit prior replaces the default; a bad one is named
    given = tq.PopulationModel(
        model, residual_correlation="ou", priors={"tau.concentration": (2.0, 0.5)}
    )
    np.testing.assert_allclose(
        np.asarray(prepare_fit(given, _oral_cohort(good)).priors.tau_scale), [0.5]
    )
    bad = tq.PopulationModel(
        model, residual_correlation="ou", priors={"tau.concentration": (-1.0, 0.5)}
    )
    with pytest.raises(InputError, match=r"tau\.concentration"):
        prepare_fit(bad, _oral_cohort(good))


@pytest.mark.slow
def test_ou_fit_reload_and_twin_update(tmp_path):
    """The OU residual through a Laplace fit, the saved file, the patient view and an update."""
    import pandas as pd

    import twin_uq as tq
    from twin_uq.model.load import load_model

    design = tq.Design(
        times=[0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0],
        doses=[tq.Bolus(0.0, 100.0, 1)],
        covariates={"WT": ("lognormal", 70.0, 0.2)},
    )
    sim = tq.simulate_cohort("one_compartment_oral", 6, design, seed=3)
    model = load_model("one_compartment_oral")
    spec = tq.PopulationModel(model, residual_correlation="ou")
    post = tq.fit(model, sim.cohort, population=spec, method=tq.Laplace(), seed=0, progress=False)
    tau = post.posterior["tau"]
    assert tau.dims[-1] == "ou_output" and np.all(tau.values > 0)
    assert "tau[concentration]" in post.population_summary().index
    pid = post.patient_ids[0]
    view = post.patient(pid)
    np.testing.assert_array_equal(view.tau[:, 0], tau.values.reshape(-1))
    # the stored per-patient log-likelihood is the joint OU density of that draw
    assert np.all(np.isfinite(post.idata.log_likelihood["y"].values))
    post.save(tmp_path / "fit.nc")
    again = tq.load_posterior(tmp_path / "fit.nc")
    assert again.population_model.residual_correlation == "ou"
    np.testing.assert_array_equal(again.patient(pid).tau, view.tau)
    last = view.observations.iloc[-1]
    new = pd.DataFrame({"id": [pid], "time": [30.0], "dv": [float(last["value"]) * 0.5]})
    updated = post.twin(pid).update(new, method="importance", seed=1)
    assert updated.posterior.tau.shape == (updated.n_draws, 1)
    assert set(np.unique(updated.posterior.tau)) <= set(np.unique(view.tau))


@pytest.mark.slow  # imports Dask (seconds)
def test_pymc_and_two_stage_refuse_ou_residuals():
    import twin_uq as tq
    from twin_uq.errors import TwinUQError
    from twin_uq.inference.methods import FitOptions
    from twin_uq.inference.prepare import prepare_fit
    from twin_uq.model.load import load_model

    model = load_model("one_compartment_oral")
    spec = tq.PopulationModel(model, residual_correlation="ou")
    rows = [{"id": "A", "time": t, "dv": 1.0 + t / 10} for t in (1.0, 2.0, 5.0, 8.0)]
    cohort = _oral_cohort(rows)
    with pytest.raises(TwinUQError, match="PyMC backend does not handle autocorrelated"):
        tq.PyMC().run(prepare_fit(spec, cohort), None, seed=0, progress=False)
    with pytest.raises(TwinUQError, match="TwoStage does not handle autocorrelated"):
        tq.TwoStage().fit_cohort(spec, cohort, FitOptions(solver=None, seed=0, progress=False))
