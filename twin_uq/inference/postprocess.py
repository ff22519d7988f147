"""Derived quantities of every posterior draw.

Individual parameters, log-likelihood, posterior predictive replicates and solver status.

All computations are vmapped over draws in blocks (``lax.map`` with a batch size) so that
memory stays bounded for large cohorts.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from twin_uq.inference.likelihood import (
    FitData,
    ResidualParams,
    censoring_args,
    likelihood_theta,
    patient_predictions,
    score_predictions,
)
from twin_uq.inference.numpyro_model import ProgramStructure, population_mean, tau_per_output
from twin_uq.inference.random_effects import (
    all_random,
    embed_columns,
    embed_omega,
    occasion_shift,
    random_columns,
)
from twin_uq.inference.reparam import Centering, individual_log_theta
from twin_uq.inference.residual import (
    NU_UNUSED,
    observation_loglik,
    per_output_residuals,
    sample_correlated_observations,
    sample_observations,
)
from twin_uq.model.scales import to_natural

__all__ = ["DrawQuantities", "derive_draw_quantities", "tau_of_draws"]


class DrawQuantities(dict):
    """Name → array with leading ``(chain, draw)`` axes."""


def residual_from_draw(structure: ProgramStructure, draw: dict, n_outputs: int) -> ResidualParams:
    """Per-output residual parameters of one draw of the latent sites."""
    add, prop, nu = _residual_sites(structure, draw, n_outputs)
    # The pooled pre-fit of typical values (prefit.py) optimises no correlation time: its
    # point estimate is scored with independent residuals, a deliberate simplification of
    # that quick check only (every draw of a fit carries ``tau``).
    if not structure.ou_outputs or "tau" not in draw:
        return ResidualParams(add=add, prop=prop, nu=nu)
    tau = tau_per_output(structure, draw["tau"], n_outputs)
    return ResidualParams(add=add, prop=prop, nu=nu, tau=tau)


def tau_of_draws(
    structure: ProgramStructure, draws: Mapping[str, np.ndarray], n_outputs: int
) -> np.ndarray | None:
    """``(S, O)`` OU correlation times of ``S`` flat draws (0 at outputs without one).

    ``None`` for a fit without ``residual_correlation`` (independent residuals).
    """
    if not structure.ou_outputs:
        return None
    return np.asarray(tau_per_output(structure, jnp.asarray(draws["tau"]), n_outputs))


def residuals_of_draws(
    structure: ProgramStructure, draws: Mapping[str, np.ndarray], n_outputs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residual parameters of ``S`` flat posterior draws.

    Returns per-output additive and proportional SDs ``(S, O)`` and Student-t ``nu``
    ``(S,)``; zeros / ``NU_UNUSED`` where the model has no such site.
    """
    S = next(iter(draws.values())).shape[0]
    if not any(k in draws for k in ("sigma_add", "sigma_prop", "nu")):
        return np.zeros((S, n_outputs)), np.zeros((S, n_outputs)), np.full(S, NU_UNUSED)
    add, prop, nu = _residual_sites(structure, draws, n_outputs)
    return np.asarray(add), np.asarray(prop), np.asarray(nu)


