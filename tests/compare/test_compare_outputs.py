"""Model comparison of fits with two outputs, M3-censored points and both solver kinds.

Slow set (two Laplace fits of ``pkpd_emax``; the fast siblings are test_pointwise.py and
test_marginal_censored.py on the shared one-output fit). One cohort: concentration and
effect, concentration below 0.3 mg/L censored (M3). Fitted with the fixed-step RK4 solver
and with the model's adaptive Tsit5; both Laplace fits, labelled approximate.
"""

import numpy as np
import pytest
import scipy.stats as st
from marginal_checks import check_marginal

import twin_uq as tq
from twin_uq.compare import pointwise_loglik

pytestmark = pytest.mark.slow

LLOQ = 0.3


@pytest.fixture(scope="module")
def cohort():
    design = tq.Design(
        times=[0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0],
        doses=[tq.Bolus(0.0, 100.0, 1)],
        outputs=["concentration", "effect"],
        lloq={"concentration": LLOQ},
    )
    return tq.simulate_cohort("pkpd_emax", 8, design, seed=5).cohort


def _fit(cohort, solver=None):
    return tq.fit("pkpd_emax", cohort, method=tq.Laplace(steps=800, draws=300), solver=solver,
                  prior_check="off", seed=0, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def rk4(cohort):
    return _fit(cohort, tq.SolverSettings(method="rk4", fixed_step=0.1))


@pytest.fixture(scope="module")
def fits(rk4, cohort):
    return {"rk4": rk4, "tsit5": _fit(cohort)}


def _hand(post, i, s):
    """Per-observation log density of patient ``i`` at flat draw ``s``, by scipy.

    Concentration: combined error, M3 log CDF at the limit below it; effect: additive.
    """
    f = post.idata["posterior_predictive"]["f"].stack(s=("chain", "draw")).values[i, :, s]
    pop = post.patient(post.patient_ids[i]).population
    a = post.arrays
    mask = np.asarray(a.obs_mask[i])
    out = np.asarray(a.obs_output[i])[mask]
    y, f = np.asarray(a.obs_value[i])[mask], f[mask]
    cens = np.asarray(a.obs_censored[i])[mask]
    y = np.where(cens, np.asarray(a.obs_lloq[i])[mask], y)  # a censored point: its limit
    conc = out == 0
    sd = np.where(conc, np.hypot(pop.add[s, 0], pop.prop[s, 0] * f), pop.add[s, 1])
    z = (y - f) / sd
    return np.where(cens, st.norm.logcdf(z), st.norm.logpdf(z) - np.log(sd)), out, cens


def test_pointwise_scores_both_outputs_and_censoring(rk4):
    post = rk4
    cens_all = np.asarray(post.arrays.obs_censored) & np.asarray(post.arrays.obs_mask)
    assert 0.05 < cens_all.sum() / np.asarray(post.arrays.obs_mask).sum() < 0.4
    i = int(np.flatnonzero(cens_all.any(axis=1))[0])
    pid = post.patient_ids[i]
    ll = pointwise_loglik(post, "observation")
    assert set(ll["output"].values) == {"concentration", "effect"}
    got = ll.isel(chain=0, draw=17).where(ll["patient"] == pid, drop=True).values
    hand, out, cens = _hand(post, i, 17)
    assert cens.any() and (out == 1).any()
    np.testing.assert_allclose(got, hand, rtol=1e-10)
    # Per patient: the fit's own stored totals (NumPyro's likelihood, another code path).
    stored = post.idata["log_likelihood"]["y"].transpose("chain", "draw", "patient").values
    np.testing.assert_allclose(pointwise_loglik(post, "patient").values, stored, rtol=1e-9)


def _loglik(post, i, s, f):
    """``(M,)`` log-likelihood of patient ``i``'s record at predictions ``f`` ``(M, N)``."""
    pop = post.patient(post.patient_ids[i]).population
    a = post.arrays
    mask = np.asarray(a.obs_mask[i])
    out = np.asarray(a.obs_output[i])[mask]
    y = np.asarray(a.obs_value[i])[mask]
    cens = np.asarray(a.obs_censored[i])[mask]
    y = np.where(cens, np.asarray(a.obs_lloq[i])[mask], y)  # a censored point: its limit
    f = f[:, mask]
    sd = np.where(out == 0, np.hypot(pop.add[s, 0], pop.prop[s, 0] * f), pop.add[s, 1])
    z = (y - f) / sd
    return np.where(cens, st.norm.logcdf(z), st.norm.logpdf(z) - np.log(sd)).sum(axis=1)


def test_patient_marginal_with_two_outputs_and_censoring(rk4):
    # log p(y_i | phi_s) by the fitted importance sampler vs by 8000 draws of the patient's
    # parameters from the population at phi_s, within their combined Monte Carlo error.
    post = rk4
    cens_all = np.asarray(post.arrays.obs_censored) & np.asarray(post.arrays.obs_mask)
    i = int(np.flatnonzero(cens_all.any(axis=1))[0])
    check_marginal(
        post, post.patient_ids[i], lambda s, f: _loglik(post, i, s, f), (0, 150, 299), 8000,
        np.random.default_rng(3),
    )  # fmt: skip


def test_compare_table_over_solvers(fits):
    for by, n in (("patient", 8), ("observation", int(fits["rk4"].cohort.obs_mask.sum()))):
        table = tq.compare(fits, by=by, n_inner=64)
        assert set(table.index) == {"rk4", "tsit5"} and table.attrs["n_units"] == n
        assert table["approximate"].all() and table.attrs["approximate"]
        assert np.isfinite(table["elpd"]).all() and table["weight"].sum() == pytest.approx(1.0)
        # The same model and data, two accurate solvers: the fits predict alike.
        assert abs(table["elpd_diff"].iloc[1]) < 2 * table["dse"].iloc[1] + 1.0
