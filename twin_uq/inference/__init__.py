"""Hierarchical Bayesian fitting of cohorts: population model, backends, posterior."""

from twin_uq.inference.fit import FitSettings as FitSettings, fit as fit
from twin_uq.inference.population import PopulationModel as PopulationModel
from twin_uq.inference.posterior import (
    CohortPosterior as CohortPosterior,
    Diagnostics as Diagnostics,
    PosteriorLoadError as PosteriorLoadError,
    load_posterior as load_posterior,
)
