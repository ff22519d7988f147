"""``PatientPosterior``: one patient's slice of a cohort posterior, built once.

Everything that a twin, a trust assessment or a report needs about one patient —
posterior draws of the individual parameters with the residual parameters of the same
draws, the patient's observations, dosing schedule and covariates, and the population
distribution seen by the patient — read from the fit in one place, so that no consumer
reaches into the fit's preparation or resolves the patient id again.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twin_uq.errors import TwinUQError
from twin_uq.model.base import Model, SolverSettings
from twin_uq.posterior.population import PopulationDraws
from twin_uq.simulate.schedule import Schedule

__all__ = ["OBSERVATION_COLUMNS", "PatientPosterior", "UnknownPatientError", "resolve_patient"]

#: Columns of :attr:`PatientPosterior.observations`.
OBSERVATION_COLUMNS = ("time", "output", "value", "censored", "lloq")


class UnknownPatientError(TwinUQError, KeyError):
    """A patient id that the fit does not contain (the message lists close matches)."""

    def __str__(self) -> str:
        return str(self.args[0])


def resolve_patient(ids: tuple[str, ...], patient_id: object) -> int:
    """Position of ``patient_id`` in ``ids``; :class:`UnknownPatientError` naming close ids."""
    pid = str(patient_id)
    if pid in ids:
        return ids.index(pid)
    close = difflib.get_close_matches(pid, ids, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownPatientError(
        f"No patient {pid!r} in this fit ({len(ids)} patients, e.g. "
        f"{', '.join(map(repr, ids[:5]))}).{hint}"
    )


@dataclass(frozen=True, eq=False)
class PatientPosterior:
    """One patient's posterior and data. Get it with ``post.patient(patient_id)``.

    Arrays are read-only. ``S`` posterior draws (chains concatenated), ``K`` parameters
    (``model.parameter_names`` order), ``O`` outputs, ``C`` model covariates.

    Attributes
    ----------
    patient_id
        The patient.
    model, settings
        The physiological model and the solver settings of the fit.
    theta
        ``(S, K)`` posterior draws of the individual parameters (natural scale).
    add, prop, nu
        ``(S, O)``, ``(S, O)``, ``(S,)`` residual error parameters of each draw (additive SD
        in output units, proportional SD as a fraction, Student-t degrees of freedom;
        0 / 1e6 where unused).
    n_chains
        Number of chains the ``S`` draws come from (for effective sample sizes).
    error_code
        ``(O,)`` residual error model of each output
        (:data:`twin_uq.inference.residual.ERROR_CODES`).
    covariates
        ``(C,)`` the model's covariates (``model.covariates`` order).
    baseline
        All baseline covariates of the patient (name -> value).
    schedule
        The patient's dosing history (and measured signals).
    observations
        DataFrame with :data:`OBSERVATION_COLUMNS`.
    table
        The patient's rows of the cohort table (the data the posterior is conditioned on).
    population
        The population distribution seen by this patient, draw by draw.
    method, approximate
        The inference method, and whether it is approximate (SVI, Laplace, two-stage).
    population_only
        True for a new patient without data (a pure population prediction).
    """

    patient_id: str
    model: Model
    settings: SolverSettings
    theta: np.ndarray
    add: np.ndarray
    prop: np.ndarray
    nu: np.ndarray
    n_chains: int
    error_code: np.ndarray = field(repr=False)
    covariates: np.ndarray = field(repr=False)
    baseline: Mapping[str, object] = field(repr=False)
    schedule: Schedule = field(repr=False)
    observations: pd.DataFrame = field(repr=False)
    table: pd.DataFrame = field(repr=False)
    population: PopulationDraws = field(repr=False)
    method: str = "nuts"
    approximate: bool = False
    population_only: bool = False

    @property
    def n_draws(self) -> int:
        """Number of posterior draws ``S``."""
        return self.theta.shape[0]

    @property
    def n_observations(self) -> int:
        """Number of observations (censored ones included)."""
        return len(self.observations)

    @property
    def last_observation_time(self) -> float:
        """Time of the last observation (NaN without observations)."""
        return float(self.observations["time"].max()) if len(self.observations) else float("nan")


def observations_frame(arrays, index: int, model: Model) -> pd.DataFrame:
    """Patient ``index``'s observations from padded cohort arrays, padding removed."""
    mask = np.asarray(arrays.obs_mask[index])
    out = np.asarray(arrays.obs_output[index])[mask]
    return pd.DataFrame(
        {
            "time": np.asarray(arrays.obs_time[index])[mask],
            "output": [model.output_names[k] for k in out],
            "value": np.asarray(arrays.obs_value[index])[mask],
            "censored": np.asarray(arrays.obs_censored[index])[mask],
            "lloq": np.asarray(arrays.obs_lloq[index])[mask],
        }
    )


def empty_observations() -> pd.DataFrame:
    """An observations frame without rows (a new patient)."""
    return pd.DataFrame(columns=list(OBSERVATION_COLUMNS))
