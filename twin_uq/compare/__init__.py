"""Model comparison and averaging of fits of one cohort.

PSIS leave-one-out over observations and patients, comparison tables, stacking weights,
and model-averaged twins.

Sits above the posterior and twin layers (it reads ``CohortPosterior``s and builds
twins) and below ``report/`` and ``cli/``.
"""

from twin_uq.compare.average import AveragedTwin, ModelAverage, allocate_draws, average
from twin_uq.compare.loo import K_THRESHOLD, LooResult, loo
from twin_uq.compare.pointwise import pointwise_loglik
from twin_uq.compare.stacking import stacking_weights
from twin_uq.compare.table import CohortMismatchError, check_same_cohort, compare

__all__ = [
    "K_THRESHOLD",
    "AveragedTwin",
    "CohortMismatchError",
    "LooResult",
    "ModelAverage",
    "allocate_draws",
    "average",
    "check_same_cohort",
    "compare",
    "loo",
    "pointwise_loglik",
    "stacking_weights",
]
