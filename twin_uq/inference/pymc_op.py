"""The JAX cohort log-likelihood as PyTensor Ops (value and vector-Jacobian product).

PyMC sees the whole ODE part of a cohort fit as one Op: ``loglik(theta, add, prop, nu)``
returns the summed log-likelihood of every observation of every patient, computed by
:func:`twin_uq.inference.likelihood.cohort_loglik` — the same function the NumPyro backend
scores. Its gradient is a second Op that evaluates ``jax.vjp`` of the same function. Both
are jit-compiled once per (structure, array shapes). Nothing of the ODE is rewritten in
PyTensor.

Three ways PyTensor can run these Ops:

* the default C/Python linker (PyMC's own NUTS) calls ``perform``, i.e. the jitted JAX
  functions;
* PyTensor's JAX linker (``pm.sample(nuts_sampler="numpyro")``, nutpie with
  ``backend="jax"``) uses the ``jax_funcify`` registrations below, which hand it the JAX
  function itself, so the whole log density is one JAX program and ``jax.grad`` works
  through it;
* the Numba linker (nutpie's default) has no Numba version of the Op and falls back to
  object mode, calling ``perform``.

The Ops pickle by value (model file path, solver settings, numpy arrays) so that PyMC can
send them to worker processes started with ``forkserver``/``spawn`` (JAX is not fork-safe).
"""

from __future__ import annotations

import dataclasses
import inspect
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.jax.dispatch import jax_funcify

from twin_uq.inference.likelihood import FitData, ResidualParams, cohort_loglik
from twin_uq.inference.numpyro_model import ProgramStructure

__all__ = ["CohortLoglikGradOp", "CohortLoglikOp", "cohort_loglik_total"]


def cohort_loglik_total(
    structure: ProgramStructure,
    data: FitData,
    theta: jax.Array,
    add: jax.Array,
    prop: jax.Array,
    nu: jax.Array,
) -> jax.Array:
    """Summed log-likelihood of the cohort (scalar) for ``theta`` (P, K) and residual SDs.

    A failed solve gives ``-inf`` (see :func:`cohort_loglik`).
    """
    if not structure.student_t:
        # nu is a constant then; the Student-t CDF has no derivative in nu (betainc).
        nu = jax.lax.stop_gradient(nu)
    ll, _ = cohort_loglik(
        structure.model, structure.settings, theta, data, ResidualParams(add=add, prop=prop, nu=nu)
    )
    return jnp.sum(ll)


@partial(jax.jit, static_argnums=0)
def _value(structure, data, theta, add, prop, nu):
    return cohort_loglik_total(structure, data, theta, add, prop, nu)


@partial(jax.jit, static_argnums=0)
def _vjp(structure, data, theta, add, prop, nu, g):
    value, pullback = jax.vjp(
        lambda *a: cohort_loglik_total(structure, data, *a), theta, add, prop, nu
    )
    grads = pullback(g)
    # At a failed solve the value is -inf and the sampler rejects the point; keep the
    # gradient finite so no NaN reaches the mass-matrix adaptation.
    return tuple(jnp.where(jnp.isfinite(value), gr, 0.0) for gr in grads)


def _model_reference(model):
    # Built-in and user model files are re-loaded by path in a worker process; a model
    # class defined elsewhere (a notebook, a test) is pickled by value.
    module = getattr(type(model), "__module__", "")
    if module.startswith("twin_uq_user_model_"):
        try:
            return Path(inspect.getfile(type(model)))
        except (TypeError, OSError):
            return model
    return model


def _rebuild(cls, model_ref, structure_fields, data):
    from twin_uq.model.load import load_model

    model = load_model(model_ref) if isinstance(model_ref, Path) else model_ref
    structure = ProgramStructure(model=model, **structure_fields)
    return cls(structure, jax.tree.map(jnp.asarray, data))


