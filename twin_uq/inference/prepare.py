"""Assemble the arrays of a fit from a cohort and a population model.

Shared by every backend and by reloading a saved fit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from twin_uq.data import Cohort
from twin_uq.inference.centering import (
    AutoCentering,
    centering_point,
    shrinkage_weights,
)
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
        omega = _initial_omega(self.priors)
        values: dict[str, np.ndarray] = {"mu": mu, "omega": omega}
        mean = np.asarray(self.data.allometric) + mu
        if s.n_effects:
            values["beta"] = np.zeros(s.n_effects)
        if s.correlated:
            values["corr_chol"] = np.eye(K)
            values["z"] = np.zeros((P, K))
        if s.add_outputs:
            values["sigma_add"] = _initial_sigma(self.priors.add_scale)
        if s.prop_outputs:
            values["sigma_prop"] = _initial_sigma(self.priors.prop_scale)
        if s.student_t:
            values["nu"] = np.asarray(10.0)
        if not s.correlated:
            values["z"] = self._median_latents(mean, omega, values)
        return values

    def _median_latents(self, mean: np.ndarray, omega: np.ndarray, values: dict) -> np.ndarray:
        """``(P, K)`` latents that put every patient at the population median ``mean``."""
        auto = self.data.auto_centering
        if auto is None:
            return np.asarray(self.data.centering) * mean
        s = self.structure
        n_out = self.data.error_code.shape[0]
        add, prop = np.zeros(n_out), np.zeros(n_out)
        add[list(s.add_outputs)] = values.get("sigma_add", [])
        prop[list(s.prop_outputs)] = values.get("sigma_prop", [])
        loc, _ = auto.latent_prior(
            jnp.asarray(mean), jnp.asarray(omega), jnp.asarray(add), jnp.asarray(prop)
        )
        return np.asarray(loc)


def _initial_omega(priors: PriorArrays) -> np.ndarray:
    """Starting between-patient SD per parameter (log scale)."""
    return np.minimum(0.5 * np.asarray(priors.omega_scale), 0.3)


def _initial_sigma(scale: jnp.ndarray) -> np.ndarray:
    """Starting residual SDs: half their HalfNormal prior scale."""
    return 0.5 * np.asarray(scale)


def centering_weights(
    spec: PopulationModel,
    structure: ProgramStructure,
    data: FitData,
    priors: PriorArrays,
) -> tuple[np.ndarray, AutoCentering | None]:
    """Partial-centring weights ``(P, K)`` and, for ``"auto"``, what they follow.

    ``"auto"`` (see :class:`PopulationModel`) gives each patient and parameter the
    shrinkage weight of :mod:`twin_uq.inference.centering`, with the information
    evaluated at the patient's approximate mode and a residual SD estimated from the data;
    the weights returned are those at the starting between-patient SD (what a fit
    reports), the :class:`AutoCentering` (the likelihood linearised at the modes) is what
    sampling whitens the random effects with. Fixed weights come with ``None``.
    """
    P, K = data.n_patients, structure.n_params
    if spec.centering != "auto":
        return np.full((P, K), float(spec.centering)), None
    if structure.correlated:
        return np.zeros((P, K)), None
    n_out = data.error_code.shape[0]
    add = np.zeros(n_out)
    prop = np.zeros(n_out)
    add[list(structure.add_outputs)] = _initial_sigma(priors.add_scale)
    prop[list(structure.prop_outputs)] = _initial_sigma(priors.prop_scale)
    mean = np.asarray(data.allometric) + np.asarray(priors.mu_loc)
    omega = _initial_omega(priors)
    point = centering_point(
        structure.model, structure.settings, mean, omega, data.arrays, data.error_code, add, prop
    )
    auto = point.linearisation
    return shrinkage_weights(point.information, omega), auto


def prepare_fit(
    spec: PopulationModel,
    cohort: Cohort,
    settings: SolverSettings | None = None,
    centering: np.ndarray | None = None,
    auto: AutoCentering | None = None,
) -> PreparedFit:
    """Validate the cohort against the model and build every array the backends need.

    ``centering`` gives the ``(P, K)`` centring weights directly and ``auto`` what makes
    them follow the sampled between-patient SD (a reloaded fit passes the ones it was
    fitted with; without ``auto`` the weights are fixed); by default both follow
    ``spec.centering``.
    """
    model = spec.model
    settings = settings or model.solver
    arrays = cohort.for_model(model)
    design = build_covariate_design(spec, cohort)
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
        centering=jnp.zeros((cohort.n_patients, len(model.parameters))),
    )
    structure = ProgramStructure.from_spec(spec, len(design.effects), settings)
    priors = PriorArrays.from_spec(spec, structure, design.effects)
    if centering is None:
        centering, auto = centering_weights(spec, structure, data, priors)
    expected = (data.n_patients, structure.n_params)
    if np.shape(centering) != expected:
        raise ValueError(
            f"centering weights have shape {np.shape(centering)}, expected {expected} (patients, parameters)."
        )
    if auto is not None and (
        np.shape(auto.point) != expected
        or np.shape(auto.sensitivity) != (*expected, data.arrays.obs_time.shape[1])
    ):
        raise ValueError(
            f"auto centring is linearised at {np.shape(auto.point)} log parameters with "
            f"sensitivities {np.shape(auto.sensitivity)}, expected {expected} and "
            f"{(*expected, data.arrays.obs_time.shape[1])} (patients, parameters, observations)."
        )
    data = dataclasses.replace(
        data, centering=jnp.asarray(centering, dtype=float), auto_centering=auto
    )
    return PreparedFit(
        spec=spec, cohort=cohort, design=design, structure=structure, data=data, priors=priors
    )
