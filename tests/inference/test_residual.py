"""Residual error models against SciPy densities and brute-force integrals of the M3 term,
and the replicate sampler against the likelihood (and SciPy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from residual_checks import KS_CRIT_001, assert_student_t_replicates, ks_distance, pit
from scipy import integrate, stats

from twin_uq.inference.residual import (
    ERROR_CODES,
    ERROR_KINDS,
    NU_UNUSED,
    ErrorKind,
    observation_loglik,
    per_output_residuals,
    residual_sd,
    sample_observations,
)

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


@pytest.mark.parametrize("censored", [False, True])
def test_proportional_gradient_is_finite_at_a_prediction_of_zero(censored):
    # A sample before the lag time (or before the first dose) is predicted exactly 0; the
    # unused combined branch's square root at 0 made the gradient NaN in f and in the SD,
    # which left NUTS stuck at its start with every transition divergent. Proportional SD
    # floored at 0 does not depend on b there; in f the slope is y / sd**2.
    code = jnp.asarray(ERROR_CODES["proportional"])
    lloq = 0.02 if censored else -jnp.inf
    g = jax.grad(
        lambda f, b: observation_loglik(code, 0.001, f, 0.0, b, NU, censored, lloq), (0, 1)
    )(0.0, B)
    assert np.all(np.isfinite(g))
    assert float(g[1]) == 0.0
    assert float(g[0]) == (0.0 if censored else pytest.approx(0.001 / 1e-24, rel=1e-12))
    assert float(jax.grad(lambda f: residual_sd(code, f, 0.0, B))(0.0)) == 0.0


# ---- the error kinds -------------------------------------------------------------------


def test_error_kinds_are_named_and_keep_their_codes():
    # The codes are stored in saved fits and model files' error names map onto them.
    assert ERROR_KINDS == ("additive", "proportional", "combined", "lognormal", "student_t")
    assert ERROR_CODES == {"additive": 0, "proportional": 1, "combined": 2, "lognormal": 3, "student_t": 4}
    for label, code in ERROR_CODES.items():
        assert ErrorKind.from_label(label) == code
        assert ErrorKind(code).label == label
    with pytest.raises(ValueError, match=r"Unknown error model 'gaussian'.*student_t"):
        ErrorKind.from_label("gaussian")


# ---- the sampler draws from the density the likelihood scores ---------------------------

N_DRAWS = 20_000
F_VALUES = (0.8, 4.2)  # the proportional terms make the spread depend on f


def draws(kind, f, nu=NU, seed=0, n=N_DRAWS):
    return np.asarray(
        sample_observations(
            jax.random.key(seed),
            jnp.asarray(ERROR_CODES[kind]),
            jnp.full(n, f),
            jnp.asarray(A),
            jnp.asarray(B),
            jnp.asarray(nu),
        )
    )


@pytest.mark.parametrize("kind", list(ERROR_CODES))
@pytest.mark.parametrize("f", F_VALUES)
def test_replicates_follow_the_likelihood_cdf(kind, f):
    # P(Y < y) from the likelihood's own M3 term: uniform at the draws iff the sampler and
    # the likelihood describe the same distribution.
    y = draws(kind, f)
    assert ks_distance(pit(ERROR_CODES[kind], y, f, A, B, NU)) < KS_CRIT_001


@pytest.mark.parametrize("kind", list(ERROR_CODES))
@pytest.mark.parametrize("f", F_VALUES)
def test_replicates_match_scipy_distribution(kind, f):
    # Independent reference (SciPy), the same one the density is checked against above.
    ref = {
        "additive": stats.norm(f, A),
        "proportional": stats.norm(f, B * abs(f)),
        "combined": stats.norm(f, np.hypot(A, B * f)),
        "lognormal": stats.lognorm(s=B, scale=f),
        "student_t": stats.t(NU, loc=f, scale=np.hypot(A, B * f)),
    }[kind]
    y = draws(kind, f, seed=1)
    assert stats.kstest(y, ref.cdf).statistic * np.sqrt(y.size) < KS_CRIT_001
    # Monte Carlo tolerance on the mean: 5 standard errors.
    assert abs(y.mean() - ref.mean()) < 5 * ref.std() / np.sqrt(y.size)


def test_lognormal_replicates_are_positive_even_for_zero_or_tiny_predictions():
    f = jnp.array([0.0, 1e-300, 1e-3, 1.0])
    y = sample_observations(
        jax.random.key(2), ERROR_CODES["lognormal"], jnp.tile(f, (5000, 1)), 0.0, 2.0, 1e6
    )
    assert bool(jnp.all(y > 0)) and bool(jnp.all(jnp.isfinite(y)))


def test_student_t_replicates_have_student_t_tails():
    nu = 3.0
    f = 2.0
    sd = np.hypot(A, B * f)
    y = draws("student_t", f, nu=nu, seed=3)
    beyond = int(np.sum(np.abs(y - f) / sd > 4.0))
    p_t, p_normal = 2 * stats.t.sf(4.0, nu), 2 * stats.norm.sf(4.0)  # 0.028 and 6e-5
    n = y.size
    assert abs(beyond - n * p_t) < 5 * np.sqrt(n * p_t * (1 - p_t)), (beyond, n * p_t)
    assert beyond > 100 * n * p_normal
    # and the same draws scored as Normal are rejected: the test can tell the two apart
    assert_student_t_replicates(y, f, A, B, nu)


def test_each_element_uses_its_own_student_t_dof():
    # Half the elements nu = 2.5, half nu = 50, interleaved: a sampler that took one nu for
    # all would fail the uniformity check on one of the halves.
    nu = np.tile([2.5, 50.0], N_DRAWS // 2)
    f = np.full(nu.size, 1.5)
    y = np.asarray(sample_observations(jax.random.key(4), ERROR_CODES["student_t"], f, A, B, nu))
    for v in (2.5, 50.0):
        sel = nu == v
        assert ks_distance(pit(ERROR_CODES["student_t"], y[sel], f[sel], A, B, v)) < KS_CRIT_001


def test_key_usage_is_the_documented_one():
    # Consumers promise the same replicates for the same seed: the key is split once, the
    # Normal comes from the first half, the Student-t from the second.
    key = jax.random.key(5)
    f = jnp.linspace(0.5, 3.0, 7)
    k_normal, k_t = jax.random.split(key)
    z, t = jax.random.normal(k_normal, f.shape), jax.random.t(k_t, NU, f.shape)
    sd = np.hypot(A, B * np.asarray(f))
    got = {k: np.asarray(sample_observations(key, ERROR_CODES[k], f, A, B, NU)) for k in ERROR_CODES}
    np.testing.assert_allclose(got["combined"], f + sd * z, rtol=1e-14)
    np.testing.assert_allclose(got["student_t"], f + sd * t, rtol=1e-14)
    np.testing.assert_allclose(got["lognormal"], f * np.exp(B * z), rtol=1e-14)


def test_without_the_student_t_switch_student_t_elements_are_nan_not_normal():
    code = jnp.array([ERROR_CODES["combined"], ERROR_CODES["student_t"], ERROR_CODES["additive"]])
    f = jnp.array([1.0, 2.0, 3.0])
    with_t = sample_observations(jax.random.key(6), code, f, A, B, NU, student_t=True)
    without = sample_observations(jax.random.key(6), code, f, A, B, NU, student_t=False)
    assert np.isnan(without[1])
    # the Normal elements are the same numbers either way (same subkey)
    np.testing.assert_array_equal(np.asarray(without)[[0, 2]], np.asarray(with_t)[[0, 2]])


def test_broadcasting_draw_axes_gives_the_same_numbers_as_explicit_broadcast():
    # The twin passes (S, T, O) predictions with (O,) codes, (S, 1, O) SDs and (S, 1, 1) nu.
    S, T, n_out = 3, 4, 2
    f = jnp.linspace(0.5, 5.0, S * T * n_out).reshape(S, T, n_out)
    code = jnp.array([ERROR_CODES["student_t"], ERROR_CODES["lognormal"]])
    add = jnp.array([[0.1, 0.0], [0.2, 0.0], [0.3, 0.0]])[:, None, :]
    prop = jnp.full((S, 1, n_out), 0.2)
    nu = jnp.array([3.0, 5.0, 9.0])[:, None, None]
    key = jax.random.key(7)
    implicit = sample_observations(key, code, f, add, prop, nu)
    full = [jnp.broadcast_to(x, f.shape) for x in (code, add, prop, nu)]
    explicit = sample_observations(key, full[0], f, *full[1:])
    assert implicit.shape == (S, T, n_out)
    np.testing.assert_array_equal(np.asarray(implicit), np.asarray(explicit))


# ---- per-output residual parameters ----------------------------------------------------


def test_per_output_residuals_scatter_a_batch_of_draws():
    sigma_add = np.array([[0.1], [0.2]])  # (S=2, A=1): output 2 only
    sigma_prop = np.array([[0.3, 0.4], [0.5, 0.6]])  # outputs 0 and 2
    add, prop, nu = per_output_residuals(3, (2,), sigma_add, (0, 2), sigma_prop, None)
    np.testing.assert_array_equal(add, [[0.0, 0.0, 0.1], [0.0, 0.0, 0.2]])
    np.testing.assert_array_equal(prop, [[0.3, 0.0, 0.4], [0.5, 0.0, 0.6]])
    np.testing.assert_array_equal(nu, [NU_UNUSED, NU_UNUSED])
    # one draw (no batch axis), Student-t dof kept
    add, prop, nu = per_output_residuals(2, (0, 1), np.array([1.0, 2.0]), (), None, 4.0)
    np.testing.assert_array_equal(add, [1.0, 2.0])
    np.testing.assert_array_equal(prop, [0.0, 0.0])
    assert float(nu) == 4.0


def test_per_output_residuals_refuse_a_missing_or_unexpected_site():
    with pytest.raises(ValueError, match=r"sigma_add must be given.*missing"):
        per_output_residuals(2, (0,), None, (), None, None)
    with pytest.raises(ValueError, match=r"sigma_prop must be given.*given"):
        per_output_residuals(2, (0,), np.ones(1), (), np.ones(1), None)


# ---- gradients in the Student-t degrees of freedom ------------------------------------


def _scipy_dlog(fn, nu, h=1e-3):
    # Five-point central difference of an independent (SciPy) implementation.
    h = h * nu
    return (-fn(nu + 2 * h) + 8 * fn(nu + h) - 8 * fn(nu - h) + fn(nu - 2 * h)) / (12 * h)


@pytest.mark.parametrize("nu", [1.5, 5.0, 40.0])
@pytest.mark.parametrize("lloq", [0.2, 1.5])
def test_censored_student_t_gradient_in_nu_matches_scipy(nu, lloq):
    # nu is sampled in every Student-t fit; JAX's betainc has no derivative in it, so this
    # gradient once failed at trace time (for every Student-t fit, censored points or not).
    f = 1.0
    g = jax.grad(
        lambda v: observation_loglik(
            jnp.asarray(ERROR_CODES["student_t"]), 1.0, f, A, B, v, jnp.asarray(True), lloq
        )
    )(nu)
    z = (lloq - f) / np.hypot(A, B * f)
    ref = _scipy_dlog(lambda v: stats.t.logcdf(z, v), nu)
    assert float(g) == pytest.approx(ref, rel=1e-6)


def test_uncensored_student_t_gradient_in_nu_matches_scipy():
    f, y, nu = 1.0, 1.7, 4.0
    g = jax.grad(
        lambda v: observation_loglik(
            jnp.asarray(ERROR_CODES["student_t"]), y, f, A, B, v, jnp.asarray(False), -jnp.inf
        )
    )(nu)
    scale = np.hypot(A, B * f)
    ref = _scipy_dlog(lambda v: stats.t.logpdf(y, v, loc=f, scale=scale), nu)
    assert float(g) == pytest.approx(ref, rel=1e-6)


def test_gradient_in_the_prediction_is_unchanged_for_censored_student_t():
    # d/df of log P(Y < lloq) = -pdf(lloq) / cdf(lloq) * d(z)/d(f), from SciPy.
    nu, lloq, f = 5.0, 0.6, 1.0
    g = jax.grad(
        lambda f_: observation_loglik(
            jnp.asarray(ERROR_CODES["student_t"]), 1.0, f_, A, 0.0, nu, jnp.asarray(True), lloq
        )
    )(f)
    ref = -stats.t.pdf(lloq, nu, loc=f, scale=A) / stats.t.cdf(lloq, nu, loc=f, scale=A)
    assert float(g) == pytest.approx(ref, rel=1e-9)
