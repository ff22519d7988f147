"""Population model checks of a cohort fit: simulated VPC, NPDE / PIT, goodness of fit.

They read a :class:`~twin_uq.CohortPosterior` and simulate new patients of the observed
design from its population posterior (:func:`simulate_design`); reports and the command
line draw them.
"""

from twin_uq.checks.gof import gof
from twin_uq.checks.npde import NPDEResult, normality_tests, npde
from twin_uq.checks.simulate import DesignSimulation, simulate_design
from twin_uq.checks.vpc import VPCResult, vpc

__all__ = [
    "DesignSimulation",
    "NPDEResult",
    "VPCResult",
    "gof",
    "normality_tests",
    "npde",
    "simulate_design",
    "vpc",
]
