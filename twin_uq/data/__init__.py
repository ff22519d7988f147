"""twin_uq.data: reading, validating and holding a cohort table.

``read_cohort`` reads a long NONMEM-style table (CSV, Parquet or DataFrame) into a
validated :class:`Cohort`; ``Cohort.for_model`` gives the padded JAX arrays
(:class:`CohortArrays`) a likelihood consumes.
"""

from twin_uq.data.arrays import CohortArrays as CohortArrays
from twin_uq.data.cohort import Cohort as Cohort, CohortSummary as CohortSummary
from twin_uq.data.read import read_cohort as read_cohort
from twin_uq.data.validate import (
    CohortError as CohortError,
    CohortWarning as CohortWarning,
    Problem as Problem,
)

__all__ = [
    "Cohort",
    "CohortArrays",
    "CohortError",
    "CohortSummary",
    "CohortWarning",
    "Problem",
    "read_cohort",
]
