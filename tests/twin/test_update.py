"""Updating a twin with new observations: conditioning, compile reuse, agreement with a refit."""

import numpy as np
import pandas as pd
import pytest
from jax_traces import count_traces

import twin_uq as tq
from twin_uq.twin.update import _laplace, _log_target_batch, _sample

from .conftest import HOLDOUT_TIMES


def test_fast_gaussian_loglik_equals_observation_loglik():
    """The update's likelihood without Student-t branches is the fit's likelihood."""
    import jax
    import jax.numpy as jnp

    from twin_uq.inference.residual import observation_loglik
    from twin_uq.twin.update import _loglik_gaussian

    rng = np.random.default_rng(0)
    S, N = 5, 40
    code = jnp.asarray(rng.integers(0, 4, N))
    f = jnp.asarray(rng.uniform(0.1, 5.0, N))
    y = jnp.asarray(f * np.exp(0.2 * rng.standard_normal(N)))
    a = jnp.asarray(rng.uniform(0.01, 0.5, (S, 1)) * np.ones((1, N)))
    b = jnp.asarray(rng.uniform(0.05, 0.3, (S, 1)) * np.ones((1, N)))
    cens = jnp.asarray(rng.uniform(size=N) < 0.3)
    lloq = jnp.where(cens, 0.5, -jnp.inf)
    fast = jax.jit(_loglik_gaussian)(code, y, f, a, b, cens, lloq)  # jit: one compile each
    ref = jax.jit(observation_loglik)(code, y, f, a, b, jnp.asarray(1e6), cens, lloq)
    np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), rtol=1e-10, atol=1e-12)


def _rows(holdout, pid, times):
    h = holdout[(holdout["id"] == pid) & holdout["time"].isin(times)]
    return pd.DataFrame(
        {"id": pid, "time": h["time"], "dv": h["dv"], "evid": 0, "amt": 0.0}
    ).reset_index(drop=True)


@pytest.fixture(scope="module")
def new_rows(holdout, rich_id):
    return _rows(holdout, rich_id, HOLDOUT_TIMES[HOLDOUT_TIMES > 24])


#: The compiled functions of the importance-sampling update.
IMPORTANCE = (_laplace, _log_target_batch)


@pytest.fixture(scope="module")
def updated_traces(twins, rich_id, new_rows):
    """The module's first update, and how often it traced each importance function."""
    for f in IMPORTANCE:
        f.clear_cache()  # so that this update must trace both (the retrace test's control)
    with count_traces(*IMPORTANCE) as traces:
        upd = twins[rich_id].update(new_rows, seed=0)
    return upd, {f.__name__: traces(f) for f in IMPORTANCE}


@pytest.fixture(scope="module")
def updated(updated_traces):
    return updated_traces[0]


def test_update_returns_a_new_conditioned_twin(twins, rich_id, updated):
    old = twins[rich_id]
    assert len(old.history) == 0 and len(old.observations) == 8  # unchanged
    assert len(updated.history) == 1 and len(updated.observations) == 11
    rec = updated.history[0]
    assert rec.rows_added == 3 and rec.method == "importance"  # the fast path applies here
    assert rec.converged and rec.pareto_k < 0.7 and rec.ess_bulk >= 400
    assert updated.theta.shape == (2000, 3) and updated.add.shape == (2000, 1)
    assert updated.last_observation_time == 48.0
    ds = updated.predict(np.linspace(0.0, 48.0, 100))
    assert not ds["extrapolation"].any() and ds.attrs["n_updates"] == 1


def test_update_narrows_the_forecast_where_data_arrived(twins, rich_id, updated):
    t = [40.0]
    before = twins[rich_id].predict(t)
    after = updated.predict(t)
    w = lambda d: float((d["f_upper"] - d["f_lower"]).values.squeeze())  # noqa: E731
    assert w(after) < 0.8 * w(before)


