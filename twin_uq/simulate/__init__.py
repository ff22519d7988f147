"""Simulation engine: schedules in, trajectories out (ODE solvers or exact linear solutions)."""

from twin_uq.simulate.result import Trajectory as Trajectory
from twin_uq.simulate.schedule import (
    Bolus as Bolus,
    Infusion as Infusion,
    ModelledInfusion as ModelledInfusion,
    Reset as Reset,
    Schedule as Schedule,
    Signal as Signal,
    stack_schedules as stack_schedules,
)
from twin_uq.simulate.solve import (
    simulate as simulate,
    simulate_cohort_outputs as simulate_cohort_outputs,
    solve as solve,
    solve_cohort as solve_cohort,
    solve_cohort_on_grid as solve_cohort_on_grid,
    solve_outputs as solve_outputs,
)
from twin_uq.simulate.status import (
    SolveStatus as SolveStatus,
    StatusInfo as StatusInfo,
    count_statuses as count_statuses,
    describe_failures as describe_failures,
    explain as explain,
)