def _residual_sites(
    structure: ProgramStructure, draw: Mapping, n_outputs: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    # One draw (sites without a leading axis) or a batch (every site with the same one).
    return per_output_residuals(
        n_outputs,
        structure.add_outputs,
        draw["sigma_add"] if structure.add_outputs else None,
        structure.prop_outputs,
        draw["sigma_prop"] if structure.prop_outputs else None,
        draw["nu"] if structure.student_t else None,
    )


def log_theta_from_latents(
    structure: ProgramStructure, draw: dict, data: FitData, centering: Centering
) -> jax.Array:
    """``(P, K)`` individual parameters on their latent scale of one draw of the latent sites.

    The latent scale is ``log``, or ``logit`` for a logit-normal parameter; the map is that of
    :func:`~twin_uq.inference.numpyro_model.cohort_program`.
    """
    model = structure.model
    beta = draw["beta"] if structure.n_effects else jnp.zeros(0)
    mean = population_mean(draw["mu"], beta, data, structure.n_params)
    if "omega" not in draw:  # every parameter a fixed effect
        return mean
    omega = draw["omega"]
    if structure.correlated:
        return embed_columns(
            model, mean, random_columns(model, mean) + (draw["z"] @ draw["corr_chol"].T) * omega
        )
    if centering.whitened:
        residual = residual_from_draw(structure, draw, data.error_code.shape[0])
        full = embed_omega(model, omega)
        prior = centering.latent_prior(mean, full, residual.add, residual.prop)
        return centering.log_theta(mean, full, embed_columns(model, prior[0], draw["z"]), prior)
    w = random_columns(model, centering.weights)
    latent = individual_log_theta(random_columns(model, mean), omega, draw["z"], w)
    return embed_columns(model, mean, latent)


def derive_draw_quantities(
    structure: ProgramStructure,
    samples: dict[str, np.ndarray],
    data: FitData,
    centering: Centering,
    key: jax.Array,
    batch_size: int = 64,
) -> DrawQuantities:
    """Compute theta, eta, per-observation log-likelihood, replicates and solver status.

    Parameters
    ----------
    samples
        Latent sites with leading ``(chains, draws)`` axes.
    centering
        How the fit parameterised the random effects (``PreparedFit.centering``).

    Returns
    -------
    DrawQuantities with ``theta`` (C, D, P, K), ``eta`` (C, D, P, K), ``loglik_obs``
    (C, D, P, N), ``y_rep`` (C, D, P, N), ``f`` (C, D, P, N) noise-free predictions at the
    observation times, and ``solver_ok`` (C, D, P).
    """
    chains, draws = next(iter(samples.values())).shape[:2]
    total = chains * draws
    # Pad to a whole number of batches so that every call has the same shape.
    padded = -(-total // batch_size) * batch_size

    def flatten(v):
        v = np.asarray(v).reshape(total, *v.shape[2:])
        return jnp.asarray(np.concatenate([v, np.repeat(v[-1:], padded - total, axis=0)]))

    flat = {k: flatten(v) for k, v in samples.items()}
    keys = jax.random.split(key, padded)
    # One compiled batch function, called batch by batch: its shape does not depend on the
    # number of chains or draws, so NUTS, SVI and Laplace fits of any length share it.
    batches = [
        _derive_batch(
            structure,
            {k: v[i : i + batch_size] for k, v in flat.items()},
            keys[i : i + batch_size],
            data,
            centering,
        )
        for i in range(0, padded, batch_size)
    ]
    out = [np.concatenate([np.asarray(b[j]) for b in batches]) for j in range(len(batches[0]))]
    names = ("theta", "eta", "loglik_obs", "y_rep", "f", "solver_ok")
    result = DrawQuantities()
    for name, value in zip(names, out, strict=True):
        value = np.asarray(value)[:total]
        result[name] = value.reshape(chains, draws, *value.shape[1:])
    return result


@partial(jax.jit, static_argnums=(0,))
def _derive_batch(
    structure: ProgramStructure, flat: dict, keys: jax.Array, data: FitData, centering: Centering
):
    # Jitted with the structure static so that later fits of the same shapes reuse it.
    model, settings = structure.model, structure.settings
    n_out = data.error_code.shape[0]
    arr = data.arrays
    K = structure.n_params

    def one(args):
        draw, k = args
        log_theta = log_theta_from_latents(structure, draw, data, centering)
        theta = to_natural(model, log_theta)
        beta = draw["beta"] if structure.n_effects else jnp.zeros(0)
        mean = population_mean(draw["mu"], beta, data, structure.n_params)
        if all_random(model):
            eta = (log_theta - mean) / draw["omega"]
        else:  # a fixed effect's standardised random effect is 0 (it has none)
            full = embed_omega(model, draw["omega"]) if "omega" in draw else jnp.zeros_like(mean)
            eta = jnp.where(full > 0, (log_theta - mean) / jnp.where(full > 0, full, 1.0), 0.0)
        residual = residual_from_draw(structure, draw, n_out)
        # With time-varying covariates or occasions the solve takes (P, S, K) parameters.
        shift = None
        if structure.iov:
            shift = occasion_shift(
                draw["kappa"], draw["omega_occ"], data.segment_occasion, structure.iov, K
            )
        solved = (
            theta
            if data.arrays.change_time is None
            else likelihood_theta(model, log_theta, beta, data, shift)
        )
        f, ok = jax.vmap(
            lambda th, cov, a, grid: patient_predictions(
                model,
                settings,
                th,
                cov,
                a.schedule,
                a.obs_time,
                a.obs_output,
                grid,
                a.change_time,
            )
        )(solved, arr.covariates, arr, data.grids)
        out = arr.obs_output
        if residual.tau is not None:  # autocorrelated residuals: the contract's OU path
            ll, _ = jax.vmap(
                lambda a, f_, ok_: score_predictions(a, data.error_code, residual, f_, ok_)
            )(arr, f, ok)
            ll = jnp.where(arr.obs_mask, ll, 0.0)
            y_rep = _replicate_ou(k, data, f, residual)
            return theta, eta, ll, y_rep, f, ok
        ll = observation_loglik(
            data.error_code[out],
            arr.obs_value,
            f,
            residual.add[out],
            residual.prop[out],
            residual.nu,
            *censoring_args(arr),
        )
        ll = jnp.where(arr.obs_mask, ll, 0.0)
        ll = jnp.where(ok[:, None], ll, -jnp.inf)
        y_rep = _replicate(k, data, f, residual, structure.student_t)
        return theta, eta, ll, y_rep, f, ok

    return jax.vmap(one)((flat, keys))


def _replicate(
    key: jax.Array, data: FitData, f: jax.Array, residual: ResidualParams, student_t: bool
) -> jax.Array:
    """One noisy replicate of every observation under the residual error model."""
    out = data.arrays.obs_output
    y = sample_observations(
        key,
        data.error_code[out],
        f,
        residual.add[out],
        residual.prop[out],
        residual.nu,
        student_t=student_t,
    )
    return jnp.where(data.arrays.obs_mask, y, jnp.nan)


def _replicate_ou(key: jax.Array, data: FitData, f: jax.Array, residual: ResidualParams):
    """One noisy replicate with OU-correlated residuals within each patient and output."""
    arr = data.arrays
    out = arr.obs_output
    keys = jax.random.split(key, out.shape[0])
    y = jax.vmap(
        lambda k, o, f_, t, m: sample_correlated_observations(
            k, data.error_code[o], f_, residual.add[o], residual.prop[o], t, o, residual.tau[o], m
        )
    )(keys, out, f, arr.obs_time, arr.obs_mask)
    return jnp.where(arr.obs_mask, y, jnp.nan)
