"""Data-informed partial centring of the random effects.

A patient's random effect samples best *centred* when their data pin it down and
*non-centred* when the population does (Papaspiliopoulos, Roberts & Sköld 2007). For a
Gaussian random effect with prior variance ``ω²`` and data precision ``I`` the optimal
weight is the posterior shrinkage

    w = ω² I / (1 + ω² I),

0 for a patient without data (non-centred), close to 1 for a well-observed one (centred).
With several parameters per patient the same rule reads ``w_k = 1 - V_kk / ω_k²`` with
``V = (F + diag(1/ω²))⁻¹`` the Gaussian approximation of the patient's posterior
covariance and ``F`` the expected Fisher information matrix of the patient's observations
about the log parameters. Using the whole matrix matters when parameters trade off
against each other (``p2`` and ``SI`` of the Bergman model): each one alone looks well
informed, together they are not, and the diagonal would over-centre them.

``F`` is evaluated before the fit at a plausible point: the population median of the
priors, the starting residual error, and the starting between-patient SD. It is a
heuristic for the *parameterisation* only; the posterior does not depend on it.

Derivatives are central finite differences of the noise-free predictions (step ``1e-3`` on
the log scale). A forward solve is all the model needs to provide, and the precision is
ample for a weight. Censored observations are left out (their information is smaller),
which errs towards the non-centred form. A patient whose solve fails at the median gets
``w = 0``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from twin_uq.data import CohortArrays
from twin_uq.inference.likelihood import patient_predictions
from twin_uq.inference.residual import ERROR_CODES, residual_sd
from twin_uq.model.base import Model, SolverSettings

__all__ = ["fisher_information", "shrinkage_weights"]

_LOG_STEP = 1e-3
_LOGNORMAL = ERROR_CODES["lognormal"]


@eqx.filter_jit
def fisher_information(
    model: Model,
    settings: SolverSettings,
    log_theta: Float[Array, "P K"],
    arrays: CohortArrays,
    error_code: Float[Array, " O"],
    add: Float[Array, " O"],
    prop: Float[Array, " O"],
) -> Float[Array, "P K K"]:
    """Expected Fisher information matrix of each patient's data about ``log theta``.

    Parameters
    ----------
    log_theta
        ``(P, K)`` log parameters at which to evaluate it.
    arrays
        The cohort's padded observations.
    error_code, add, prop
        ``(O,)`` residual error model per output and its additive SD (output units) and
        proportional SD (fraction; log-scale SD for ``lognormal``).

    Returns
    -------
    ``(P, K, K)`` information, in 1 / (log-parameter units)²; 0 for a patient whose solve
    failed or who has no uncensored observation.
    """
    K = log_theta.shape[1]
    shifts = jnp.concatenate([jnp.zeros((1, K)), _LOG_STEP * jnp.eye(K), -_LOG_STEP * jnp.eye(K)])

    def one_patient(lt, cov, arr):
        def predict(shift):
            return patient_predictions(
                model,
                settings,
                jnp.exp(lt + shift),
                cov,
                arr.schedule,
                arr.obs_time,
                arr.obs_output,
            )

        f_all, ok_all = jax.vmap(predict)(shifts)  # (2K+1, N)
        f = f_all[0]
        dfdlog = (f_all[1 : K + 1] - f_all[K + 1 :]) / (2 * _LOG_STEP)  # (K, N)
        code = error_code[arr.obs_output]
        sd = residual_sd(code, f, add[arr.obs_output], prop[arr.obs_output])
        scale = jnp.where(code == _LOGNORMAL, jnp.maximum(jnp.abs(f), 1e-12), 1.0)
        used = arr.obs_mask & ~arr.obs_censored
        score = jnp.where(used, dfdlog / (scale * sd), 0.0)  # (K, N) whitened sensitivities
        info = score @ score.T
        good = jnp.all(ok_all) & jnp.all(jnp.isfinite(info))
        return jnp.where(good, info, 0.0)

    return jax.vmap(one_patient)(log_theta, arrays.covariates, arrays)


def shrinkage_weights(information: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """``(P, K)`` centring weights from ``(P, K, K)`` information matrices.

    ``w_k = 1 - V_kk / ω_k²`` with ``V = (F + diag(1/ω²))⁻¹``; for a diagonal ``F`` this is
    ``ω² F_kk / (1 + ω² F_kk)``.
    """
    F = np.asarray(information, dtype=float)
    omega = np.asarray(omega, dtype=float)
    precision = F + np.diag(1.0 / omega**2)
    V = np.linalg.inv(precision)
    w = 1.0 - np.diagonal(V, axis1=-2, axis2=-1) / omega**2
    return np.clip(w, 0.0, 1.0)
