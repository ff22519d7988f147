"""Parameter scales (log / logit) and fixed-effect parameters: declaration and the maps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.model.check import check_model
from twin_uq.model.scales import (
    fixed_index,
    logit_mask,
    random_index,
    scale_labels,
    to_natural,
    to_unconstrained,
)


class Mixed(tq.Model):
    """Three parameters: log-normal, logit-normal, and a fixed log-normal one."""

    name = "mixed_scales"
    states = ("amount",)
    parameters = (
        tq.Parameter("CL", "L/h", 2.0),
        tq.Parameter("F", "1", 0.7, scale="logit"),
        tq.Parameter("V", "L", 30.0, bsv=False),
    )
    outputs = (tq.Output("conc", "mg/L"),)
    card = tq.ModelCard(summary="s", equations="e", time_unit="h")

    def rhs(self, t, y, theta, inputs, covariates):
        return -theta["CL"] / theta["V"] * y

    def observe(self, y, theta):
        return theta["F"] * y / theta["V"]


def test_defaults_keep_every_parameter_log_normal_with_variability():
    p = tq.Parameter("CL", "L/h", 2.0)
    assert p.scale == "log" and p.bsv is True


def test_logit_parameter_needs_a_fraction_and_gets_a_fraction_range():
    p = tq.Parameter("F", "1", 0.7, scale="logit")
    assert p.valid_range == (0.0, 1.0)
    for bad in (0.0, 1.0, 1.3):
        with pytest.raises(InputError, match=r"Parameter 'F': typical value must lie strictly"):
            tq.Parameter("F", "1", bad, scale="logit")
    with pytest.raises(InputError, match=r"valid_range of a logit-normal parameter"):
        tq.Parameter("F", "1", 0.7, scale="logit", valid_range=(0.0, 2.0))


def test_unknown_scale_and_non_boolean_bsv_are_refused():
    with pytest.raises(InputError, match=r"scale must be 'log' .* or 'logit'"):
        tq.Parameter("F", "1", 0.7, scale="probit")
    with pytest.raises(InputError, match=r"bsv must be True .* or False"):
        tq.Parameter("CL", "L/h", 2.0, bsv="no")


def test_model_with_mixed_scales_passes_the_checks():
    check_model(Mixed())


def test_indices_and_mask_follow_declaration_order():
    m = Mixed()
    assert logit_mask(m).tolist() == [False, True, False]
    assert random_index(m).tolist() == [0, 1]
    assert fixed_index(m).tolist() == [2]


def test_maps_are_exp_log_and_expit_logit_in_numpy_and_jax():
    m = Mixed()
    z = np.array([[0.3, -1.2, 3.0], [-2.0, 2.5, 0.1]])
    expected = np.stack([np.exp(z[:, 0]), 1 / (1 + np.exp(-z[:, 1])), np.exp(z[:, 2])], axis=1)
    nat = to_natural(m, z)
    assert isinstance(nat, np.ndarray)
    np.testing.assert_allclose(nat, expected, rtol=1e-14)
    nat_j = to_natural(m, jnp.asarray(z))
    assert isinstance(nat_j, jax.Array)
    np.testing.assert_allclose(np.asarray(nat_j), expected, rtol=1e-14)
    np.testing.assert_allclose(to_unconstrained(m, expected), z, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(to_unconstrained(m, jnp.asarray(expected))), z, rtol=1e-12
    )


def test_all_log_model_maps_are_exactly_exp_and_log():
    model = tq.load_model("one_compartment_oral")
    z = np.random.default_rng(0).normal(size=(5, len(model.parameters)))
    assert np.array_equal(to_natural(model, z), np.exp(z))
    assert np.array_equal(np.asarray(to_natural(model, jnp.asarray(z))), np.asarray(jnp.exp(z)))
    assert np.array_equal(to_unconstrained(model, np.exp(z)), np.log(np.exp(z)))


def test_logit_map_has_finite_gradients_far_out():
    m = Mixed()
    z = jnp.array([1.0, 800.0, 1.0])
    g = jax.grad(lambda v: jnp.sum(to_natural(m, v)))(z)
    assert np.all(np.isfinite(np.asarray(g)))
    assert float(to_natural(m, z)[1]) == 1.0


def test_maps_accept_the_recorded_scale_labels():
    z = np.array([[0.3, -1.2, 3.0]])
    labels = scale_labels(Mixed())
    assert labels == ("log", "logit", "log")
    assert np.array_equal(to_natural(list(labels), z), to_natural(Mixed(), z))
    assert np.array_equal(to_unconstrained(labels, np.exp(z)), to_unconstrained(Mixed(), np.exp(z)))
