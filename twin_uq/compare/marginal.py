"""A patient's log-likelihood with its random effects integrated out, at each population draw.

Leave-one-patient-out predicts a patient the population has not seen: for a posterior draw
``phi`` of the population (typical values, covariate effects, between-patient covariance,
residual error) the relevant likelihood is the marginal

    p(y_i | phi) = ∫ p(y_i | theta) p(theta | phi, x_i) dtheta,

not ``p(y_i | theta_i)`` at the patient's own fitted parameters (importance sampling on that
one has Pareto k far above 0.7 for every patient with informative data). The integral is
estimated by importance sampling with a proposal fitted to the patient's own posterior
(a multivariate Student-t, 4 degrees of freedom, on the latent log/logit scale, with the
mean and covariance of the patient's posterior draws): ``M`` parameter vectors are drawn
once per patient, solved once, and scored at every population draw by the residual
contract (:func:`twin_uq.inference.residual.observation_loglik`, censoring included) and by
the population density of that draw. Unbiased for ``p(y_i | phi)`` whatever the proposal; the
proposal only sets its Monte Carlo error. With autocorrelated (OU) residuals ``p(y_i | theta)``
is the joint multivariate Normal density of the patient's whole series (the contract's
conditional densities summed), so leave-one-patient-out stays exact in the same sense.
(Integrated importance sampling: Vehtari, Mononen,
Tolvanen, Sivula & Winther 2016, *J. Mach. Learn. Res.* 17(103).)
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln, logsumexp

from twin_uq.compare.pointwise import score_observations, score_ou_patients
from twin_uq.errors import InputError
from twin_uq.inference.likelihood import censoring_args, patient_predictions
from twin_uq.model.scales import to_natural, to_unconstrained

if TYPE_CHECKING:
    from twin_uq.posterior import CohortPosterior, PopulationDraws

__all__ = ["Proposal", "marginal_loglik", "patient_proposal"]

#: Degrees of freedom of the Student-t proposal (heavier tails than the target).
_PROPOSAL_DF = 4.0


class Proposal:
    """Inner importance sampler of one patient: ``M`` latent draws and their log density.

    Attributes
    ----------
    latent
        ``(M, K)`` parameter vectors on the latent scale.
    log_q
        ``(M,)`` log density of the proposal at them (latent scale).
    """

    def __init__(self, latent: np.ndarray, log_q: np.ndarray):
        self.latent = latent
        self.log_q = log_q


def patient_proposal(post: CohortPosterior, patient_id: str, n_inner: int, seed: int) -> Proposal:
    """A multivariate Student-t fitted to the patient's posterior draws (latent scale)."""
    model = post.model
    z = np.asarray(to_unconstrained(model, post.patient(patient_id).theta))  # (S, K)
    mean = z.mean(axis=0)
    K = z.shape[1]
    # A small ridge keeps the covariance positive definite for (nearly) collinear draws.
    cov = np.cov(z, rowvar=False).reshape(K, K) + 1e-8 * np.eye(K)
    chol = np.linalg.cholesky(cov)
    rng = np.random.default_rng([seed, post.patient_ids.index(patient_id)])
    nu = _PROPOSAL_DF
    eps = rng.standard_normal((n_inner, K))
    g = rng.chisquare(nu, size=n_inner) / nu
    latent = mean + (eps @ chol.T) / np.sqrt(g)[:, None]
    u = np.linalg.solve(chol, (latent - mean).T).T  # standardised
    maha = np.sum(u**2, axis=1)
    log_q = (
        gammaln((nu + K) / 2)
        - gammaln(nu / 2)
        - 0.5 * K * np.log(nu * np.pi)
        - np.sum(np.log(np.diag(chol)))
        - 0.5 * (nu + K) * np.log1p(maha / nu)
    )
    return Proposal(latent, log_q)


def _population_logpdf(pop: PopulationDraws, latent: np.ndarray) -> np.ndarray:
    """``(S, M)`` log density of Normal(mean[s], chol[s] chol[s]^T) at each latent draw."""
    diff = latent[None, :, :] - pop.mean[:, None, :]  # (S, M, K)
    chol = np.asarray(pop.chol)
    u = np.einsum("skl,sml->smk", np.linalg.inv(chol), diff)  # standardised, (S, M, K)
    K = latent.shape[1]
    logdet = np.sum(np.log(np.abs(np.diagonal(chol, axis1=1, axis2=2))), axis=1)  # (S,)
    return -0.5 * np.sum(u**2, axis=-1) - logdet[:, None] - 0.5 * K * np.log(2 * np.pi)