@pytest.mark.parametrize("method", ["importance", pytest.param("nuts", marks=pytest.mark.slow)])
def test_update_without_information_keeps_the_posterior(twins, rich_id, method):
    """A dose after the last observation adds no information about the parameters, so the
    updated posterior must match the fit's (quantiles within Monte Carlo error).

    This checks the update's target density (mixture over population draws) against the
    cohort fit itself. Tolerance: 4 combined MCSEs of each quantile of log theta plus
    0.02 for the double use of the patient's old data (see twin_uq/twin/update.py).
    """
    import arviz_stats as azs

    tw = twins[rich_id]
    dose = pd.DataFrame({"id": [rich_id], "time": [100.0], "amt": [100.0], "evid": [1], "cmt": [1]})
    upd = tw.update(dose, seed=2, method=method)
    assert upd.history[0].rows_added == 0 and upd.history[0].converged
    a = np.log(tw.theta).reshape(tw.n_chains, -1, 3)
    b = np.log(upd.theta).reshape(upd.n_chains, -1, 3)
    for k in range(3):
        for p in (0.05, 0.5, 0.95):
            se = np.hypot(
                azs.mcse(a[:, :, k], method="quantile", prob=p),
                azs.mcse(b[:, :, k], method="quantile", prob=p),
            )
            diff = abs(np.quantile(a[:, :, k], p) - np.quantile(b[:, :, k], p))
            assert diff < 4 * se + 0.02, (k, p, diff, se)


def test_update_compiles_once_per_shape(twins, rich_id, holdout, updated_traces):
    _, first = updated_traces
    assert all(n >= 1 for n in first.values()), first  # the listener saw the first update
    with count_traces(*IMPORTANCE) as traces:
        # different values and a different number of rows: same padded shapes
        twins[rich_id].update(_rows(holdout, rich_id, [30.0, 36.0]), seed=1)
        twins["P02"].update(_rows(holdout, "P02", [30.0]), seed=1)
        assert traces() == 0


@pytest.mark.slow
def test_nuts_update_compiles_once_and_agrees_with_importance(twins, rich_id, new_rows, updated):
    """NUTS and importance sampling target the same density: quantiles agree within MCSE."""
    import arviz_stats as azs

    tw = twins[rich_id]
    _sample.clear_cache()  # so that the first update below must trace
    with count_traces(_sample) as traces:
        first = tw.update(new_rows, seed=5, method="nuts")
        assert traces() == 1  # the listener sees the sampler's traces
        again = tw.update(new_rows, seed=6, method="nuts")
        assert traces() == 1  # same shapes: the compiled sampler is reused
    for upd in (first, again):
        rec = upd.history[0]
        assert rec.method == "nuts-conditional" and rec.r_hat < 1.01 and rec.divergences == 0
    a = np.log(first.theta).reshape(first.n_chains, -1, 3)
    b = np.log(updated.theta).reshape(1, -1, 3)
    for k in range(3):
        for p in (0.05, 0.5, 0.95):
            se = np.hypot(
                azs.mcse(a[:, :, k], method="quantile", prob=p),
                azs.mcse(b[:, :, k], method="quantile", prob=p),
            )
            diff = abs(np.quantile(a[:, :, k], p) - np.quantile(b[:, :, k], p))
            assert diff < 4 * se, (k, p, diff, se)


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
    # the settings of the shared fit, so its compiled sampler is reused
    base = tq.fit(
        "one_compartment_oral", t[~late], chains=4, warmup=500, draws=500, seed=0, progress=False
    )
    upd = base.twin(rich_id).update(t[late], seed=1, method="nuts", warmup=500, draws=500)
    ref = oral_fit.twin(rich_id)
    a = np.log(ref.theta).reshape(ref.n_chains, -1, 3)
    b = np.log(upd.theta).reshape(upd.n_chains, -1, 3)
    for k in range(3):
        for p in (0.05, 0.5, 0.95):
            se = np.hypot(
                azs.mcse(a[:, :, k], method="quantile", prob=p),
                azs.mcse(b[:, :, k], method="quantile", prob=p),
            )
            diff = abs(np.quantile(a[:, :, k], p) - np.quantile(b[:, :, k], p))
            assert diff < 4 * se + 0.05, (k, p, diff, se)
