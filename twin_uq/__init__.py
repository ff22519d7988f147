"""twin_uq: patient digital twins with honest uncertainty.

Public names are imported lazily (PEP 562), so that the command line starts fast: the
first use of a name, e.g. ``twin_uq.fit``, imports its module. ``import twin_uq`` changes
nothing global; a program calls :func:`twin_uq.configure` once, before its first JAX
computation, for float64, one CPU device per parallel chain and the persistent compilation
cache (see ``twin_uq._config``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "configure": "twin_uq._config",
    "PrecisionWarning": "twin_uq._config",
    "TwinUQError": "twin_uq.errors",
    "InputError": "twin_uq.errors",
    "Cohort": "twin_uq.data",
    "CohortError": "twin_uq.data",
    "read_cohort": "twin_uq.data",
    "Allometric": "twin_uq.model.base",
    "DoseParameters": "twin_uq.model.base",
    "with_dose_parameters": "twin_uq.model.dosing",
    "Model": "twin_uq.model.base",
    "ModelCard": "twin_uq.model.base",
    "Output": "twin_uq.model.base",
    "Parameter": "twin_uq.model.base",
    "SolverSettings": "twin_uq.model.base",
    "list_models": "twin_uq.model.load",
    "load_model": "twin_uq.model.load",
    "Trajectory": "twin_uq.simulate",
    "simulate": "twin_uq.simulate",
    "Bolus": "twin_uq.simulate.schedule",
    "Infusion": "twin_uq.simulate.schedule",
    "ModelledInfusion": "twin_uq.simulate.schedule",
    "Reset": "twin_uq.simulate.schedule",
    "Schedule": "twin_uq.simulate.schedule",
    "Signal": "twin_uq.simulate.schedule",
    "audit": "twin_uq.audit",
    "vpc": "twin_uq.checks",
    "npde": "twin_uq.checks",
    "gof": "twin_uq.checks",
    "compare": "twin_uq.compare",
    "average": "twin_uq.compare",
    "ModelAverage": "twin_uq.compare",
    "CohortPosterior": "twin_uq.posterior",
    "PatientPosterior": "twin_uq.posterior",
    "PosteriorLoadError": "twin_uq.posterior",
    "FitFailedError": "twin_uq.posterior",
    "PopulationModel": "twin_uq.inference.population",
    "FitMethod": "twin_uq.inference.methods",
    "NUTS": "twin_uq.inference.methods",
    "SVI": "twin_uq.inference.methods",
    "Laplace": "twin_uq.inference.methods",
    "PyMC": "twin_uq.inference.methods",
    "TwoStage": "twin_uq.distributed.twostage",
    "fit": "twin_uq.inference.fit",
    "check_data": "twin_uq.inference.data_checks",
    "load_posterior": "twin_uq.posterior",
    "Design": "twin_uq.simulate.synthetic",
    "SimulatedCohort": "twin_uq.simulate.synthetic",
    "simulate_cohort": "twin_uq.simulate.synthetic",
    "TrustAssessment": "twin_uq.trust",
    "TrustReport": "twin_uq.trust",
    "TrustThresholds": "twin_uq.trust",
    "assess_cohort": "twin_uq.trust",
    "assess_patient": "twin_uq.trust",
    "assess_prediction": "twin_uq.trust",
    "Criterion": "twin_uq.twin",
    "DoseDecision": "twin_uq.twin",
    "Event": "twin_uq.twin",
    "ForecastInterval": "twin_uq.twin",
    "ForecastTrust": "twin_uq.twin",
    "NextMeasurement": "twin_uq.twin",
    "ParameterInterval": "twin_uq.twin",
    "PosteriorTwin": "twin_uq.twin",
    "simulate_patient": "twin_uq.twin",
}
_SUBMODULES = ("checks", "report")

__all__ = sorted([*_LAZY, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"twin_uq.{name}")
    else:
        raise AttributeError(f"module 'twin_uq' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, *_SUBMODULES])


# Functions named like the subpackage that defines them: importing the subpackage makes
# Python set ``twin_uq.<name> = <module>``, which must not hide the function.
_SHADOWED = frozenset(n for n, m in _LAZY.items() if m == f"twin_uq.{n}")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # what static tools and IDEs see
    from twin_uq import checks as checks, report as report
    from twin_uq._config import PrecisionWarning as PrecisionWarning, configure as configure
    from twin_uq.audit import audit as audit
    from twin_uq.checks import gof as gof, npde as npde, vpc as vpc
    from twin_uq.compare import (
        ModelAverage as ModelAverage,
        average as average,
        compare as compare,
    )
    from twin_uq.data import (
        Cohort as Cohort,
        CohortError as CohortError,
        read_cohort as read_cohort,
    )
    from twin_uq.errors import InputError as InputError, TwinUQError as TwinUQError
    from twin_uq.inference.data_checks import check_data as check_data
    from twin_uq.inference.fit import fit as fit
    from twin_uq.inference.methods import (
        NUTS as NUTS,
        SVI as SVI,
        FitMethod as FitMethod,
        Laplace as Laplace,
        PyMC as PyMC,
    )
    from twin_uq.inference.population import PopulationModel as PopulationModel
    from twin_uq.model.base import (
        Allometric as Allometric,
        DoseParameters as DoseParameters,
        Model as Model,
        ModelCard as ModelCard,
        Output as Output,
        Parameter as Parameter,
        SolverSettings as SolverSettings,
    )
    from twin_uq.model.dosing import with_dose_parameters as with_dose_parameters
    from twin_uq.model.load import list_models as list_models, load_model as load_model
    from twin_uq.posterior import (
        CohortPosterior as CohortPosterior,
        FitFailedError as FitFailedError,
        PatientPosterior as PatientPosterior,
        PosteriorLoadError as PosteriorLoadError,
        load_posterior as load_posterior,
    )
    from twin_uq.simulate import Trajectory as Trajectory, simulate as simulate
    from twin_uq.simulate.schedule import (
        Bolus as Bolus,
        Infusion as Infusion,
        ModelledInfusion as ModelledInfusion,
        Reset as Reset,
        Schedule as Schedule,
        Signal as Signal,
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
        DoseDecision as DoseDecision,
        Event as Event,
        ForecastInterval as ForecastInterval,
        ForecastTrust as ForecastTrust,
        NextMeasurement as NextMeasurement,
        ParameterInterval as ParameterInterval,
        PosteriorTwin as PosteriorTwin,
        simulate_patient as simulate_patient,
    )
