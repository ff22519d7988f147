"""Leave-one-patient-out with M3-censored observations, against plain Monte Carlo.

The shared NUTS fit read with two of a patient's observations reported as below a limit
equal to the value measured (so that P(Y < limit) is far from 0 and 1): the patient's
marginal likelihood ``p(y_i | phi_s)`` must integrate the M3 probability of those points,
which an independent estimator written out here (the patient's parameters drawn from the
population at ``phi_s``, the M3 term by ``scipy.stats.norm.logcdf``) checks.
"""

import numpy as np
import pytest
import scipy.stats as st
from marginal_checks import check_marginal

import twin_uq as tq
from twin_uq.compare.marginal import marginal_loglik
from twin_uq.posterior import CohortPosterior


@pytest.fixture(scope="module")
def censored(oral_fit, oral_sim):
    """``oral_fit`` read with the 12 h and 24 h observations of one patient censored."""
    table = oral_sim.table.drop(columns=["sampling"]).copy()
    obs = table[(table["evid"] == 0) & (table["time"] >= 12.0)]
    pid = next(p for p in oral_fit.patient_ids if (obs["id"] == p).sum() == 2)
    late = obs.index[obs["id"] == pid]
    table["cens"] = 0
    table.loc[late, "cens"] = 1
    post = CohortPosterior(
        oral_fit.idata,
        oral_fit.model,
        tq.read_cohort(table),
        population_model=oral_fit.population_model,
    )
    return post, pid


def _m3_loglik(f, y, censored, a, b):
    """Combined-error Normal log density, M3 log CDF at censored points, summed."""
    sd = np.sqrt(a**2 + (b * f) ** 2)
    z = (y - f) / sd
    return np.sum(np.where(censored, st.norm.logcdf(z), st.norm.logpdf(z) - np.log(sd)), axis=-1)


def test_censored_marginal_agrees_with_plain_monte_carlo(censored, oral_fit):
    post, pid = censored
    i = post.patient_ids.index(pid)
    pop = post.patient(pid).population
    mask = np.asarray(post.arrays.obs_mask[i])
    y = np.asarray(post.arrays.obs_value[i])[mask]
    cens = np.asarray(post.arrays.obs_censored[i])[mask]
    assert cens.sum() == 2

    def loglik(s, f):
        return _m3_loglik(f[:, mask], y, cens, pop.add[s, 0], pop.prop[s, 0])

    est, proposal = check_marginal(
        post, pid, loglik, (0, 900, 1700), 20000, np.random.default_rng(7)
    )
    # Same draws, same proposal, the observations measured: another likelihood (about 1.5
    # nats apart on average; close at some draws, where the two terms happen to agree).
    measured = marginal_loglik(oral_fit, i, oral_fit.patient(pid).population, proposal)
    assert np.mean(np.abs(est - measured)) > 0.5
