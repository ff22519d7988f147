"""A patient's marginal likelihood (leave-one-patient-out) against independent estimators.

Shared by tests/compare: :func:`twin_uq.compare.marginal.marginal_loglik` must equal its
importance sampler written out here with scipy, and agree with plain Monte Carlo over the
population (the patient's parameters drawn from the population at the draw) within their
combined Monte Carlo error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
import scipy.stats as st
from scipy.special import logsumexp

from twin_uq.compare.marginal import Proposal, _predictions, marginal_loglik, patient_proposal


def log_mean_and_se(log_w: np.ndarray) -> tuple[float, float]:
    """log of the mean of exp(log_w) and its Monte Carlo SE (delta method)."""
    w = np.exp(log_w - log_w.max())
    return logsumexp(log_w) - np.log(w.size), w.std() / (w.mean() * np.sqrt(w.size))


def check_marginal(
    post,
    pid: str,
    loglik: Callable[[int, np.ndarray], np.ndarray],
    draws: Sequence[int],
    n_mc: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, Proposal]:
    """Check ``marginal_loglik`` of patient ``pid`` at the flat posterior ``draws``.

    ``loglik(s, f)``: ``(M,)`` log-likelihood of the patient's record at draw ``s`` given
    padded predictions ``f`` ``(M, N)``, written out by the test. Returns the estimate at
    every draw and the proposal (256 inner draws, seed 0).
    """
    i = post.patient_ids.index(pid)
    pop = post.patient(pid).population
    proposal = patient_proposal(post, pid, 256, seed=0)
    est = marginal_loglik(post, i, pop, proposal)
    f_prop, ok = _predictions(post, i, proposal.latent)
    assert ok.all()
    for s in draws:
        z = pop.mean[s] + rng.standard_normal((n_mc, pop.mean.shape[1])) @ pop.chol[s].T
        f, ok = _predictions(post, i, z)
        assert ok.all()
        naive, se_naive = log_mean_and_se(loglik(s, f))
        cov = pop.chol[s] @ pop.chol[s].T
        log_w = (
            loglik(s, f_prop)
            + st.multivariate_normal(pop.mean[s], cov).logpdf(proposal.latent)
            - proposal.log_q
        )
        again, se_is = log_mean_and_se(log_w)
        assert est[s] == pytest.approx(again, abs=1e-8)
        assert abs(est[s] - naive) < 4 * np.hypot(se_naive, se_is), (s, est[s], naive)
    return est, proposal
