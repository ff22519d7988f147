"""Assemble the arrays of a fit from a cohort and a population model.

Shared by every backend and by reloading a saved fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from twin_uq.data import Cohort
from twin_uq.inference.likelihood import FitData
from twin_uq.inference.numpyro_model import PriorArrays, ProgramStructure
from twin_uq.inference.population import CovariateDesign, PopulationModel, build_covariate_design
from twin_uq.model.base import SolverSettings

__all__ = ["PreparedFit", "centering_weights", "prepare_fit"]


@dataclass(frozen=True)
class PreparedFit:
    """A population model bound to a cohort: structure, data and priors for a backend."""

    spec: PopulationModel
    cohort: Cohort
    design: CovariateDesign
    structure: ProgramStructure
    data: FitData
    priors: PriorArrays

    def init_values(self) -> dict[str, np.ndarray]:
        """Starting point of every latent site: the population median of every patient.

        Random initial values sent ODE solvers into their step limit during warm-up; the
        population median is always a plausible patient.
        """
        s = self.structure
        P, K = self.data.n_patients, s.n_params
        mu = np.asarray(self.priors.mu_loc)
        omega = np.minimum(0.5 * np.asarray(self.priors.omega_scale), 0.3)
        values: dict[str, np.ndarray] = {"mu": mu, "omega": omega}
        mean = np.asarray(self.data.allometric) + mu
        if s.n_effects:
            values["beta"] = np.zeros(s.n_effects)
        if s.correlated:
            values["corr_chol"] = np.eye(K)
            values["z"] = np.zeros((P, K))
        else:
            values["z"] = np.asarray(self.data.centering) * mean
        if s.add_outputs:
            values["sigma_add"] = 0.5 * np.asarray(self.priors.add_scale)
        if s.prop_outputs:
            values["sigma_prop"] = 0.5 * np.asarray(self.priors.prop_scale)
        if s.student_t:
            values["nu"] = np.asarray(10.0)
        return values


def centering_weights(spec: PopulationModel, n_obs: np.ndarray) -> np.ndarray:
    """``(P, K)`` partial-centring weights (see :class:`PopulationModel`)."""
    K = len(spec.model.parameters)
    if spec.centering == "auto":
        w = n_obs / (n_obs + 2.0 * K)
    else:
        w = np.full(n_obs.shape, float(spec.centering))
    return np.repeat(w[:, None], K, axis=1)


def prepare_fit(
    spec: PopulationModel, cohort: Cohort, settings: SolverSettings | None = None
) -> PreparedFit:
    """Validate the cohort against the model and build every array the backends need."""
    model = spec.model
    settings = settings or model.solver
    arrays = cohort.for_model(model)
    design = build_covariate_design(spec, cohort)
    n_obs = np.asarray(arrays.obs_mask).sum(axis=1).astype(float)
    effect_param = np.array(
        [model.parameter_names.index(p) for p, _ in design.effects], dtype=np.int32
    )
    effect_term = np.array([design.terms.index(t) for _, t in design.effects], dtype=np.int32)
    data = FitData(
        arrays=arrays,
        design=jnp.asarray(design.matrix, dtype=float),
        effect_param=jnp.asarray(effect_param),
        effect_term=jnp.asarray(effect_term),
        allometric=jnp.asarray(design.allometric),
        error_code=jnp.asarray(spec.error_codes()),
        centering=jnp.asarray(centering_weights(spec, n_obs)),
    )
    structure = ProgramStructure.from_spec(spec, len(design.effects), settings)
    priors = PriorArrays.from_spec(spec, structure, design.effects)
    return PreparedFit(
        spec=spec, cohort=cohort, design=design, structure=structure, data=data, priors=priors
    )
