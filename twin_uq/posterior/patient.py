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
from twin_uq.inference.population import CovariateDesign
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.scales import to_natural, to_unconstrained
from twin_uq.posterior.population import PopulationDraws
from twin_uq.simulate.schedule import Schedule

__all__ = [
    "OBSERVATION_COLUMNS",
    "PatientPosterior",
    "UnknownPatientError",
    "occasion_path",
    "parameter_path",
    "resolve_patient",
]

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
    change_time, theta_path
        With covariates of the fit that change within this patient's record (time-varying
        covariates): ``(G,)`` starts of the ``G`` segments on which the parameters are
        constant (0 first) and ``(S, G, K)`` the parameter draws on each segment (the
        covariate model evaluated with the values in force there; ``theta`` is that of
        the baseline, the first recorded values: the first segment's with ``"locf"``).
        The last segment holds after the last record (the last value carried forward).
        ``None`` otherwise.
    tau
        ``(S, O)`` Ornstein-Uhlenbeck residual correlation time of each draw (time units;
        0 at outputs without one), or ``None``: independent residuals.
    covariate_path
        With ``change_time`` from time-varying covariates: the values of the time-varying
        covariates on each segment (index: segment start), as the fit read them; ``None``
        otherwise.
    occasions, omega_occ
        With inter-occasion variability (``iov``): the patient's occasions (index: start
        time; columns ``occ`` as recorded, ``index`` of its random effect), whose
        segments ``change_time``/``theta_path`` are (each occasion's own ``kappa``;
        ``theta`` is without it, the patient's value across occasions), and ``(S, K)``
        the between-occasion SD of every parameter at each draw (0 without IOV).
        ``None`` otherwise.
    new_occasion_at
        With ``occasions``: the time from which predictions are for a new occasion, whose
        random effect is drawn afresh from ``N(0, omega_occ)`` (a wider forecast);
        ``None``: the last recorded occasion holds after the record.
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
    change_time: np.ndarray | None = field(default=None, repr=False)
    theta_path: np.ndarray | None = field(default=None, repr=False)
    covariate_path: pd.DataFrame | None = field(default=None, repr=False)
    tau: np.ndarray | None = field(default=None, repr=False)
    occasions: pd.DataFrame | None = field(default=None, repr=False)
    omega_occ: np.ndarray | None = field(default=None, repr=False)
    new_occasion_at: float | None = None

    @property
    def has_occasions(self) -> bool:
        """Whether the fit has inter-occasion variability (``occasions`` set)."""
        return self.occasions is not None

    @property
    def time_varying(self) -> bool:
        """Whether the parameters change during the record (time-varying covariates)."""
        return self.change_time is not None

    def parameters_at(self, times: np.ndarray) -> np.ndarray:
        """``(S, T, K)`` parameter draws in force at ``times`` (constant: ``theta`` repeated)."""
        t = np.asarray(times, dtype=float)
        if self.change_time is None:
            return np.repeat(self.theta[:, None, :], t.size, axis=1)
        seg = np.clip(np.searchsorted(self.change_time, t, side="right") - 1, 0, None)
        return self.theta_path[:, seg, :]

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


def parameter_path(
    model: Model,
    design: CovariateDesign,
    index: int,
    theta: np.ndarray,
    beta: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame] | tuple[None, None, None]:
    """Patient ``index``'s parameter draws on each segment of its time-varying covariates.

    ``theta`` ``(S, K)`` are the patient's baseline draws, ``beta`` ``(S, E)`` the covariate
    coefficients of the same draws (``None`` without effects). On segment ``g`` the latent
    parameters move by the change of the covariate model from baseline, exactly as in the
    fit's likelihood (:func:`twin_uq.inference.likelihood.likelihood_theta`). Returns
    ``(change_time (G,), theta_path (S, G, K), covariate_path)``, or ``None`` three times
    when the patient's covariates of the fit do not change.
    """
    segments = design.segments
    if segments is None or segments.n_live[index] <= 1:
        return None, None, None
    G = int(segments.n_live[index])
    d_alloc = design.segment_allometric[index, :G] - design.allometric[index]  # (G, K)
    shift = np.broadcast_to(d_alloc, (theta.shape[0], *d_alloc.shape)).copy()
    if beta is not None and len(design.effects):
        d_x = design.segment_matrix[index, :G] - design.matrix[index]  # (G, Q)
        names = model.parameter_names
        for e, (p, t) in enumerate(design.effects):
            k, q = names.index(p), design.terms.index(t)
            shift[:, :, k] += beta[:, e, None] * d_x[None, :, q]
    path = to_natural(model, to_unconstrained(model, theta)[:, None, :] + shift)
    change_time = np.asarray(segments.time[index, :G], dtype=float)
    covariates = pd.DataFrame(
        segments.values[index, :G],
        columns=list(segments.names),
        index=pd.Index(change_time, name="time"),
    )
    return change_time, np.asarray(path), covariates


def occasion_path(
    model: Model,
    theta: np.ndarray,
    kappa: np.ndarray,
    omega_occ: np.ndarray,
    iov_index: tuple[int, ...],
    occasions: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray]:
    """A patient's parameter draws on each of its occasions, as in the fit's likelihood.

    ``theta`` ``(S, K)`` are the patient's draws without occasion effects, ``kappa``
    ``(S, M, J)`` its standardised occasion effects, ``omega_occ`` ``(S, J)`` the
    between-occasion SDs, ``occasions`` the frame of
    :meth:`~twin_uq.data.occasions.OccasionSegments.frame`. On the occasion with random
    effect ``m`` the latent parameters ``iov_index`` move by ``omega_occ * kappa[:, m]``.
    Returns ``(change_time (G,), theta_path (S, G, K))``.
    """
    idx = occasions["index"].to_numpy(dtype=int)
    shift = np.zeros((theta.shape[0], idx.size, theta.shape[1]))
    shift[:, :, list(iov_index)] = kappa[:, idx, :] * omega_occ[:, None, :]
    path = to_natural(model, to_unconstrained(model, theta)[:, None, :] + shift)
    return occasions.index.to_numpy(dtype=float), np.asarray(path)
