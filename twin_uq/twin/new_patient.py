"""Twins of patients who are not in the fit: population-only predictions before any data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from twin_uq.twin.twin import PosteriorTwin, ScheduleLike

if TYPE_CHECKING:
    from twin_uq.posterior.cohort import CohortPosterior

__all__ = ["new_patient_twin", "simulate_patient"]


def simulate_patient(
    post: CohortPosterior,
    covariates: Mapping[str, object],
    schedule: ScheduleLike,
    times: Sequence[float] | np.ndarray,
    *,
    interval: float = 0.9,
    seed: int = 0,
    patient_id: str = "new patient",
) -> xr.Dataset:
    """Population prediction for a brand-new patient with no data.

    At every posterior draw the patient's parameters are drawn from the population
    distribution given ``covariates`` (typical values, covariate effects, allometry,
    between-patient variability), so the intervals carry population, parameter and
    residual uncertainty. The Dataset has the layout of :meth:`PosteriorTwin.predict`
    with ``attrs["population_only"] = 1``.
    """
    twin = new_patient_twin(post, covariates, schedule, seed=seed, patient_id=patient_id)
    return twin.predict(times, interval=interval, seed=seed)


def new_patient_twin(
    post: CohortPosterior,
    covariates: Mapping[str, object],
    schedule: ScheduleLike,
    *,
    seed: int = 0,
    patient_id: str = "new patient",
) -> PosteriorTwin:
    """A population-only twin of a new patient (for what-if questions before any data)."""
    return PosteriorTwin(post.new_patient(covariates, schedule, seed=seed, patient_id=patient_id))
