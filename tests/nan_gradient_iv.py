"""A model whose log density has a finite value and a NaN gradient everywhere.

Shared by the tests that a sampler which never moved is reported, never turned into
numbers: the cohort fit (tests/posterior) and the twin update and two-stage worker
(tests/twin, tests/distributed).
"""

from __future__ import annotations

import jax.numpy as jnp

from models.one_compartment_iv import OneCompartmentIV


class NaNGradientIV(OneCompartmentIV):
    """one_compartment_iv whose prediction has a finite value and a NaN gradient.

    The unused branch of ``where`` is ``sqrt`` of a negative number: its NaN derivative,
    multiplied by the zero cotangent, is NaN (the shape of the fault the lag + F recovery
    found, a square root at 0 in an unused error branch).
    """

    name = "nan_gradient_iv"

    def observe(self, y, theta):
        cl = theta["CL"]
        return y[0:1] / theta["V"] + jnp.where(cl < 0, jnp.sqrt(-cl), 0.0)
