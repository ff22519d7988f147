"""Trust in a patient's twin: status, plain-language reasons and the numbers behind them.

``assess_cohort(post)`` (also ``post.trust()``) assesses every patient of a fit,
``assess_patient(post, id)`` one patient, ``assess_prediction(assessment, prediction)``
one prediction request. Thresholds and their rationale: :class:`TrustThresholds` and
docs/trust.md.
"""

from twin_uq.trust.assess import (
    STATUS_MEANING as STATUS_MEANING,
    Status as Status,
    TrustAssessment as TrustAssessment,
    TrustReport as TrustReport,
    assess_cohort as assess_cohort,
    assess_patient as assess_patient,
    cohort_metrics as cohort_metrics,
    report_json as report_json,
)
from twin_uq.trust.prediction import assess_prediction as assess_prediction
from twin_uq.trust.thresholds import TrustThresholds as TrustThresholds
