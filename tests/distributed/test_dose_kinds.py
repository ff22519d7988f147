"""Stage 2 pads every dose-event kind to the cohort's sizes: one compiled shape per worker.

A cohort mixing steady-state (``SS=1``) and plain oral doses: a batch without steady state
would otherwise have no steady-state slot and a different shape from one with it, and every
worker would compile its samplers again for it.
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from jax_traces import count_traces
from optional_deps import require

import twin_uq as tq
from twin_uq.distributed._worker import batch_inputs, schedule_sizes

TIMES = [1.0, 2.0, 4.0, 8.0, 11.0]


@pytest.fixture(scope="module")
def oral():
    return tq.load_model("one_compartment_oral")


@pytest.fixture(scope="module")
def mixed(oral) -> pd.DataFrame:
    """Four patients: 'ss1', 'ss2' at steady state of 100 mg every 12 h, 'p1', 'p2' one dose."""
    rng = np.random.default_rng(7)
    rows = []
    for pid, ss in (("ss1", 1), ("ss2", 1), ("p1", 0), ("p2", 0)):
        dose = tq.Bolus(0.0, 100.0, 1, ss=ss, ii=12.0 if ss else 0.0)
        sched = tq.Schedule.build(boluses=[dose])
        theta = np.array([1.0, 5.0, 50.0]) * np.exp(0.2 * rng.standard_normal(3))
        traj = tq.simulate(oral, theta, sched, np.asarray(TIMES), covariates={"WT": 70.0})
        conc = np.asarray(traj.outputs)[:, 0] * np.exp(0.1 * rng.standard_normal(len(TIMES)))
        rows.append(dict(ID=pid, TIME=0.0, AMT=100.0, EVID=1, CMT=1, SS=ss, II=dose.ii, WT=70.0))
        rows += [
            dict(ID=pid, TIME=t, DV=c, EVID=0, WT=70.0) for t, c in zip(TIMES, conc, strict=True)
        ]
    return pd.DataFrame(rows)


def _shapes(inputs):
    return [jax.tree_util.tree_map(np.shape, arr) for _, arr in inputs.values()]


def test_batches_with_and_without_steady_state_share_one_shape(oral, mixed):
    cohort = tq.read_cohort(mixed, time_unit="h")
    arrays = cohort.for_model(oral)
    sizes = schedule_sizes([arrays.schedule])
    assert sizes["n_steady"] == 1
    steady = mixed[mixed["ID"].isin(["ss1", "ss2"])].reset_index(drop=True)
    plain = mixed[mixed["ID"].isin(["p1", "p2"])].reset_index(drop=True)
    # control: each batch padded to its own sizes differs in the steady-state slot
    own = _shapes(batch_inputs(oral, steady, 8)) + _shapes(batch_inputs(oral, plain, 8))
    assert own[0] != own[2]
    # the cohort's sizes: every patient of both batches has the same shapes
    common = _shapes(batch_inputs(oral, steady, 8, sizes)) + _shapes(
        batch_inputs(oral, plain, 8, sizes)
    )
    assert all(s == common[0] for s in common)


@pytest.mark.slow
def test_two_stage_on_a_local_cluster_compiles_once_for_mixed_dosing(oral, mixed):
    distributed = require("distributed")
    from twin_uq.distributed import _worker, fit_two_stage

    cohort = tq.read_cohort(mixed, time_unit="h")
    stage1 = tq.fit(oral, cohort, method="laplace", seed=0, progress=False)

    def derive():  # the worker's compiled per-draw function is traced under this name
        raise AssertionError

    _worker._DERIVE = None  # a fresh compiled function: the first batch must trace it
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
        count_traces(derive) as traces,
    ):
        post = fit_two_stage(
            oral, cohort, population=stage1, cluster=client, batch_size=2, chains=1,
            warmup=50, draws=50, population_draws_used=32, seed=1,
        )  # fmt: skip
    assert list(post.patient_ids) == ["ss1", "ss2", "p1", "p2"]
    # batches ("ss1", "ss2") with steady state and ("p1", "p2") without: one trace in all
    assert traces(derive) == 1
    assert np.isfinite(post.posterior["theta"].values).all()
