"""Closed-form transition matrices of the linear PK models equal the matrix exponential."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.simulate.exact import transition_matrices

THETAS = [
    {"ka": 1.3, "CL": 4.0, "V": 40.0},
    {"ka": 0.1, "CL": 5.0, "V": 50.0},
    {"ka": 0.1, "CL": 5.0, "V": 50.0 + 1e-9},  # ka == k to 1e-11: the 0/0 case of Bateman
]


@pytest.mark.parametrize("name", ["one_compartment_oral", "one_compartment_iv"])
@pytest.mark.parametrize("theta", THETAS)
def test_transition_matches_expm(name, theta):
    model = tq.load_model(name)
    th = {k: jnp.asarray(v) for k, v in theta.items() if k in model.parameter_names}
    dt = jnp.array([0.0, 0.3, 2.0, 24.0, 200.0])
    phi, psi = jax.vmap(model.transition, in_axes=(None, 0))(th, dt)
    phi_ref, psi_ref = transition_matrices(model.linear_system(th), dt)
    np.testing.assert_allclose(phi, phi_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(psi, psi_ref, rtol=1e-9, atol=1e-10)


def test_transition_gradient_finite_at_equal_rates():
    model = tq.load_model("one_compartment_oral")

    def f(ka):
        phi, psi = model.transition({"ka": ka, "CL": jnp.asarray(5.0), "V": jnp.asarray(50.0)}, 3.0)
        return phi[1, 0] + psi[1, 0]

    g = jax.grad(f)(jnp.asarray(0.1))
    eps = 1e-6
    fd = (f(0.1 + eps) - f(0.1 - eps)) / (2 * eps)
    assert np.isfinite(g)
    assert float(g) == pytest.approx(float(fd), rel=1e-5)
