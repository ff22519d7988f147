"""twin_uq: patient digital twins with honest uncertainty."""

from twin_uq._config import configure_host_devices as _configure_host_devices

_configure_host_devices()

from twin_uq._config import configure_precision as _configure_precision

_configure_precision()

from twin_uq.data import Cohort as Cohort, CohortError as CohortError, read_cohort as read_cohort
from twin_uq.model.base import (
    Allometric as Allometric,
    Model as Model,
    ModelCard as ModelCard,
    Output as Output,
    Parameter as Parameter,
    SolverSettings as SolverSettings,
)
from twin_uq.model.load import list_models as list_models, load_model as load_model
from twin_uq.simulate import Trajectory as Trajectory, simulate as simulate
from twin_uq.simulate.schedule import (
    Bolus as Bolus,
    Infusion as Infusion,
    Schedule as Schedule,
    Signal as Signal,
)

__version__ = "0.1.0"
from twin_uq import report as report
from twin_uq.audit import audit as audit
from twin_uq.inference import (
    CohortPosterior as CohortPosterior,
    PopulationModel as PopulationModel,
    fit as fit,
    load_posterior as load_posterior,
)
from twin_uq.simulate.synthetic import (
    Design as Design,
    SimulatedCohort as SimulatedCohort,
    simulate_cohort as simulate_cohort,
)
from twin_uq.trust import (
    TrustAssessment as TrustAssessment,
    TrustReport as TrustReport,
    TrustThresholds as TrustThresholds,
    assess_cohort as assess_cohort,
    assess_patient as assess_patient,
    assess_prediction as assess_prediction,
)
from twin_uq.twin import (
    Criterion as Criterion,
    Event as Event,
    PosteriorTwin as PosteriorTwin,
    simulate_patient as simulate_patient,
)
