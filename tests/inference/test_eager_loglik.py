"""The cohort likelihood runs as one compiled program where NumPyro evaluates the model eagerly.

NumPyro's guide set-up and its search for valid initial parameters (SVI, Laplace) run the
program outside ``jit``; there ``cohort_program`` calls the compiled likelihood, while
inside a trace (NUTS, the optimisers' updates) it traces the likelihood inline, so those
programs stay what they were.
"""

import jax
import jax.numpy as jnp

from twin_uq.inference.numpyro_model import _staged


def test_staged_is_true_only_while_a_program_is_traced():
    seen = []

    def f(x):
        seen.append(_staged())
        return x * x

    f(jnp.ones(()))  # eager
    jax.grad(f)(1.0)  # eager grad: NumPyro's check of the starting point
    jax.vmap(f)(jnp.ones(2))  # eager vmap: the draws' post-processing
    assert seen == [False, False, False]
    jax.jit(f)(jnp.ones(()))
    jax.jit(jax.grad(f))(2.0)
    jax.lax.map(f, jnp.ones(3))
    assert seen[3:] == [True, True, True]
