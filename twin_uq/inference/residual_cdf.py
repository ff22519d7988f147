"""Log-CDFs of the standardised residual: the Normal, and the Student-t with a derivative in nu.

The censored terms of :func:`twin_uq.inference.residual.observation_loglik` (M3/M4 and
interval censoring) are differences of these CDFs. JAX's ``betainc`` has no derivative in
its shape parameter, so :func:`t_logcdf` carries its own JVP rule: autodiff in ``z``, a
central difference of the exact value in ``nu``. Elementwise and pure: every function
broadcasts over observations, patients and draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array

__all__ = ["log_cdf", "t_logcdf"]


def log_cdf(z: Array, is_t: Array, nu_t: Array | None) -> Array:
    """``log F(z)`` of the standard Normal, or of the Student-t where ``is_t``.

    ``nu_t`` ``None``: the Normal everywhere (the Student-t CDF is not compiled).
    """
    if nu_t is None:
        return jsp.log_ndtr(z)
    return jnp.where(is_t, t_logcdf(jnp.where(is_t, z, 0.0), nu_t), jsp.log_ndtr(z))


def _t_logcdf_value(z: Array, nu: Array) -> Array:
    # Student-t CDF through the regularised incomplete beta function (stable in the tails
    # the M3 likelihood cares about: zl usually < 0).
    x = nu / (nu + z**2)
    tail = 0.5 * jsp.betainc(nu / 2.0, 0.5, x)
    return jnp.log(jnp.where(z < 0, tail, 1.0 - tail))


#: Relative step of the central difference in nu (about the cube root of float64 epsilon:
#: truncation and rounding error both near 1e-10 relative).
_NU_STEP = 1e-5


@jax.custom_jvp
def t_logcdf(z: Array, nu: Array) -> Array:
    """``log P(T < z)`` for a standard Student-t with ``nu`` degrees of freedom."""
    return _t_logcdf_value(z, nu)


def _t_logcdf_jvp(primals, tangents):
    # JAX's betainc has no derivative in its shape parameter (nu / 2), and jnp.where
    # differentiates every branch: without this rule any gradient in nu (a sampled
    # parameter of every Student-t fit) failed at trace time, censored points or not.
    # In z the derivative is the one autodiff gives; in nu a central difference of the
    # exact value. A fit without Student-t outputs has a constant nu (a symbolic zero
    # tangent here), so it computes exactly what it computed before.
    z, nu = primals
    z_dot, nu_dot = tangents
    if isinstance(z_dot, SymbolicZero):
        value = _t_logcdf_value(z, nu)
        tangent = jnp.zeros_like(value)
    else:
        value, tangent = jax.jvp(lambda z_: _t_logcdf_value(z_, nu), (z,), (z_dot,))
    if not isinstance(nu_dot, SymbolicZero):
        h = _NU_STEP * nu
        slope = (_t_logcdf_value(z, nu + h) - _t_logcdf_value(z, nu - h)) / (2.0 * h)
        tangent = tangent + slope * nu_dot
    return value, tangent


t_logcdf.defjvp(_t_logcdf_jvp, symbolic_zeros=True)
