"""Pointwise log-likelihood of a fit, from its stored draws, through the one residual contract.

Model comparison scores every observation (and every patient: the sum over that patient's
observations) under every posterior draw. The scores are recomputed from what a fit file
stores (the noise-free predictions ``posterior_predictive/f`` at each observation, the
residual parameters of each draw, the observations and their censoring) by
:func:`twin_uq.inference.residual.observation_loglik`, the function the fit itself used:
M3/M4 and interval censoring, every error model and several outputs are scored exactly as
in the likelihood that was sampled. The fit's own per-patient totals
(``log_likelihood/y``) mark the draws whose ODE solve failed (``-inf``) and let a test
check that the per-observation values add up to what the fit stored.

A fit with autocorrelated (Ornstein-Uhlenbeck) residuals is scored per patient only: the
patient's whole series is one multivariate Normal term (the contract's
:func:`~twin_uq.inference.residual.ou_observation_loglik`, summed), while a single
observation has no density of its own that leaving it out could use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from twin_uq.errors import InputError
from twin_uq.inference.likelihood import censoring_args
from twin_uq.inference.postprocess import residuals_of_draws, tau_of_draws
from twin_uq.inference.residual import observation_loglik, ou_observation_loglik

if TYPE_CHECKING:
    from twin_uq.posterior import CohortPosterior

__all__ = [
    "observation_table",
    "pointwise_loglik",
    "refuse_correlated_residuals",
    "score_observations",
    "score_ou_patients",
]


@jax.jit
def score_observations(code, y, f, a, b, nu, mask, censored, lloq, limit=None) -> jax.Array:
    """:func:`~twin_uq.inference.residual.observation_loglik`, compiled, 0 where not ``mask``.

    All arguments broadcast elementwise (e.g. draws x patients x observations); compiled
    because the eager Student-t branch alone costs seconds on millions of points.
    """
    ll = observation_loglik(code, y, f, a, b, nu, censored, lloq, limit)
    return jnp.where(mask, ll, 0.0)


@jax.jit
def score_ou_patients(code, y, f, a, b, times, series, mask, tau) -> jax.Array:
    """Joint log density of whole records with OU-correlated residuals.

    Every argument is ``(..., N)`` (one record's padded observations on the last axis) and
    they broadcast over the leading axes (e.g. draws x patients); the result is ``(...)``:
    the sum of :func:`~twin_uq.inference.residual.ou_observation_loglik`'s conditional
    densities, i.e. the multivariate Normal log density of the record (padding scores 0).
    """
    joint = jnp.vectorize(
        lambda *args: ou_observation_loglik(*args).sum(), signature=",".join(["(n)"] * 9) + "->()"
    )
    return joint(code, y, f, a, b, times, series, mask, tau)


def observation_table(post: CohortPosterior) -> dict[str, np.ndarray]:
    """Where the fit's real (unpadded) observations sit: ``patient`` and ``obs`` indices.

    Returns ``patient`` (M,) patient index, ``obs`` (M,) position in the padded arrays,
    ``id`` (M,) patient id, ``time`` (M,) and ``output`` (M,) output name, for the ``M``
    observations in patient order (censored ones included).
    """
    arrays = post.arrays
    mask = np.asarray(arrays.obs_mask)
    p, n = np.nonzero(mask)
    names = np.asarray(post.model.output_names, dtype=object)
    return {
        "patient": p,
        "obs": n,
        "id": np.asarray(post.patient_ids, dtype=object)[p],
        "time": np.asarray(arrays.obs_time)[p, n],
        "output": names[np.asarray(arrays.obs_output)[p, n]],
    }


def pointwise_loglik(post: CohortPosterior, by: str = "observation") -> xr.DataArray:
    """Log-likelihood of each observation (or patient) at each posterior draw.

    Parameters
    ----------
    post
        A fitted (or reloaded) :class:`~twin_uq.posterior.CohortPosterior`; exact, fixed-step
        and approximate (SVI, Laplace) fits alike.
    by
        ``"observation"``: one value per real observation (padding dropped; censored
        points score their censoring probability); ``"patient"``: the sum over each
        patient's observations (the unit of leave-one-patient-out).

    Returns
    -------
    xarray.DataArray
        ``(chain, draw, observation)`` with coordinates ``patient``, ``obs``, ``time``,
        ``output`` on ``observation``; or ``(chain, draw, patient)``. Natural log of the
        density (output units) or of the censoring probability; ``-inf`` for a patient
        at a draw whose ODE solve failed. ``attrs``: ``approximate`` (0/1), ``method``.
    """
    if by not in ("observation", "patient"):
        raise InputError(f"by must be 'observation' or 'patient', got {by!r}.")
    refuse_correlated_residuals(post, by)
    attrs = {"approximate": int(post.approximate), "method": post.method}
    if by == "patient":
        return xr.DataArray(
            _loglik_patients(post),
            dims=("chain", "draw", "patient"),
            coords={"patient": list(post.patient_ids)},
            attrs=attrs,
        )
    where = observation_table(post)
    ll = _loglik_padded(post)  # (C, D, P, N), 0 at padding
    values = ll[:, :, where["patient"], where["obs"]]
    return xr.DataArray(
        values,
        dims=("chain", "draw", "observation"),
        coords={
            "observation": np.arange(values.shape[-1]),
            "patient": ("observation", where["id"].astype(str)),
            "obs": ("observation", where["obs"]),
            "time": ("observation", where["time"]),
            "output": ("observation", where["output"].astype(str)),
        },
        attrs=attrs,
    )


def refuse_correlated_residuals(post: CohortPosterior, by: str = "observation") -> None:
    """Raise :class:`~twin_uq.errors.InputError` for leave-one-observation-out of an OU fit.

    With autocorrelated residuals an observation's neighbours in its series carry
    information about its residual, and the fit's likelihood is a product of conditional
    densities along each series, not of independent observation densities: leaving one
    observation out is not what the stored terms score, and scoring independent densities
    would compare models silently on another likelihood. Leaving a patient's whole series
    out is well defined (``by="patient"``), so only ``by="observation"`` is refused.
    """
    ou = post.structure.ou_outputs
    if ou and by == "observation":
        names = [post.model.output_names[k] for k in ou]
        raise InputError(
            f"Leave-one-observation-out is not defined for this fit of {post.model.name!r}: "
            f"it has autocorrelated residuals (residual_correlation) on {names}, whose "
            "likelihood is a product of conditional densities along each series, not of "
            "independent observation densities. Use by='patient': a patient's whole "
            "correlated series is left out as one multivariate term."
        )


def _loglik_patients(post: CohortPosterior) -> np.ndarray:
    """``(C, D, P)`` log-likelihood of each patient's record, -inf at failed solves."""
    if not post.structure.ou_outputs:
        return _loglik_padded(post).sum(axis=-1)
    f, (a, b, _), codes = _draw_residuals(post)
    C, D = f.shape[:2]
    tau = tau_of_draws(post.structure, post.population_draws(), len(post.model.outputs))
    arrays = post.arrays
    out = np.asarray(arrays.obs_output)
    ll = score_ou_patients(
        jnp.asarray(codes),
        jnp.asarray(arrays.obs_value),
        jnp.asarray(f),
        jnp.asarray(a),
        jnp.asarray(b),
        jnp.asarray(arrays.obs_time),
        jnp.asarray(out),
        jnp.asarray(arrays.obs_mask),
        jnp.asarray(tau.reshape(C, D, -1)[:, :, out]),
    )
    return np.where(_failed(post), -np.inf, np.asarray(ll))


def _failed(post: CohortPosterior) -> np.ndarray:
    """``(C, D, P)``: the fit's own totals are -inf where the solve failed at that draw."""
    stored = post.idata["log_likelihood"]["y"].transpose("chain", "draw", "patient").values
    return ~np.isfinite(stored)


def _draw_residuals(post: CohortPosterior):
    """Stored predictions, residual parameters of every draw and the error codes.

    Returns ``f`` ``(C, D, P, N)``; ``(add, prop, nu)``: each observation's residual SDs
    ``(C, D, P, N)`` and ``nu`` ``(C, D, 1, 1)``; the error code of each observation ``(P, N)``.
    """
    tree = post.idata
    if "posterior_predictive" not in tree.children or "f" not in tree["posterior_predictive"]:
        raise InputError(
            f"This fit of {post.model.name!r} has no noise-free predictions "
            "(posterior_predictive/f): its pointwise log-likelihood cannot be computed."
        )
    f = tree["posterior_predictive"]["f"].transpose("chain", "draw", "patient", "obs").values
    C, D = f.shape[:2]
    add, prop, nu = residuals_of_draws(
        post.structure, post.population_draws(), len(post.model.outputs)
    )
    out = np.asarray(post.arrays.obs_output)  # (P, N)
    if f.shape[2:] != out.shape:
        raise InputError(
            f"posterior_predictive/f has shape {f.shape[2:]} per draw, the cohort's "
            f"observations {out.shape}: the fit file does not belong to this cohort."
        )
    a = add.reshape(C, D, -1)[:, :, out]  # (C, D, P, N): each observation's output
    b = prop.reshape(C, D, -1)[:, :, out]
    return f, (a, b, nu.reshape(C, D, 1, 1)), np.asarray(post.error_codes)[out]


def _loglik_padded(post: CohortPosterior) -> np.ndarray:
    """``(C, D, P, N)`` per-observation log-likelihood, 0 at padding, -inf at failed solves."""
    f, (a, b, nu), codes = _draw_residuals(post)
    arrays = post.arrays
    ll = score_observations(
        jnp.asarray(codes),
        jnp.asarray(arrays.obs_value),
        jnp.asarray(f),
        jnp.asarray(a),
        jnp.asarray(b),
        jnp.asarray(nu),
        jnp.asarray(arrays.obs_mask),
        *censoring_args(arrays),
    )
    # The fit's own totals are -inf where the solve failed at that draw (its predictions
    # there are not a solution): keep that verdict rather than score them.
    return np.where(_failed(post)[..., None], -np.inf, np.asarray(ll))
