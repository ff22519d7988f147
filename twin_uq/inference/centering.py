"""Data-informed parameterisation of the random effects (``centering="auto"``).

A patient's random effect samples best *centred* when their data pin it down and
*non-centred* when the population does (Papaspiliopoulos, Roberts & Sköld 2007). For a
Gaussian random effect with prior variance ``ω²`` and data precision ``I`` the optimal
partial-centring weight is the posterior shrinkage ``w = ω² I / (1 + ω² I)``; with several
parameters, ``w_k = 1 - V_kk / ω_k²`` with ``V = (F + diag(1/ω²))⁻¹`` and ``F`` the
expected Fisher information matrix of the patient's observations about the log
parameters (:func:`shrinkage_weights`, what a fit reports as its centring weights).

Sampling goes one step further and *whitens* each patient's random effects against a
Gaussian approximation of its likelihood, ``exp(-½ θᵀ F θ + hᵀ θ)`` with ``h = F θ̂``
(:class:`AutoCentering`, :func:`latent_prior`, :func:`whitened_log_theta`)::

    I + Ω F Ω = U Uᵀ  (U upper triangular),   loc = U⁻¹ Ω (F mean - h),
    z ~ N(loc, Uᵀ U),   log theta = mean + Ω U⁻ᵀ (z - loc).

For every ``F`` and ``h`` this is exactly ``log theta ~ N(mean, Ω²)``; when the likelihood
is that Gaussian, the posterior of ``z`` is ``N(0, I)`` whatever the population parameters
``(mean, ω)``, so NUTS sees the population posterior beside independent standard normals.
``F`` and ``h`` come from the likelihood linearised once, at each patient's mode, and are
re-evaluated at the sampled residual SDs (:meth:`AutoCentering.canonical`): ``F`` scales
as ``1/σ²``, and with ``F`` fixed a residual SD moving along a ridge (the additive and
proportional parts of a combined error model) changed the posterior scale of every
well-observed latent with it.
A patient without data is non-centred (``F = 0``: ``z = η``); a small sampled ``ω``
makes every patient non-centred, so no funnel is left behind; parameters that trade off
(``p2`` and ``SI`` of the Bergman model) are decorrelated by the whole matrix.

Measured 2026-12-01 (8493aa3): on the 12-patient Bergman recovery fit (4 × (1000+1000), defaults)
partial centring with weights following ``ω`` gave max R-hat 1.014 (``omega[Gb]``, bulk
ESS 313), the whitened latents 1.003 (smallest bulk ESS 920) with a third of the leapfrog
steps (22 against 68 per iteration at 2 × (500+500)); on the 16-patient oral test cohort
(4 × (500+500), seeds 0–3) re-evaluating ``F`` at the sampled residual SDs took the
divergences from 1, 1, 0, 1 to 0 and the smallest bulk ESS from 169–401 to 728–1240; on
the 100-patient oral recovery fit (4 × (1000+1000)) the smallest bulk ESS is 4147
(2284 with 2688af6's partial centring). Measuring the centred part from 0 instead of from the
patient's estimate, as a first version did, had let a change of ``ω`` shift every
patient by ``Δw · mean`` and cut the smallest population ESS of a 100-patient oral fit
from 640 to 120; ``h`` puts that reference where the data are.

``F`` is evaluated before the fit, at each patient's approximate mode under a population
distribution whose mean is estimated with the modes where they sit more than 2 ``ω``
from the priors' medians (EM rounds; elsewhere the medians) and at
a residual SD estimated from the residuals there (:func:`centering_point`): ``F`` scales
with ``1/σ²``, so the residual SD must come from the data, not from the prior, and so
must the population the modes are shrunk towards. Measured 2026-12-08: on a 32-patient
oral cohort whose typical V (20 L) is 1.3 prior SDs from the default (50 L), modes under
the fixed starting prior (``ω`` 0.15) stayed at 29-63 L, the proportional SD came out
at 1.1 (truth 0.1), and the whitening linearised there left a funnel along ``ω_CL``
(13-24 divergences at the default settings); with the mean of V estimated, the point
lands at the data (typical V 16.8 L, SD 0.117) and the same fits have none. It is a
heuristic for the *parameterisation* only; the posterior does not depend on it.

Derivatives are central finite differences of the noise-free predictions (step ``1e-3`` on
the log scale). A forward solve is all the model needs to provide, and the precision is
ample for a parameterisation. Censored observations are left out (their information is
smaller), which errs towards the non-centred form. A patient whose solve fails at the
population median gets ``F = 0, h = 0`` (non-centred).
"""

from __future__ import annotations

from collections.abc import Sequence

from twin_uq.inference.centering_point import (
    CenteringPoint,
    centering_point,
    fisher_information,
    population_step,
)
from twin_uq.inference.linearisation import AutoCentering
from twin_uq.inference.reparam import Centering
from twin_uq.inference.whitening import latent_prior, shrinkage_weights, whitened_log_theta

# The parts live in one module each; this module keeps the names of the method in one
# place: whitening (the algebra of I + Ω F Ω; its triangular solves are imported from
# there), linearisation (AutoCentering), centering_point (the modes and residual SD before
# the fit), reparam (Centering: what a fit samples with).
__all__ = [
    "CENTERING_DEFAULT_MESSAGE",
    "AutoCentering",
    "Centering",
    "CenteringDefaultWarning",
    "CenteringPoint",
    "centering_point",
    "default_centering",
    "fisher_information",
    "latent_prior",
    "population_step",
    "shrinkage_weights",
    "whitened_log_theta",
]


class CenteringDefaultWarning(FutureWarning):
    """``PopulationModel(centering=...)`` was not given: the default is now ``"auto"``.

    Until this release :class:`PopulationModel` defaulted to 0 (non-centred) while
    :func:`twin_uq.fit` with flat keywords defaulted to ``"auto"``, so the two spellings of
    one fit gave different draws. Both now use ``"auto"`` (0 with ``iov``). Pass
    ``centering`` explicitly to silence this: ``"auto"`` for the new default, ``0`` for
    the draws the earlier default gave (the posterior is the same model either way).
    """


CENTERING_DEFAULT_MESSAGE = (
    "PopulationModel(centering=...) not given: the default is now 'auto', as in "
    "tq.fit(model, cohort) (earlier releases used 0, non-centred, here). The posterior is "
    "the same model; the draws for a seed differ from a fit made with the earlier default. "
    "Pass centering='auto' to silence this, or centering=0 for the earlier draws."
)


def default_centering(iov: Sequence[str]) -> float | str:
    """The default centring: ``"auto"``, or 0 with inter-occasion variability.

    ``"auto"`` linearises each patient's likelihood at one parameter vector, which
    occasion effects break (see :mod:`twin_uq.inference.centering`).
    """
    return 0.0 if tuple(iov) else "auto"
