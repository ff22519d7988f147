"""SVI and Laplace agree with NUTS on population means of an easy problem, and say so."""

import json

import pytest


# SVI's 2000 steps took 38 s in CI: in the slow set; Laplace stays in the default run.
@pytest.fixture(scope="module", params=[pytest.param("svi", marks=pytest.mark.slow), "laplace"])
def approximate_fit(request, oral_sim):
    import twin_uq as tq

    if request.param == "laplace":
        # the session's shared Laplace fit (tests/conftest.py): the same settings as the SVI
        # fit below (2000 steps, learning rate 0.02, 1000 draws, seed 3), fitted once
        return request.getfixturevalue("oral_laplace")
    return tq.fit(
        "one_compartment_oral", oral_sim.cohort, method=request.param, draws=1000, svi_steps=2000,
        learning_rate=0.02, seed=3, progress=False,
    )


def test_labelled_approximate(approximate_fit):
    assert approximate_fit.approximate
    assert approximate_fit.idata.attrs["approximate"] == "true"
    diag = approximate_fit.diagnostics()
    assert not diag.converged
    assert "approximate" in diag.reasons[0]
    assert approximate_fit.population_summary().attrs["approximate"] is True
    info = json.loads(approximate_fit.idata.attrs["backend_info"])
    if info.get("guide") == "lowrank":
        # 16 patients x 3 parameters + 3 mu + 3 omega + 2 sigma = 56 latent dimensions.
        assert info["guide_rank"] == min(round(56**0.5), 10) == 7


def test_population_means_agree_with_nuts(approximate_fit, oral_fit):
    # Tolerance: the NUTS posterior SD of log typical values. A Gaussian approximation of a
    # well-identified, nearly Gaussian posterior must put its mean within that distance;
    # Monte Carlo error of both (<= 0.1 SD here) is small against it.
    nuts = oral_fit.posterior["mu"]
    approx = approximate_fit.posterior["mu"]
    for name in ("ka", "CL", "V"):
        a = approx.sel(parameter=name).values.ravel()
        b = nuts.sel(parameter=name).values.ravel()
        assert abs(a.mean() - b.mean()) < b.std(), (name, a.mean(), b.mean(), b.std())
        assert 0.3 < a.std() / b.std() < 2.0, (name, a.std(), b.std())


@pytest.mark.parametrize("hessian", ["zero", "indefinite"])
def test_laplace_refuses_a_hessian_that_is_not_positive_definite(monkeypatch, oral_sim, hessian):
    # NumPyro turns a Hessian whose Cholesky factor fails into constant draws (all equal to
    # the MAP) with a warning: zero-width intervals. The fit must refuse instead.
    import jax.numpy as jnp

    import twin_uq as tq
    from twin_uq.errors import UnavailableError
    from twin_uq.inference import backends

    def broken(f, x):
        n = x.shape[0]
        return jnp.zeros((n, n)) if hessian == "zero" else -jnp.eye(n)

    monkeypatch.setattr(backends, "_fd_hessian", broken)
    with pytest.raises(UnavailableError, match="not positive definite"):
        tq.fit(
            "one_compartment_oral", oral_sim.cohort, method="laplace", draws=50, svi_steps=20,
            seed=3, progress=False,
        )


def test_constant_sites_name_each_dimension_without_spread():
    import numpy as np

    from twin_uq.inference.backends import _constant_sites

    rng = np.random.default_rng(0)
    eta = rng.normal(size=(1, 30, 4, 3))
    eta[:, :, 2, 1] = 0.7
    samples = {"eta": eta, "mu": rng.normal(size=(1, 30, 3)), "s": np.full((1, 30), 2.0)}
    assert _constant_sites(samples) == ["eta[7]", "s"]
