"""The population posterior as seen by one patient: per-draw prior mean, scale and residuals.

Extracted once from a :class:`~twin_uq.posterior.CohortPosterior` so that twins can
predict, be updated with new data, or be created for a brand-new patient without touching
the cohort fit again. Two-stage fits use the same flat draws for their stage-2 priors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.errors import InputError
from twin_uq.inference.numpyro_model import population_mean
from twin_uq.inference.postprocess import residuals_of_draws, tau_of_draws


class CohortPosterior(Protocol):
    """What these functions read of a :class:`~twin_uq.posterior.CohortPosterior`."""

    model: Any

    @property
    def covariate_design(self) -> Any: ...

    @property
    def population_model(self) -> Any: ...

    @property
    def structure(self) -> Any: ...

    @property
    def posterior(self) -> Any: ...


__all__ = [
    "PopulationDraws",
    "cohort_population_means",
    "flat_draws",
    "frozen",
    "model_covariates",
    "patient_population",
    "population_chol",
    "population_for_covariates",
    "population_scale",
]

_POP_VARS = ("mu", "omega", "beta", "sigma_add", "sigma_prop", "nu", "corr", "omega_occ", "tau")


def frozen(x: np.ndarray) -> np.ndarray:
    """A read-only copy of ``x`` (views handed to users cannot alter the fit)."""
    x = np.array(x, copy=True)
    x.setflags(write=False)
    return x


@dataclass(frozen=True, eq=False)
class PopulationDraws:
    """The population distribution of one patient's log parameters, draw by draw.

    At posterior draw ``s``: ``log theta ~ Normal(mean[s], chol[s] @ chol[s].T)``; the
    residual error parameters of that draw are ``add[s]``, ``prop[s]``, ``nu[s]``.

    Attributes
    ----------
    mean
        ``(S, K)`` population mean of log theta for this patient (typical values, covariate
        effects, allometry).
    chol
        ``(S, K, K)`` Cholesky factor of the between-patient covariance of log theta.
    add, prop
        ``(S, O)`` additive and proportional residual SDs per output (0 where unused).
    nu
        ``(S,)`` Student-t degrees of freedom (1e6 when unused).
    tau
        ``(S, O)`` Ornstein-Uhlenbeck residual correlation times (time units; 0 at outputs
        without one), or ``None``: independent residuals.
    """

    mean: np.ndarray
    chol: np.ndarray
    add: np.ndarray
    prop: np.ndarray
    nu: np.ndarray
    tau: np.ndarray | None = None

    @property
    def n_draws(self) -> int:
        """Number of population posterior draws ``S``."""
        return self.mean.shape[0]

    def sample_log_theta(self, seed: int) -> np.ndarray:
        """One log-theta per draw from the population distribution, ``(S, K)``."""
        z = np.random.default_rng(seed).standard_normal(self.mean.shape)
        return self.mean + np.einsum("skl,sl->sk", self.chol, z)


def flat_draws(post: CohortPosterior) -> dict[str, np.ndarray]:
    """Population variables with (chain, draw) flattened to one leading draw axis ``S``.

    ``mu``, ``omega`` ``(S, K)``, ``beta`` ``(S, E)``, ``sigma_*`` ``(S, O')``, ``nu``
    ``(S,)``, ``corr`` ``(S, K, K)``, as far as the fit has them.
    """
    ds = post.posterior
    out = {}
    for name in _POP_VARS:
        if name in ds:
            v = ds[name]
            rest = [d for d in v.dims if d not in ("chain", "draw")]
            v = v.transpose("chain", "draw", *rest).values
            out[name] = v.reshape(-1, *v.shape[2:])
    return out


def _residuals(post: CohortPosterior, draws: Mapping[str, np.ndarray]):
    return residuals_of_draws(post.structure, draws, len(post.model.outputs))


def population_scale(
    post: CohortPosterior, draws: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What every patient shares at each draw: ``(chol, add, prop, nu)``, read-only.

    ``chol`` ``(S, K, K)`` of the between-patient covariance, residual SDs ``(S, O)``,
    Student-t ``nu`` ``(S,)``.
    """
    add, prop, nu = _residuals(post, draws)
    return frozen(population_chol(draws)), frozen(add), frozen(prop), frozen(nu)


def _population_draws(
    post: CohortPosterior,
    draws: Mapping[str, np.ndarray],
    mean: np.ndarray,
    scale: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> PopulationDraws:
    chol, add, prop, nu = population_scale(post, draws) if scale is None else scale
    tau = tau_of_draws(post.structure, draws, len(post.model.outputs))
    tau = None if tau is None else frozen(tau)
    return PopulationDraws(mean=frozen(mean), chol=chol, add=add, prop=prop, nu=nu, tau=tau)


def population_chol(draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(S, K, K)`` Cholesky factor of the between-patient covariance of log theta."""
    omega = draws["omega"]
    if "corr" in draws:
        return np.linalg.cholesky(draws["corr"]) * omega[:, :, None]
    return np.einsum("sk,kl->skl", omega, np.eye(omega.shape[1]))


def cohort_population_means(post: CohortPosterior, draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(S, P, K)`` population mean of every fitted patient's log parameters, draw by draw."""
    data = post.covariate_design.as_arrays(post.model.parameter_names)
    K = len(post.model.parameters)
    mu = jnp.asarray(draws["mu"])
    beta = jnp.asarray(draws["beta"]) if "beta" in draws else jnp.zeros((mu.shape[0], 0))
    return np.asarray(jax.vmap(lambda m, b: population_mean(m, b, data, K))(mu, beta))


def patient_population(
    post: CohortPosterior,
    index: int,
    draws: Mapping[str, np.ndarray] | None = None,
    means: np.ndarray | None = None,
    scale: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> PopulationDraws:
    """The population distribution of fitted patient ``index`` at every posterior draw.

    ``draws`` (:func:`flat_draws`), ``means`` (:func:`cohort_population_means`) and
    ``scale`` (:func:`population_scale`) may be passed in when several patients are
    extracted, so that they are computed once, not once per patient.
    """
    draws = flat_draws(post) if draws is None else draws
    means = cohort_population_means(post, draws) if means is None else means
    return _population_draws(post, draws, means[:, index], scale)


def design_row(
    post: CohortPosterior, covariates: Mapping[str, object]
) -> tuple[np.ndarray, np.ndarray]:
    """Design-matrix row and allometric offsets of a new patient's covariates.

    Uses the cohort's centring and scaling (continuous) and reference levels (categorical),
    so the new patient is placed on the fit's covariate scale.
    """
    design = post.covariate_design
    model = post.model
    row = np.zeros(len(design.terms))
    for j, term in enumerate(design.terms):
        name, _, level = term.partition("[")
        if name not in covariates:
            raise InputError(
                f"The fit uses covariate {name!r} (effect {term}); give it for the new patient."
            )
        value = covariates[name]
        if level:
            row[j] = float(str(value) == level[:-1])
        else:
            row[j] = (float(value) - design.centre[j]) / design.scale[j]  # type: ignore[arg-type]
    allo = np.zeros(len(model.parameters))
    for a in model.allometric:
        x = float(
            covariates.get(a.covariate, model.covariate_defaults.get(a.covariate, a.reference))
        )  # type: ignore[arg-type]
        if x <= 0:
            raise InputError(f"Allometric covariate {a.covariate!r} must be > 0, got {x}.")
        allo[model.parameter_names.index(a.parameter)] += a.exponent * np.log(x / a.reference)
    return row, allo


def population_for_covariates(
    post: CohortPosterior, covariates: Mapping[str, object]
) -> PopulationDraws:
    """The population distribution of a new patient with the given covariates."""
    draws = flat_draws(post)
    row, allo = design_row(post, covariates)
    mean = draws["mu"] + allo[None, :]
    if "beta" in draws:
        design = post.covariate_design
        names = post.model.parameter_names
        for e, (par, term) in enumerate(design.effects):
            mean[:, names.index(par)] += draws["beta"][:, e] * row[design.terms.index(term)]
    return _population_draws(post, draws, mean)


def model_covariates(post: CohortPosterior, covariates: Mapping[str, object]) -> np.ndarray:
    """The model's own covariate vector (``model.covariates`` order) with defaults."""
    model = post.model
    out = []
    for name in model.covariates:
        if name in covariates and not pd.isna(covariates[name]):  # type: ignore[call-overload]
            out.append(float(covariates[name]))  # type: ignore[arg-type]
        elif name in model.covariate_defaults:
            out.append(float(model.covariate_defaults[name]))
        else:
            raise InputError(f"Model {model.name!r} needs covariate {name!r} for the new patient.")
    return np.asarray(out, dtype=float)
