"""Fixtures of the twin tests: one twin of the shared oral fit, fresh held-out observations.

Everything builds on the session fixtures ``oral_sim`` / ``oral_fit`` of tests/conftest.py
(no cohort is refitted here).
"""

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq

#: Times of the held-out observations: inside the sampled range (0.75, 3, 10, 16 h) and
#: beyond the last observation at 24 h (30, 36, 48 h).
HOLDOUT_TIMES = np.array([0.75, 3.0, 10.0, 16.0, 30.0, 36.0, 48.0])


def true_outputs(sim, pid, schedule, times):
    """Noise-free outputs of patient ``pid`` under its true parameters, ``(T, O)``."""
    model = tq.load_model("one_compartment_oral")
    theta = sim.truth.theta.loc[pid].to_numpy()
    wt = float(sim.cohort.covariates.loc[pid, "WT"])
    traj = tq.simulate(model, theta, schedule, times, covariates={"WT": wt})
    assert bool(traj.ok)
    return np.asarray(traj.outputs)


@pytest.fixture(scope="session")
def holdout(oral_sim):
    """New observations of every patient at ``HOLDOUT_TIMES`` drawn from the true model.

    They play the role of the patients' future measurements: the fit never saw them.
    Residual noise follows the true combined error model with its true parameters.
    """
    rng = np.random.default_rng(2024)
    a = oral_sim.truth.sigma_add["concentration"]
    b = oral_sim.truth.sigma_prop["concentration"]
    rows = []
    for pid in oral_sim.cohort.ids:
        sched = oral_sim.cohort.schedule(pid)
        f = true_outputs(oral_sim, pid, sched, HOLDOUT_TIMES)[:, 0]
        y = f + np.sqrt(a**2 + (b * f) ** 2) * rng.standard_normal(f.size)
        sampling = oral_sim.table.loc[oral_sim.table["id"] == pid, "sampling"].iloc[0]
        for t, ff, yy in zip(HOLDOUT_TIMES, f, y, strict=True):
            rows.append(dict(id=pid, time=t, f=ff, dv=yy, sampling=sampling))
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def twins(oral_fit):
    """Twin of every patient of the shared oral fit."""
    return {pid: oral_fit.twin(pid) for pid in oral_fit.patient_ids}


@pytest.fixture(scope="session")
def rich_id(oral_sim):
    """First richly sampled patient."""
    t = oral_sim.table
    return str(t.loc[t["sampling"] == "rich", "id"].iloc[0])
