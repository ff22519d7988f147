"""Updating a twin with new observations: conditioning, compile reuse, agreement with a refit."""

import numpy as np
import pandas as pd
import pytest
from jax_traces import count_traces

import twin_uq as tq
from twin_uq.twin.update import _laplace, _log_target_batch

from .conftest import HOLDOUT_TIMES


def test_fast_gaussian_loglik_equals_observation_loglik():
    """The likelihood without Student-t branches (the update's) is the fit's likelihood."""
    import jax
    import jax.numpy as jnp

    from twin_uq.inference.residual import observation_loglik

    rng = np.random.default_rng(0)
    S, N = 5, 40
    code = jnp.asarray(rng.integers(0, 4, N))
    f = jnp.asarray(rng.uniform(0.1, 5.0, N))
    y = jnp.asarray(f * np.exp(0.2 * rng.standard_normal(N)))
    a = jnp.asarray(rng.uniform(0.01, 0.5, (S, 1)) * np.ones((1, N)))
    b = jnp.asarray(rng.uniform(0.05, 0.3, (S, 1)) * np.ones((1, N)))
    cens = jnp.asarray(rng.uniform(size=N) < 0.3)
    lloq = jnp.where(cens, 0.5, -jnp.inf)
    gaussian = jax.jit(observation_loglik, static_argnames="student_t")  # one compile each
    fast = gaussian(code, y, f, a, b, 0.0, cens, lloq, student_t=False)
    ref = gaussian(code, y, f, a, b, jnp.asarray(1e6), cens, lloq)
    np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), rtol=1e-10, atol=1e-12)
    # Without the Student-t branch a student_t element is refused (NaN), not scored Normal.
    t_code = code.at[0].set(4)
    assert np.isnan(gaussian(t_code, y, f, a, b, 0.0, cens, lloq, student_t=False)[:, 0]).all()


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
def test_nuts_update_compiles_once_and_agrees_with_importance(
    twins, rich_id, new_rows, updated, monkeypatch
):
    """NUTS and importance sampling target the same density: quantiles agree within MCSE."""
    import arviz_stats as azs

    from twin_uq.twin import update as update_module

    traces = []
    chain = update_module._update_chain

    def counted(*args):  # the driver compiles per chain function: count this one's traces
        traces.append(1)
        return chain(*args)

    monkeypatch.setattr(update_module, "_update_chain", counted)
    tw = twins[rich_id]
    first = tw.update(new_rows, seed=5, method="nuts")
    assert len(traces) == 1
    again = tw.update(new_rows, seed=6, method="nuts")
    assert len(traces) == 1
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


def _toy_update_data(means: np.ndarray, chol: np.ndarray):
    """An update with no observations: the target is the mixture prior over the S draws,
    ``(1/S) sum_s N(x; means[s], chol chol^T)``, known in closed form."""
    import jax.numpy as jnp

    from twin_uq.twin.engine import bucket_schedule
    from twin_uq.twin.update import UpdateData, patient_arrays

    model = tq.load_model("one_compartment_iv")
    design = tq.Design(times=[1.0, 4.0], doses=[tq.Bolus(0.0, 100.0, 1)])
    cohort = tq.simulate_cohort(model, 1, design, seed=0).cohort
    pid = cohort.ids[0]
    none = {k: np.zeros(0) for k in ("time", "value", "lloq")}
    none |= {"output": np.zeros(0, int), "censored": np.zeros(0, bool)}
    arrays = patient_arrays(
        model, none, bucket_schedule(cohort.schedule(pid)), np.asarray([70.0])
    )
    S = means.shape[0]
    chols = np.broadcast_to(chol, (S, *chol.shape))
    data = UpdateData(
        arrays=arrays, error_code=jnp.asarray([0]), mean=jnp.asarray(means),
        chol_inv=jnp.asarray(np.linalg.inv(chols)),
        logdet=jnp.asarray(np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)),
        add=jnp.ones((S, 1)), prop=jnp.zeros((S, 1)), nu=jnp.full(S, 1e6),
    )  # fmt: skip
    return model, data


def test_nuts_update_samples_a_known_gaussian_mixture_within_mcse():
    """The update (the fit's NUTS driver) on a target with a closed form: two equally
    weighted correlated Gaussians in log theta. Mean and sd of each log parameter, the share
    of draws paired with each population draw (1/2) and the pairing's dependence on the
    draw agree with the closed form within 4 MCSE."""
    import arviz_stats as azs

    from twin_uq.twin.update import run_update

    means = np.array([[0.0, 2.0], [0.8, 2.3]])
    chol = np.linalg.cholesky(np.array([[0.25, 0.1], [0.1, 0.16]]))
    model, data = _toy_update_data(means, chol)
    chains, draws = 4, 500
    res = run_update(model, model.solver, data, means.mean(axis=0), chains=chains, warmup=300,
                     draws=draws, seed=4)  # fmt: skip
    x = np.log(res.theta).reshape(chains, draws, 2)
    d = means[1] - means[0]
    cov = chol @ chol.T + np.outer(d, d) / 4  # mixture covariance
    for k in range(2):
        se_mean = float(azs.mcse(x[:, :, k], method="mean"))
        se_sd = float(azs.mcse(x[:, :, k], method="sd"))
        assert abs(x[:, :, k].mean() - means[:, k].mean()) < 4 * se_mean, k
        assert abs(x[:, :, k].std() - np.sqrt(cov[k, k])) < 4 * se_sd, k
    second = (res.draw_index == 1).astype(float).reshape(chains, draws)
    assert abs(second.mean() - 0.5) < 4 * float(azs.mcse(second, method="mean"))
    # The pairing follows x: E[x 1{s = 1}] = means[1] / 2. A pairing blind to x would give
    # E[x] / 2, off by (means[1] - means[0]) / 4 = (0.2, 0.075), many MCSE here.
    for k in range(2):
        joint = x[:, :, k] * second
        se = float(azs.mcse(joint, method="mean"))
        assert abs(joint.mean() - means[1, k] / 2) < 4 * se, (k, joint.mean(), se)
    assert res.r_hat < 1.01 and res.divergences == 0
    shown = run_update(model, model.solver, data, means.mean(axis=0), chains=chains, warmup=300,
                       draws=draws, seed=4, progress=True)  # fmt: skip
    assert np.array_equal(shown.theta, res.theta)  # the bar changes no draw
    assert np.array_equal(shown.draw_index, res.draw_index)
