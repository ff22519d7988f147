"""Leave-one-patient-out of fits with Ornstein-Uhlenbeck (autocorrelated) residuals.

A patient's whole correlated series is one multivariate Normal term: checked against
SciPy's multivariate Normal with the OU covariance ``sd_j sd_k exp(-|t_j - t_k| / tau)``
(per output; independent between outputs), against plain Monte Carlo over the population
for the random effects integrated out, and the PSIS estimate against an exact refit without
the patient. Leave-one-observation-out stays refused: it is not defined for a correlated
series.
"""

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from marginal_checks import check_marginal, log_mean_and_se
from scipy import stats
from scipy.special import logsumexp

import twin_uq as tq
from twin_uq.compare import loo, pointwise_loglik
from twin_uq.compare.pointwise import score_ou_patients
from twin_uq.compare.refit import PatientRefit, held_out_loglik
from twin_uq.inference.residual import ERROR_CODES
from twin_uq.model.load import load_model

A, B = 0.3, 0.1


def _mvn_record(kinds, taus, times, out, f, y, mask, a, b):
    """SciPy: the record's log density, one multivariate Normal per output."""
    total = 0.0
    for o, kind in enumerate(kinds):
        sel = mask & (out == o)
        t, fo, yo = times[sel], f[sel], y[sel]
        if kind == "lognormal":
            sd, value, centre, jac = np.full(t.size, b[o]), np.log(yo), np.log(fo), -np.log(yo)
        else:
            sd = (
                np.sqrt(a[o] ** 2 + (b[o] * fo) ** 2)
                if kind == "combined"
                else np.full(t.size, a[o])
            )
            value, centre, jac = yo, fo, np.zeros(t.size)
        cov = np.exp(-np.abs(t[:, None] - t[None, :]) / taus[o]) * sd[:, None] * sd[None, :]
        total += stats.multivariate_normal(centre, cov).logpdf(value) + jac.sum()
    return total


def test_record_density_is_the_multivariate_normal_broadcast_over_draws():
    # One patient, two outputs (combined and lognormal error) on unsorted, interleaved
    # times with padding; three residual draws x four prediction vectors.
    rng = np.random.default_rng(1)
    n, pad = 11, 3
    times = np.concatenate([rng.uniform(0, 60, n), np.zeros(pad)])
    out = np.concatenate([rng.integers(0, 2, n), np.zeros(pad, int)])
    mask = np.arange(n + pad) < n
    kinds = ("combined", "lognormal")
    code = np.array([ERROR_CODES[k] for k in kinds])[out]
    f = 4.0 + rng.uniform(0, 2, (4, n + pad))  # (M, N)
    y = f[0] * np.exp(rng.normal(0, 0.1, n + pad))
    a = np.array([[A, 0.0], [0.5, 0.0], [0.2, 0.0]])  # (S, O)
    b = np.array([[B, 0.15], [0.05, 0.1], [0.2, 0.3]])
    tau = np.array([[10.0, 3.0], [1.0, 40.0], [25.0, 0.5]])
    got = score_ou_patients(
        jnp.asarray(code), jnp.asarray(y), jnp.asarray(f)[None],
        jnp.asarray(a[:, out])[:, None], jnp.asarray(b[:, out])[:, None],
        jnp.asarray(times), jnp.asarray(out), jnp.asarray(mask), jnp.asarray(tau[:, out])[:, None],
    )  # fmt: skip
    assert got.shape == (3, 4)
    for s in range(3):
        for m in range(4):
            want = _mvn_record(kinds, tau[s], times, out, f[m], y, mask, a[s], b[s])
            assert float(got[s, m]) == pytest.approx(want, rel=1e-10, abs=1e-9)


def test_observation_level_loo_of_an_ou_fit_is_refused_with_the_alternative():
    fake = SimpleNamespace(
        structure=SimpleNamespace(ou_outputs=(0,)),
        model=SimpleNamespace(name="glucose_meal", output_names=("glucose",)),
    )
    with pytest.raises(tq.InputError, match=r"observation-out is not defined.*\['glucose'\]") as e:
        pointwise_loglik(fake, "observation")
    assert "by='patient'" in str(e.value)
    with pytest.raises(tq.InputError, match="observation-out is not defined"):
        loo(fake, "observation")


