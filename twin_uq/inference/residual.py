"""Residual error models: the likelihood of one observation given the model prediction.

Every function is elementwise and pure JAX, so it broadcasts over observations, patients
and posterior draws. Parameters per output (vectors indexed by the observation's output):

* ``additive``      y ~ Normal(f, a)
* ``proportional``  y ~ Normal(f, b·|f|)
* ``combined``      y ~ Normal(f, sqrt(a² + b²·f²))
* ``lognormal``     log y ~ Normal(log f, b)           (b is the SD on the log scale)
* ``student_t``     y ~ StudentT(nu, f, sqrt(a² + b²·f²))  (robust to outliers)

Below-limit observations (M3 method, Beal 2001) contribute ``log P(Y < lloq)``.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import jax.scipy.special as jsp
import jax.scipy.stats as jst
from jaxtyping import Array, Float

ErrorKind = Literal["additive", "proportional", "combined", "lognormal", "student_t"]
ERROR_KINDS: tuple[str, ...] = ("additive", "proportional", "combined", "lognormal", "student_t")
ERROR_CODES = {k: i for i, k in enumerate(ERROR_KINDS)}

#: Floor on the residual SD and on predictions entering logs, in output units; keeps the
#: density finite when a prediction is exactly 0 (e.g. before the first dose).
_TINY = 1e-12

__all__ = ["ERROR_CODES", "ERROR_KINDS", "ErrorKind", "observation_loglik", "residual_sd"]


def residual_sd(
    code: Array, f: Float[Array, ...], a: Float[Array, ...], b: Float[Array, ...]
) -> Float[Array, ...]:
    """Residual SD on the scale the error model works on (log scale for ``lognormal``)."""
    comb = jnp.sqrt(a**2 + (b * f) ** 2)
    sd = jnp.select(
        [code == 0, code == 1, code == 3],
        [a, b * jnp.abs(f), b],
        comb,
    )
    return jnp.maximum(sd, _TINY)


def observation_loglik(
    code: Array,
    y: Float[Array, ...],
    f: Float[Array, ...],
    a: Float[Array, ...],
    b: Float[Array, ...],
    nu: Float[Array, ...],
    censored: Array,
    lloq: Float[Array, ...],
) -> Float[Array, ...]:
    """Log-likelihood of observations ``y`` given predictions ``f`` (elementwise).

    Parameters
    ----------
    code
        Integer error-model code per observation (see ``ERROR_CODES``).
    y, f
        Observed and predicted values (output units).
    a, b, nu
        Additive SD, proportional SD (fraction) and Student-t degrees of freedom per
        observation (gathered from the per-output parameters).
    censored, lloq
        Below-limit flag and the limit; a censored observation contributes
        ``log P(Y < lloq)`` under the same error model.

    Returns
    -------
    Log density (or log probability for censored points), same shape as ``y``.
    """
    sd = residual_sd(code, f, a, b)
    is_log = code == 3
    f_pos = jnp.maximum(f, _TINY)
    y_pos = jnp.maximum(y, _TINY)
    centre = jnp.where(is_log, jnp.log(f_pos), f)
    value = jnp.where(is_log, jnp.log(y_pos), y)
    # Uncensored points may carry lloq = -inf; a -inf in the unused branch would still send
    # NaN through the gradient of jnp.where, so give those points a finite stand-in.
    lloq = jnp.where(censored & jnp.isfinite(lloq), lloq, f)
    limit = jnp.where(is_log, jnp.log(jnp.maximum(lloq, _TINY)), lloq)
    z = (value - centre) / sd
    zl = (limit - centre) / sd
    # Every branch of jnp.where is differentiated; feed unused branches harmless values so
    # that, e.g., a Student-t CDF evaluated far in its tail cannot put NaN into gradients.
    is_t = code == 4
    z_t = jnp.where(is_t, z, 0.0)
    nu_t = jnp.where(is_t, nu, 10.0)
    zl_c = jnp.where(censored, zl, 0.0)
    # The lognormal Jacobian -log(y) keeps it a density of y, not of log y.
    normal = jst.norm.logpdf(z) - jnp.log(sd) - jnp.where(is_log, jnp.log(y_pos), 0.0)
    student = jst.t.logpdf(z_t, nu_t) - jnp.log(sd)
    dens = jnp.where(is_t, student, normal)
    cens = jnp.where(is_t, _t_logcdf(jnp.where(is_t, zl_c, 0.0), nu_t), jsp.log_ndtr(zl_c))
    return jnp.where(censored, cens, dens)


def _t_logcdf(z: Array, nu: Array) -> Array:
    # Student-t CDF through the regularised incomplete beta function (stable in the tails
    # the M3 likelihood cares about: zl usually < 0).
    x = nu / (nu + z**2)
    tail = 0.5 * jsp.betainc(nu / 2.0, 0.5, x)
    return jnp.log(jnp.where(z < 0, tail, 1.0 - tail))
