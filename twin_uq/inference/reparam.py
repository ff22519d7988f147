"""How a fit parameterises its diagonal random effects, chosen when the fit is prepared.

The data of a fit (:class:`~twin_uq.inference.likelihood.FitData`) say what was observed;
the parameterisation of the random effects says how the sampler sees them. The two are
kept apart as NumPyro keeps its ``reparam`` handlers apart from models: the
:class:`Centering` of a fit is built by :func:`~twin_uq.inference.prepare.prepare_fit`
(or restored by ``load_posterior``) and passed next to the data to the NumPyro program,
the PyMC model and the post-processing, which all map the latents ``z`` to ``log theta``
through it. Why and how the random effects are centred or whitened:
:mod:`twin_uq.inference.centering`.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from twin_uq.inference.linearisation import AutoCentering
from twin_uq.inference.whitening import shrinkage_weights, whitened_log_theta

__all__ = ["Centering", "individual_log_theta"]


def individual_log_theta(
    mean: Float[Array, "P K"],
    omega: Float[Array, " K"],
    z: Float[Array, "P K"],
    centering: Float[Array, "P K"],
) -> Float[Array, "P K"]:
    """Map the partially centred latent ``z ~ N(w mean, ω^(2w))`` to ``log theta``.

    ``w`` is a fixed ``centering`` weight (see PopulationModel.centering); ``"auto"`` uses
    :func:`twin_uq.inference.centering.whitened_log_theta` instead.
    """
    return mean + omega ** (1.0 - centering) * (z - centering * mean)


class Centering(eqx.Module):
    """The parameterisation of a fit's diagonal random effects (a pytree of arrays).

    Attributes
    ----------
    weights
        ``(P, K)`` partial-centring weight of each random effect (0 non-centred,
        1 centred): the fixed weights of ``centering=<number>``, or with ``auto`` the
        shrinkage weights at the starting between-patient SD (what a fit reports).
    auto
        With ``centering="auto"``: each patient's likelihood linearised at its mode
        (:class:`~twin_uq.inference.linearisation.AutoCentering`), against which the
        random effects are whitened during sampling; ``None`` for fixed weights (also for
        correlated random effects, which are non-centred).
    """

    weights: Float[Array, "P K"]
    auto: AutoCentering | None = None

    @property
    def whitened(self) -> bool:
        """Whether the latents are whitened (``"auto"``), not partially centred."""
        return self.auto is not None

    def latent_prior(self, mean, omega, add, prop, xp=jnp):
        """Parameters of the latents' prior at the population ``(mean, omega)``.

        Fixed weights: ``(w·mean, ω^w)``, independent normals. Whitened:
        ``(loc, U)`` of ``N(loc, Uᵀ U)`` at the residual SDs ``(add, prop)`` (``(O,)``),
        see :func:`~twin_uq.inference.whitening.latent_prior`. ``xp`` is the array
        namespace (``pytensor.tensor`` for the PyMC model).
        """
        if self.auto is None:
            return self.weights * mean, omega**self.weights
        return self.auto.latent_prior(mean, omega, add, prop, xp)

    def log_theta(self, mean, omega, z, prior, xp=jnp):
        """``(P, K)`` ``log theta`` of latents ``z`` drawn from ``prior`` (:meth:`latent_prior`)."""
        if self.auto is None:
            return individual_log_theta(mean, omega, z, self.weights)
        loc, upper = prior
        return whitened_log_theta(mean, omega, z, loc, upper, xp)

    def weights_at(self, omega: Float[Array, " K"]) -> Float[Array, "P K"]:
        """The partial-centring weights at the between-patient SD ``omega``.

        Fixed weights (``centering`` a number, or a fit saved before the random effects
        were whitened) are returned as they are; with ``"auto"`` they are the shrinkage
        weights at ``omega`` (``diag`` of ``1 - V Ω⁻²``), reported to say how centred each
        patient's latent is; sampling uses :meth:`latent_prior`.
        """
        if self.auto is None:
            return self.weights
        information, _ = self.auto.canonical(self.auto.add, self.auto.prop)
        return shrinkage_weights(information, omega, xp=jnp)
