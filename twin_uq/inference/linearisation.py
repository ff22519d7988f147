"""The likelihood linearised at each patient's mode: what ``centering="auto"`` samples with.

:class:`AutoCentering` holds each patient's sensitivities and residuals at its mode and
gives, at any residual SD, the canonical form ``(F, h)`` of the Gaussian approximation of
its likelihood and from it the prior of the whitened latents
(:func:`~twin_uq.inference.whitening.latent_prior`). It is built by
:func:`twin_uq.inference.centering_point.centering_point`; why: see
:mod:`twin_uq.inference.centering`.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from twin_uq._types import CohortParams, PerObservation, PerOutput
from twin_uq.inference.whitening import latent_prior

__all__ = ["AutoCentering"]


class AutoCentering(eqx.Module):
    """What ``centering="auto"`` needs during sampling.

    Each patient's likelihood linearised at its approximate mode, on the error model's
    own scale (log scale for ``lognormal``).

    At residual SDs ``(add, prop)`` the observation variances are
    ``var = var_add · add² + var_prop · prop²``, and :meth:`canonical` gives the Gaussian
    approximation of the likelihood in canonical form, ``exp(-½ θᵀ F θ + hᵀ θ)`` over
    ``θ = log theta``, with ``F = Σ g gᵀ / var`` and ``h = F θ0 + Σ g e / var``
    (Gauss–Newton). ``F`` and ``h`` therefore follow the sampled residual SDs: in the
    linear-Gaussian case that keeps the whitened latents independent of the residual SD
    as well as of the population parameters.

    Attributes
    ----------
    sensitivity
        ``(P, K, N)`` ``g = d f / d log theta`` at the mode, 0 at unused observations
        (padding, censored, failed solve).
    residual
        ``(P, N)`` ``e = y - f`` at the mode, 0 at unused observations.
    point
        ``(P, K)`` the mode ``θ0``.
    var_add, var_prop
        ``(P, N)`` coefficients of ``add²`` and ``prop²`` in each observation's variance
        (``prop²`` enters as ``f² prop²``, or ``prop²`` for ``lognormal``); 0 where unused.
    unused
        ``(P, N)`` 1.0 at unused observations (keeps their variance away from 0).
    output
        ``(P, N)`` output index of each observation.
    add, prop
        ``(O,)`` the residual SDs estimated at the modes (where the reported centring
        weights are evaluated).
    unit_information, unit_vector, unit_scale
        Optional (:meth:`with_unit_scale`), derived from the fields above: when each
        output's variance has one term (``add`` or ``prop``, not ``combined``), ``F`` and
        the data part of ``h`` are sums over outputs of ``(P, O, K, K)`` and ``(P, O, K)``
        terms at unit SD divided by that output's SD squared; ``unit_scale`` names the
        term of each output (``""`` where an output has no used observation).
    """

    sensitivity: Float[Array, "P K N"]
    residual: PerObservation
    point: CohortParams
    var_add: PerObservation
    var_prop: PerObservation
    unused: PerObservation
    output: Array
    add: PerOutput
    prop: PerOutput
    unit_information: Float[Array, "P O K K"] | None = None
    unit_vector: Float[Array, "P O K"] | None = None
    unit_scale: tuple[str, ...] = eqx.field(static=True, default=())

    def with_unit_scale(self) -> AutoCentering:
        """These arrays with the unit-SD terms of :meth:`canonical` precomputed, if exact.

        Exact when no output has a combined error model (both variance terms used); the
        canonical form at sampled SDs is then a weighted sum of ``O`` precomputed terms
        instead of a sum over every observation (measured on the 100-patient Bergman
        cohort: about a fifth of the whole NumPyro potential's gradient). Otherwise
        returned unchanged.
        """
        var_add, var_prop = np.asarray(self.var_add), np.asarray(self.var_prop)
        output = np.asarray(self.output)
        n_out = int(np.shape(self.add)[0])
        scale, coefficient = [], np.zeros_like(var_add)
        for o in range(n_out):
            here = output == o
            has_add, has_prop = bool(np.any(var_add[here] > 0)), bool(np.any(var_prop[here] > 0))
            if has_add and has_prop:
                return self
            scale.append("add" if has_add else "prop" if has_prop else "")
            coefficient = np.where(here, var_add if has_add else var_prop, coefficient)
        used = coefficient > 0
        inv = np.where(used, 1.0 / np.where(used, coefficient, 1.0), 0.0)  # (P, N)
        g = np.asarray(self.sensitivity)  # (P, K, N)
        onehot = (output[..., None] == np.arange(n_out)) * inv[..., None]  # (P, N, O)
        information = np.einsum("pkn,pln,pno->pokl", g, g, onehot)
        vector = np.einsum("pkn,pn,pno->pok", g, np.asarray(self.residual), onehot)
        return dataclasses.replace(
            self,
            unit_information=jnp.asarray(information),
            unit_vector=jnp.asarray(vector),
            unit_scale=tuple(scale),
        )

    def canonical(self, add, prop, xp=jnp):
        """``(F, h)``: ``(P, K, K)`` information and ``(P, K)`` vector at residual SDs ``(O,)``."""
        if self.unit_information is not None:
            ones = xp.ones_like(add[0])
            sd = [
                add[o] if c == "add" else prop[o] if c == "prop" else ones
                for o, c in enumerate(self.unit_scale)
            ]
            w = xp.stack(sd) ** -2  # (O,)
            F = (self.unit_information * w[:, None, None]).sum(axis=1)
            h = (F * self.point[:, None, :]).sum(axis=-1) + (self.unit_vector * w[:, None]).sum(
                axis=1
            )
            return F, h
        a = add[self.output]
        b = prop[self.output]
        var = self.var_add * a**2 + self.var_prop * b**2 + self.unused
        # A used observation of variance 0 (proportional error at a prediction of exactly 0,
        # e.g. a sample before a lag time, where g is 0 as well) is given no information,
        # as with_unit_scale does: 0 ** -0.5 made F and h NaN and stalled the sampler. F and
        # h only parameterise the random effects; the posterior stays exact.
        inv_sd = xp.where(var > 0, xp.where(var > 0, var, 1.0) ** -0.5, 0.0)
        S = self.sensitivity * inv_sd[:, None, :]
        F = (S[:, :, None, :] * S[:, None, :, :]).sum(axis=-1)
        h = (F * self.point[:, None, :]).sum(axis=-1) + (
            S * (self.residual * inv_sd)[:, None, :]
        ).sum(axis=-1)
        return F, h

    def as_numpy(self) -> AutoCentering:
        """The same arrays as NumPy arrays, for evaluating outside ``jit`` with ``xp=np``.

        Run op by op in JAX, the unrolled algebra would compile every small operation.
        """
        return jax.tree.map(np.asarray, self)

    def latent_prior(self, mean, omega, add, prop, xp=jnp):
        """:func:`latent_prior` at the residual SDs ``(add, prop)``: ``(loc, U)``."""
        F, h = self.canonical(add, prop, xp)
        return latent_prior(F, h, mean, omega, xp)
