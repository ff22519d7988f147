"""NONMEM's runs of the nmtests dosing suite on the adaptive ODE and fixed-step RK4 paths.

``test_nmtests_dosing.py`` checks every scenario on the model's own (exact) path; here a
selection covering lag, F, modelled duration, resets (EVID 3/4) and steady state (II < DUR,
II == DUR, lags, SS=1 after EVID 4, SS=1 and 2, a constant infusion) is solved by
``tsit5`` and by ``rk4``, whose doses are resolved and placed at each solve
(:mod:`twin_uq.simulate.fixed_step`), against the same NONMEM values and tolerance. (All
29 pass on both paths, 2026-12-07; the selection keeps the default test run short.)
"""

from __future__ import annotations

import numpy as np
import pytest
from test_nmtests_dosing import (
    ATOL,
    KEY,
    NONMEM,
    RECORDS,
    RTOL,
    control_stream_model,
    patient_parameters as parameters_of,
)

import twin_uq as tq

# Lag + F bolus, infusion with F and modelled duration, infusion with lag and F; at steady
# state: infusion with lag and F, infusions with II < DUR and II == DUR, bolus with F and
# lag; modelled duration with lag, modelled duration at steady state, EVID 4 with ADDL,
# EVID 4 with SS=1 and lag, EVID 3 with ADDL and lag, SS=1 and SS=2, constant infusion.
SCENARIOS = (2, 5, 8, 9, 12, 14, 15, 18, 19, 20, 23, 27, 28, 29)
SETTINGS = {
    "tsit5": tq.SolverSettings("tsit5", rtol=1e-10, atol=1e-12),
    "rk4": tq.SolverSettings("rk4", fixed_step=0.05),
}


@pytest.mark.parametrize("method", sorted(SETTINGS))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"ID{i}" for i in SCENARIOS])
def test_scenario_on_the_ode_paths_reproduces_nonmem(scenario, method):
    rows = RECORDS[RECORDS["ID"] == scenario]
    cohort = tq.read_cohort(rows, name=f"nmtests 1001, ID {scenario}")
    reference = NONMEM[NONMEM["ID"] == scenario]
    times = reference["TIME"].to_numpy(dtype=float)
    expected = reference["CP"].to_numpy(dtype=float)
    traj = tq.simulate(
        control_stream_model(),
        parameters_of(rows),
        cohort.schedule(cohort.ids[0]),
        times,
        settings=SETTINGS[method],
    )
    assert bool(traj.ok)
    got = np.asarray(traj.outputs[:, 0])
    bad = np.abs(got - expected) > np.maximum(RTOL * np.abs(expected), ATOL)
    assert not bad.any(), (
        f"ID {scenario} ({KEY[scenario]}), {method}: first differences at t = "
        f"{times[bad][:5].tolist()}: {got[bad][:5].tolist()} vs NONMEM {expected[bad][:5].tolist()}"
    )
