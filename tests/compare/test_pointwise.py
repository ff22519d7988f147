"""Pointwise log-likelihood from stored draws, against a hand computation with scipy."""

import numpy as np
import pytest
import scipy.stats as st

import twin_uq as tq
from twin_uq.compare import pointwise_loglik
from twin_uq.posterior import CohortPosterior


def _hand(post, pid, chain, draw):
    """log N(y | f, sqrt(a^2 + (b f)^2)) or its M3 CDF, written out with scipy."""
    pp = post.idata["posterior_predictive"]["f"].sel(patient=pid, chain=chain, draw=draw).values
    posterior = post.idata["posterior"]
    a = float(posterior["sigma_add"].sel(chain=chain, draw=draw).values.reshape(-1)[0])
    b = float(posterior["sigma_prop"].sel(chain=chain, draw=draw).values.reshape(-1)[0])
    i = post.cohort.index(pid)
    mask = post.cohort.obs_mask[i]
    y, f = post.cohort.obs_value[i][mask], pp[mask]
    cens, lloq = post.cohort.obs_censored[i][mask], post.cohort.obs_lloq[i][mask]
    sd = np.sqrt(a**2 + (b * f) ** 2)
    return np.where(cens, st.norm.logcdf((lloq - f) / sd), st.norm.logpdf(y, f, sd))


def test_observation_loglik_matches_a_hand_computation(oral_fit):
    ll = pointwise_loglik(oral_fit, "observation")
    pid = oral_fit.patient_ids[3]
    got = ll.isel(chain=1, draw=7).where(ll["patient"] == pid, drop=True).values
    np.testing.assert_allclose(got, _hand(oral_fit, pid, 1, 7), rtol=1e-10)
    # The per-patient sums are the totals the fit itself stored.
    per = pointwise_loglik(oral_fit, "patient")
    stored = oral_fit.idata["log_likelihood"]["y"].transpose("chain", "draw", "patient")
    np.testing.assert_allclose(per.values, stored.values, rtol=1e-10)
    assert ll.sizes["observation"] == int(oral_fit.cohort.obs_mask.sum())


def test_censored_points_score_their_m3_probability(oral_fit, oral_sim):
    # The same fit read with three late observations reported as below a limit equal to
    # the value measured (so that P(Y < limit) is far from 0 and 1).
    table = oral_sim.table.copy()
    late = table.index[(table["evid"] == 0) & (table["time"] == 24.0)][:3]
    table["cens"] = 0
    table.loc[late, "cens"] = 1
    cohort = tq.read_cohort(table.drop(columns=["sampling"]))
    post = CohortPosterior(
        oral_fit.idata, oral_fit.model, cohort, population_model=oral_fit.population_model
    )
    pid = table.loc[late[0], "id"]
    ll = pointwise_loglik(post, "observation")
    got = ll.isel(chain=0, draw=11).where(ll["patient"] == pid, drop=True).values
    hand = _hand(post, pid, 0, 11)
    i = post.cohort.index(pid)
    censored = post.cohort.obs_censored[i][post.cohort.obs_mask[i]]
    assert censored.any() and np.all(hand[censored] < -0.01)
    np.testing.assert_allclose(got, hand, rtol=1e-10)


def test_unknown_unit_is_refused(oral_fit):
    with pytest.raises(tq.InputError, match="by must be"):
        pointwise_loglik(oral_fit, "visit")