@pytest.fixture(scope="module")
def ou_fit():
    design = tq.Design(
        times=[0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0],
        doses=[tq.Bolus(0.0, 100.0, 1)],
        covariates={"WT": ("lognormal", 70.0, 0.2)},
    )
    sim = tq.simulate_cohort("one_compartment_oral", 8, design, seed=3)
    model = load_model("one_compartment_oral")
    spec = tq.PopulationModel(model, residual_correlation="ou")
    method = tq.Laplace(steps=1500, draws=1000)
    return tq.fit(model, sim.cohort, population=spec, method=method, seed=0, progress=False)


def _record(post, pid, s, f):
    """SciPy log density of patient ``pid``'s record at flat draw ``s`` for predictions ``f``."""
    i = post.patient_ids.index(pid)
    arr = post.arrays
    view = post.patient(pid)
    pop = view.population
    args = [np.asarray(x[i]) for x in (arr.obs_time, arr.obs_output, arr.obs_value, arr.obs_mask)]
    times, out, y, mask = args
    kinds = [o.error for o in post.model.outputs]
    return _mvn_record(kinds, pop.tau[s], times, out, f, y, mask, pop.add[s], pop.prop[s])


@pytest.mark.slow  # one OU Laplace fit (about a minute on 2 cores) and one exact refit
def test_patient_loo_of_an_ou_fit_against_scipy_monte_carlo_and_an_exact_refit(ou_fit):
    post = ou_fit
    assert post.structure.ou_outputs == (0,)
    # 1. The per-patient log-likelihood at each draw's own parameters is the record's
    # multivariate Normal density (and the fit's own stored total).
    ll = pointwise_loglik(post, "patient")
    stored = post.idata["log_likelihood"]["y"].transpose("chain", "draw", "patient").values
    np.testing.assert_allclose(ll.values, stored, rtol=1e-9)
    f = post.idata["posterior_predictive"]["f"].transpose("chain", "draw", "patient", "obs")
    f = f.values.reshape(-1, *f.shape[2:])
    for pid in post.patient_ids[:2]:
        i = post.patient_ids.index(pid)
        for s in (0, 517):
            want = _record(post, pid, s, f[s, i])
            assert ll.values.reshape(-1, len(post.patient_ids))[s, i] == pytest.approx(want)

    # 2. Random effects integrated out: the importance sampler agrees with plain Monte
    # Carlo over the population at the draw, with the density written out by SciPy.
    pid = post.patient_ids[1]

    def loglik(s, fm):
        return np.array([_record(post, pid, s, row) for row in fm])

    rng = np.random.default_rng(7)
    check_marginal(post, pid, loglik, draws=(0, 400), n_mc=4000, rng=rng)

    # 3. PSIS leave-one-patient-out against an exact refit without the patient whose
    # Pareto k is smallest (where importance sampling is trusted), within 4 combined
    # Monte Carlo SEs: self-normalised PSIS weights (delta method) and the refit's draws.
    result = loo(post, "patient", n_inner=512)
    assert np.all(np.isfinite(result.elpd_i))
    k = result.pareto_k
    best = str(k.idxmin())
    i = post.patient_ids.index(best)
    assert k[best] < 0.7, k
    from twin_uq.compare.loo import loo_tree

    tree, proposals = loo_tree(post, "patient", 512, 0)
    lp = tree["log_likelihood"]["loglik_patient"].values.reshape(-1, len(post.patient_ids))[:, i]
    log_w = np.asarray(result.elpd_data.log_weights).reshape(-1, len(post.patient_ids))[:, i]
    w = np.exp(log_w - logsumexp(log_w))
    p = np.exp(lp - lp.max())
    p_hat = np.sum(w * p)
    se_psis = np.sqrt(np.sum(w**2 * (p - p_hat) ** 2)) / p_hat
    wrapper = PatientRefit(post, tree, proposals)
    data, _ = wrapper.sel_observations(np.array([i]))
    refitted = wrapper.sample(data)
    exact_draws = held_out_loglik(refitted, post, i, proposals[best]).reshape(-1)
    exact, se_exact = log_mean_and_se(exact_draws)
    assert abs(result.elpd_i[i] - exact) < 4 * np.hypot(se_psis, se_exact), (
        result.elpd_i[i], exact, se_psis, se_exact, float(k[best]),
    )  # fmt: skip
