"""The posterior layer: a cohort fit's result, its per-patient views and its files.

Everything above it (twins, trust, reports, audit, distributed work) reads a fit through
:class:`CohortPosterior` and :class:`PatientPosterior`, never through the fit's internals.
"""

from twin_uq.posterior.cohort import CohortPosterior as CohortPosterior
from twin_uq.posterior.diagnostics import Diagnostics as Diagnostics
from twin_uq.posterior.failure import FitFailedError as FitFailedError
from twin_uq.posterior.io import (
    PosteriorLoadError as PosteriorLoadError,
    load_posterior as load_posterior,
)
from twin_uq.posterior.patient import (
    PatientPosterior as PatientPosterior,
    UnknownPatientError as UnknownPatientError,
)
from twin_uq.posterior.population import PopulationDraws as PopulationDraws