def _predictions(
    post: CohortPosterior, index: int, latent: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(M, N)`` noise-free predictions of patient ``index``'s observations, ``(M,)`` ok."""
    model = post.model
    arrays = jax.tree.map(lambda a: a[index], post.arrays)
    settings = post.solver.covering(np.asarray(arrays.obs_time))
    theta = jnp.asarray(to_natural(model, jnp.asarray(latent)))
    f, ok = _solve_draws(model, settings, theta, arrays)
    return np.asarray(f), np.asarray(ok)


@partial(jax.jit, static_argnums=(0, 1))
def _solve_draws(model, settings, theta, arrays):
    # Jitted once per model and solver settings: every patient of the cohort (same padded
    # shapes) reuses the compiled solve.
    def one(th):
        return patient_predictions(
            model, settings, th, arrays.covariates, arrays.schedule, arrays.obs_time,
            arrays.obs_output,
        )  # fmt: skip

    return jax.vmap(one)(theta)


def _record_loglik(post: CohortPosterior, arrays, f: np.ndarray, pop: PopulationDraws):
    """``(S, M)`` log p(y_i | theta_m, residual_s): independent observation densities."""
    out = np.asarray(arrays.obs_output)
    codes = np.asarray(post.error_codes)[out]
    cens, lloq, limit = censoring_args(arrays)
    ll = score_observations(
        jnp.asarray(codes),
        jnp.asarray(arrays.obs_value),
        jnp.asarray(f)[None],  # (1, M, N)
        jnp.asarray(pop.add[:, out])[:, None, :],  # (S, 1, N)
        jnp.asarray(pop.prop[:, out])[:, None, :],
        jnp.asarray(pop.nu)[:, None, None],
        jnp.asarray(arrays.obs_mask),
        cens,
        lloq,
        limit,
    )
    return np.asarray(ll).sum(axis=-1)


#: Population draws scored at once by the OU path (bounds its (draws, M, N) intermediates).
_OU_CHUNK = 64


def _ou_record_loglik(post: CohortPosterior, arrays, f: np.ndarray, pop: PopulationDraws):
    """``(S, M)`` joint log density of the patient's correlated series (OU residuals).

    Each draw's correlation times ``pop.tau`` with its residual SDs: the record is one
    multivariate Normal term (:func:`~twin_uq.compare.pointwise.score_ou_patients`).
    """
    out = np.asarray(arrays.obs_output)
    fixed = (
        jnp.asarray(np.asarray(post.error_codes)[out]),
        jnp.asarray(arrays.obs_value),
        jnp.asarray(f)[None],  # (1, M, N)
    )
    series = (jnp.asarray(arrays.obs_time), jnp.asarray(out), jnp.asarray(arrays.obs_mask))
    chunks = []
    for lo in range(0, pop.add.shape[0], _OU_CHUNK):
        sl = slice(lo, lo + _OU_CHUNK)
        per_draw = [jnp.asarray(v[sl][:, out])[:, None, :] for v in (pop.add, pop.prop, pop.tau)]
        chunks.append(np.asarray(score_ou_patients(*fixed, *per_draw[:2], *series, per_draw[2])))
    return np.concatenate(chunks, axis=0)


def marginal_loglik(
    post: CohortPosterior,
    index: int,
    pop: PopulationDraws,
    proposal: Proposal,
) -> np.ndarray:
    """``(S,)`` estimate of log p(y_i | phi_s) at each population draw of ``pop``.

    Parameters
    ----------
    post
        The fit that holds patient ``index``'s observations (its arrays and residual model).
    pop
        The population distribution of that patient at each draw ``s`` (from ``post`` itself,
        or from a refit without the patient): mean, Cholesky factor, residual parameters.
    proposal
        The patient's inner importance sampler (:func:`patient_proposal`).
    """
    chol_diag = np.abs(np.diagonal(np.asarray(pop.chol), axis1=1, axis2=2))
    if np.any(chol_diag <= 0):
        fixed = [
            n for n, d in zip(post.model.parameter_names, chol_diag.min(axis=0), strict=True)
            if d <= 0
        ]  # fmt: skip
        raise InputError(
            "Leave-one-patient-out integrates each patient's random effects out; the "
            f"parameters {fixed} have no between-patient variability (fixed effects), which "
            "this does not support yet. Use by='observation'."
        )
    f, ok = _predictions(post, index, proposal.latent)  # (M, N)
    arrays = jax.tree.map(lambda a: np.asarray(a[index]), post.arrays)
    if post.structure.ou_outputs:
        ll = _ou_record_loglik(post, arrays, f, pop)
    else:
        ll = _record_loglik(post, arrays, f, pop)
    ll = np.where(ok[None, :], ll, -np.inf)  # a failed solve contributes no density
    log_w = ll + _population_logpdf(pop, proposal.latent) - proposal.log_q[None, :]
    return logsumexp(log_w, axis=1) - np.log(proposal.latent.shape[0])
