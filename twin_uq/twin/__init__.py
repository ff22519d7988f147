"""Posterior twins: one patient's posterior, its predictions, what-ifs, doses and updates."""

from twin_uq.twin.criteria import Criterion as Criterion, Event as Event
from twin_uq.twin.forecast import Forecast as Forecast, RiskResult as RiskResult
from twin_uq.twin.new_patient import (
    new_patient_twin as new_patient_twin,
    simulate_patient as simulate_patient,
)
from twin_uq.twin.next_sample import (
    DoseDecision as DoseDecision,
    ForecastInterval as ForecastInterval,
    ForecastTrust as ForecastTrust,
    NextMeasurement as NextMeasurement,
    ParameterInterval as ParameterInterval,
)
from twin_uq.twin.policy import (
    BasalBolus as BasalBolus,
    ForecastPID as ForecastPID,
    PolicyComparison as PolicyComparison,
)
from twin_uq.twin.results import (
    DoseRecommendation as DoseRecommendation,
    ProbabilityResult as ProbabilityResult,
    UpdateRecord as UpdateRecord,
    WhatIfResult as WhatIfResult,
)
from twin_uq.twin.twin import (
    PosteriorTwin as PosteriorTwin,
    UnknownPatientError as UnknownPatientError,
)
from twin_uq.twin.update import UpdateFailedError as UpdateFailedError