class _JaxCohortOp(Op):
    """Common state and pickling of the two Ops (identity equality: one Op per fit)."""

    def __init__(self, structure: ProgramStructure, data: FitData):
        self.structure = structure
        self.data = data
        self.n_patients = int(data.n_patients)
        self.n_params = int(structure.n_params)
        self.n_outputs = int(data.error_code.shape[0])

    def __reduce__(self):
        fields = {
            f.name: getattr(self.structure, f.name)
            for f in dataclasses.fields(self.structure)
            if f.name != "model"
        }
        data = jax.tree.map(np.asarray, self.data)
        return (_rebuild, (type(self), _model_reference(self.structure.model), fields, data))

    def _inputs(self, theta, add, prop, nu):
        theta = pt.as_tensor_variable(theta, dtype="float64")
        add = pt.as_tensor_variable(add, dtype="float64")
        prop = pt.as_tensor_variable(prop, dtype="float64")
        nu = pt.as_tensor_variable(nu, dtype="float64")
        for name, var, ndim in (
            ("theta", theta, 2),
            ("add", add, 1),
            ("prop", prop, 1),
            ("nu", nu, 0),
        ):
            if var.ndim != ndim:
                raise ValueError(
                    f"{type(self).__name__}: {name} must have {ndim} dims, got {var.ndim}."
                )
        return [theta, add, prop, nu]


class CohortLoglikOp(_JaxCohortOp):
    """``loglik(theta (P, K), add (O,), prop (O,), nu ()) -> ()``: the cohort log-likelihood.

    Parameters
    ----------
    structure
        The fit's :class:`ProgramStructure` (model and solver settings).
    data
        The fit's :class:`FitData`.
    """

    def make_node(self, theta, add, prop, nu) -> Apply:
        inputs = self._inputs(theta, add, prop, nu)
        return Apply(self, inputs, [pt.scalar(dtype="float64")])

    def perform(self, node, inputs, output_storage) -> None:
        theta, add, prop, nu = inputs
        value = _value(self.structure, self.data, theta, add, prop, nu)
        output_storage[0][0] = np.asarray(value, dtype=np.float64)

    def infer_shape(self, node, input_shapes):
        return [()]

    def pullback(self, inputs, outputs, cotangents):
        grad_op = CohortLoglikGradOp(self.structure, self.data)
        return grad_op(*inputs, cotangents[0])


class CohortLoglikGradOp(_JaxCohortOp):
    """``g * d loglik / d (theta, add, prop, nu)``, by ``jax.vjp`` of the same function."""

    def make_node(self, theta, add, prop, nu, g) -> Apply:
        inputs = self._inputs(theta, add, prop, nu)
        g = pt.as_tensor_variable(g, dtype="float64")
        return Apply(self, [*inputs, g], [x.type() for x in inputs])

    def perform(self, node, inputs, output_storage) -> None:
        theta, add, prop, nu, g = inputs
        grads = _vjp(self.structure, self.data, theta, add, prop, nu, g)
        for store, gr, x in zip(output_storage, grads, inputs[:4], strict=True):
            store[0] = np.asarray(gr, dtype=np.float64).reshape(np.shape(x))

    def infer_shape(self, node, input_shapes):
        return list(input_shapes[:4])


@jax_funcify.register(CohortLoglikOp)
def _jax_loglik(op, node=None, **kwargs):
    structure, data = op.structure, op.data

    def loglik(theta, add, prop, nu):
        return cohort_loglik_total(structure, data, theta, add, prop, nu)

    return loglik


@jax_funcify.register(CohortLoglikGradOp)
def _jax_loglik_grad(op, node=None, **kwargs):
    structure, data = op.structure, op.data

    def loglik_grad(theta, add, prop, nu, g):
        _, pullback = jax.vjp(
            lambda *a: cohort_loglik_total(structure, data, *a), theta, add, prop, nu
        )
        return pullback(g)

    return loglik_grad
