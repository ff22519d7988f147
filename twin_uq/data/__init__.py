"""twin_uq.data: reading, validating and holding a cohort table.

``read_cohort`` reads a long NONMEM-style table (CSV, Parquet or DataFrame) into a
validated :class:`Cohort`; ``Cohort.for_model`` gives the padded JAX arrays
(:class:`CohortArrays`) a likelihood consumes.
"""

from twin_uq.data.arrays import CohortArrays as CohortArrays
from twin_uq.data.cohort import Cohort as Cohort
from twin_uq.data.model_checks import DepotInfusionWarning as DepotInfusionWarning
from twin_uq.data.problems import (
    CohortError as CohortError,
    CohortWarning as CohortWarning,
    CovariateDefaultWarning as CovariateDefaultWarning,
    Problem as Problem,
    TimeUnitAssumedWarning as TimeUnitAssumedWarning,
)
from twin_uq.data.read import read_cohort as read_cohort
from twin_uq.data.summary import CohortSummary as CohortSummary

__all__ = [
    "Cohort",
    "CohortArrays",
    "CohortError",
    "CohortSummary",
    "CohortWarning",
    "CovariateDefaultWarning",
    "DepotInfusionWarning",
    "Problem",
    "TimeUnitAssumedWarning",
    "read_cohort",
]
