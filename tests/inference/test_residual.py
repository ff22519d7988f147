"""Residual error models against SciPy densities and brute-force integrals of the M3 term."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from twin_uq.inference.residual import ERROR_CODES, observation_loglik, residual_sd

A, B, NU = 0.3, 0.15, 5.0


def loglik(kind, y, f, censored=False, lloq=-np.inf):
    return float(
        observation_loglik(
            jnp.asarray(ERROR_CODES[kind]),
            jnp.asarray(y),
            jnp.asarray(f),
            jnp.asarray(A),
            jnp.asarray(B),
            jnp.asarray(NU),
            jnp.asarray(censored),
            jnp.asarray(lloq),
        )
    )


def scipy_density(kind, y, f):
    if kind == "additive":
        return stats.norm(f, A).pdf(y)
    if kind == "proportional":
        return stats.norm(f, B * abs(f)).pdf(y)
    if kind == "combined":
        return stats.norm(f, np.hypot(A, B * f)).pdf(y)
    if kind == "lognormal":
        return stats.lognorm(s=B, scale=f).pdf(y)
    if kind == "student_t":
        return stats.t(NU, loc=f, scale=np.hypot(A, B * f)).pdf(y)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", list(ERROR_CODES))
@pytest.mark.parametrize(("y", "f"), [(2.3, 2.0), (0.9, 1.4), (5.0, 4.2)])
def test_density_matches_scipy(kind, y, f):
    assert loglik(kind, y, f) == pytest.approx(np.log(scipy_density(kind, y, f)), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("kind", list(ERROR_CODES))
@pytest.mark.parametrize(("lloq", "f"), [(0.5, 1.0), (1.0, 0.8), (0.2, 2.0)])
def test_blq_equals_numerical_integral_of_density(kind, lloq, f):
    lower = 0.0 if kind == "lognormal" else -np.inf
    prob, err = integrate.quad(lambda y: scipy_density(kind, y, f), lower, lloq, epsabs=1e-13, epsrel=1e-11)
    assert err < 1e-9
    assert loglik(kind, np.nan, f, censored=True, lloq=lloq) == pytest.approx(np.log(prob), rel=1e-7)


@pytest.mark.parametrize("kind", list(ERROR_CODES))
def test_gradients_finite_for_uncensored_points_with_infinite_lloq(kind):
    # An uncensored point carries lloq = -inf; its unused censoring branch must not put NaN
    # into the gradient (this once stalled every NUTS chain at its initial point).
    g = jax.grad(lambda f: observation_loglik(
        jnp.asarray(ERROR_CODES[kind]), 1.0, f, A, B, 1e6, False, -jnp.inf))(1.2)
    assert np.isfinite(g)


def test_residual_sd_is_floored_for_zero_prediction():
    sd = residual_sd(jnp.asarray(ERROR_CODES["proportional"]), jnp.asarray(0.0), A, B)
    assert float(sd) > 0
