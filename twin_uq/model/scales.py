"""The scale of each model parameter: the map between natural values and the fit's latent scale.

Every individual parameter is modelled as a Normal variable ``z`` on its own unconstrained
scale (the population typical value, covariate effects and between-patient variability all
act on ``z``) and reaches the model on the natural scale:

* ``scale="log"`` (log-normal, the default): ``theta = exp(z)``, ``z = log(theta)``;
* ``scale="logit"`` (logit-normal, fractions in (0, 1)): ``theta = 1 / (1 + exp(-z))``,
  ``z = log(theta) - log(1 - theta)``.

These two functions are the only place that maps between the scales; the inference code,
posterior summaries, twins and simulation all go through them. For a model whose parameters
are all log-normal they are exactly ``exp`` and ``log`` (same operation, same numbers).
Arrays are ``(..., K)`` with the parameters in declaration order; NumPy in, NumPy out;
JAX in (including tracers), JAX out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from twin_uq.model.base import Model, Parameter

__all__ = [
    "fixed_index",
    "latent_typical",
    "logit_mask",
    "random_index",
    "scale_labels",
    "to_natural",
    "to_unconstrained",
]


def latent_typical(parameter: Parameter) -> float:
    """A parameter's declared typical value on its latent scale (``log`` or ``logit``)."""
    if parameter.scale == "logit":
        return math.log(parameter.typical) - math.log1p(-parameter.typical)
    return float(np.log(parameter.typical))


def logit_mask(model: Model) -> np.ndarray:
    """``(K,)`` bool: which parameters are logit-normal (declaration order)."""
    return np.array([p.scale == "logit" for p in model.parameters], dtype=bool)


def scale_labels(model: Model) -> tuple[str, ...]:
    """``"log"`` or ``"logit"`` per parameter, in declaration order."""
    return tuple(p.scale for p in model.parameters)


def random_index(model: Model) -> np.ndarray:
    """Positions of the parameters with between-patient variability (``bsv=True``)."""
    return np.array([k for k, p in enumerate(model.parameters) if p.bsv], dtype=np.int32)


def fixed_index(model: Model) -> np.ndarray:
    """Positions of the fixed-effect parameters (``bsv=False``), shared by all patients."""
    return np.array([k for k, p in enumerate(model.parameters) if not p.bsv], dtype=np.int32)


def _is_numpy(x: object) -> bool:
    return not isinstance(x, jax.Array)


def _mask(model: Model | Sequence[str]) -> np.ndarray:
    if isinstance(model, Model):
        return logit_mask(model)
    return np.array([s == "logit" for s in model], dtype=bool)


def to_natural(model: Model | Sequence[str], z: np.ndarray | jax.Array) -> np.ndarray | jax.Array:
    """Natural-scale parameters from latent ``z`` of shape ``(..., K)``.

    ``exp`` for log-normal parameters, the logistic function for logit-normal ones.
    ``model`` is the model, or its parameters' scales (:func:`scale_labels`, e.g. as a
    fit's ``idata.attrs["parameter_scales"]`` stores them).
    """
    mask = _mask(model)
    if _is_numpy(z):
        z = np.asarray(z, dtype=float)
        if not mask.any():
            return np.exp(z)
        return np.where(mask, special.expit(z), np.exp(np.where(mask, 0.0, z)))
    if not mask.any():
        return jnp.exp(z)
    # The unselected branch gets a harmless argument so that neither it nor its gradient
    # overflows (a logit of 800 must not make exp(800) = inf and a NaN gradient).
    return jnp.where(mask, jax.nn.sigmoid(z), jnp.exp(jnp.where(mask, 0.0, z)))


def to_unconstrained(
    model: Model | Sequence[str], theta: np.ndarray | jax.Array
) -> np.ndarray | jax.Array:
    """Latent ``z`` from natural-scale parameters ``theta`` of shape ``(..., K)``.

    ``log`` for log-normal parameters, ``logit`` for logit-normal ones (values of 0 or 1
    map to ``-inf`` / ``inf``, as ``log(0)`` does). ``model`` as in :func:`to_natural`.
    """
    mask = _mask(model)
    if _is_numpy(theta):
        theta = np.asarray(theta, dtype=float)
        if not mask.any():
            return np.log(theta)
        with np.errstate(divide="ignore"):
            return np.log(theta) - np.log1p(-np.where(mask, theta, 0.0))
    if not mask.any():
        return jnp.log(theta)
    return jnp.log(theta) - jnp.log1p(-jnp.where(mask, theta, 0.0))
