"""Updating a twin with new observations: conditioning, compile reuse, agreement with a refit."""

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.twin import trace_count

from .conftest import HOLDOUT_TIMES


def _rows(holdout, pid, times):
    h = holdout[(holdout["id"] == pid) & holdout["time"].isin(times)]
    return pd.DataFrame(
        {"id": pid, "time": h["time"], "dv": h["dv"], "evid": 0, "amt": 0.0}
    ).reset_index(drop=True)


@pytest.fixture(scope="module")
def new_rows(holdout, rich_id):
    return _rows(holdout, rich_id, HOLDOUT_TIMES[HOLDOUT_TIMES > 24])


@pytest.fixture(scope="module")
def updated(twins, rich_id, new_rows):
    return twins[rich_id].update(new_rows, seed=0)


def test_update_returns_a_new_conditioned_twin(twins, rich_id, updated):
    old = twins[rich_id]
    assert len(old.history) == 0 and len(old.observations) == 8  # unchanged
    assert len(updated.history) == 1 and len(updated.observations) == 11
    rec = updated.history[0]
    assert rec.rows_added == 3 and rec.method == "nuts-conditional"
    assert rec.r_hat < 1.01 and rec.ess_bulk > 300 and rec.divergences == 0
    assert updated.theta.shape == (1000, 3) and updated.add.shape == (1000, 1)
    assert updated.last_observation_time == 48.0
    ds = updated.predict(np.linspace(0.0, 48.0, 100))
    assert not ds["extrapolation"].any() and ds.attrs["n_updates"] == 1


def test_update_narrows_the_forecast_where_data_arrived(twins, rich_id, updated):
    t = [40.0]
    before = twins[rich_id].predict(t)
    after = updated.predict(t)
    w = lambda d: float(d["f_upper"] - d["f_lower"])  # noqa: E731
    assert w(after) < 0.8 * w(before)


def test_update_without_information_keeps_the_posterior(twins, rich_id):
    """A dose after the last observation adds no information about the parameters, so the
    updated posterior must match the fit's (quantiles within Monte Carlo error).

    This checks the update's target density (mixture over population draws) against the
    cohort fit itself. Tolerance: 4 combined MCSEs of each quantile of log theta plus
    0.02 for the double use of the patient's old data (see twin_uq/twin/update.py).
    """
    import arviz_stats as azs

    tw = twins[rich_id]
    dose = pd.DataFrame({"id": [rich_id], "time": [100.0], "amt": [100.0], "evid": [1], "cmt": [1]})
    upd = tw.update(dose, seed=2)
    assert upd.history[0].rows_added == 0
    a = np.log(tw.theta).reshape(2, 400, 3)
    b = np.log(upd.theta).reshape(4, 250, 3)
    for k in range(3):
        for p in (0.05, 0.5, 0.95):
            se = np.hypot(
                azs.mcse(a[:, :, k], method="quantile", prob=p),
                azs.mcse(b[:, :, k], method="quantile", prob=p),
            )
            diff = abs(np.quantile(a[:, :, k], p) - np.quantile(b[:, :, k], p))
            assert diff < 4 * se + 0.02, (k, p, diff, se)


def test_update_compiles_once_per_shape(twins, rich_id, holdout, updated):
    before = trace_count("update")
    # different values and a different number of rows: same padded shapes
    twins[rich_id].update(_rows(holdout, rich_id, [30.0, 36.0]), seed=1)
    twins["P02"].update(_rows(holdout, "P02", [30.0]), seed=1)
    assert trace_count("update") == before


def test_update_rejects_other_patients(twins, rich_id, oral_sim):
    tw = twins[rich_id]
    with pytest.raises(ValueError, match="got rows of patient"):
        tw.update(pd.DataFrame({"id": ["P99"], "time": [30.0], "dv": [0.1]}))
    with pytest.raises(ValueError, match="only that patient"):
        tw.update(oral_sim.cohort.select(["P01", "P02"]))
    with pytest.raises(ValueError, match="no rows"):
        tw.update(pd.DataFrame({"id": [], "time": [], "dv": []}))
    with pytest.raises(TypeError, match="DataFrame"):
        tw.update([1, 2, 3])


def test_population_only_twin_cannot_be_updated(oral_fit):
    from twin_uq.twin import new_patient_twin

    tw = new_patient_twin(oral_fit, {"WT": 70.0}, [tq.Bolus(0.0, 100.0, 1)])
    with pytest.raises(ValueError, match="population-only"):
        tw.update(pd.DataFrame({"time": [1.0], "dv": [1.0]}))


@pytest.mark.slow
def test_update_matches_a_refit_of_the_cohort(oral_sim, oral_fit, rich_id):
    """Fit the cohort without the patient's observations after 8 h, update the twin with
    them, and compare with the shared fit, which saw every row (the "refit").

    Same data, two routes; quantiles of log theta must agree within 4 combined MCSEs plus
    0.05 (the double use of the patient's early data in the update's population prior,
    and the population posterior being fitted without the late rows).
    """
    import arviz_stats as azs

    t = oral_sim.table
    late = (t["id"] == rich_id) & (t["evid"] == 0) & (t["time"] > 8.0)
    base = tq.fit(
        "one_compartment_oral", t[~late], chains=2, warmup=400, draws=400, seed=0, progress=False
    )
    upd = base.twin(rich_id).update(t[late], seed=1, warmup=500, draws=500)
    ref = oral_fit.twin(rich_id)
    a = np.log(ref.theta).reshape(2, 400, 3)
    b = np.log(upd.theta).reshape(4, 500, 3)
    for k in range(3):
        for p in (0.05, 0.5, 0.95):
            se = np.hypot(
                azs.mcse(a[:, :, k], method="quantile", prob=p),
                azs.mcse(b[:, :, k], method="quantile", prob=p),
            )
            diff = abs(np.quantile(a[:, :, k], p) - np.quantile(b[:, :, k], p))
            assert diff < 4 * se + 0.05, (k, p, diff, se)
