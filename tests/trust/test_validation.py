"""Fast validation of the flag on the shared oral fit (full study: benchmarks/trust_validation.py).

New measurements of the same 16 patients are simulated from their *true* parameters at
times the fit never saw (3, 10, 16 h); the twins predict them from their posterior draws.
Flagged (data-poor) twins must predict worse than trustworthy ones, and the intervals
must stay calibrated for everyone (honest uncertainty, not only a flag).
"""

import jax
import numpy as np
import pandas as pd
import pytest
from residual_checks import assert_student_t_replicates

from twin_uq.simulate.solve import solve_outputs
from twin_uq.trust import assess_cohort
from twin_uq.trust.validation import (
    auc,
    bootstrap_difference,
    flag_performance,
    heldout_predictive,
    patient_heldout_summary,
)

NEW_TIMES = np.array([3.0, 10.0, 16.0])
# The shared fit is a short run: the flags are validated on oral_trust, which judges its
# convergence as for a short run (tests/short_run.py; the default, strict thresholds are
# checked in test_default_thresholds_match_the_fit_diagnostics).


@pytest.fixture(scope="module")
def new_observations(oral_sim, oral_fit):
    rng = np.random.default_rng(2024)
    model, truth = oral_fit.model, oral_sim.truth
    arrays = oral_fit.prepared.data.arrays
    out = model.output_names[0]
    rows = []
    for i, pid in enumerate(oral_fit.patient_ids):
        sched = oral_fit.cohort.schedule(pid, signals=model.signals)
        theta = truth.theta.loc[pid, list(model.parameter_names)].to_numpy(float)
        _, f, ok = solve_outputs(model, theta, arrays.covariates[i], sched, NEW_TIMES)
        assert bool(ok)
        f = np.asarray(f)[:, 0]
        sd = np.sqrt(truth.sigma_add[out] ** 2 + (truth.sigma_prop[out] * f) ** 2)  # combined
        for t, y in zip(NEW_TIMES, f + sd * rng.standard_normal(f.size), strict=True):
            rows.append(dict(id=pid, time=t, dv=y))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def heldout(oral_fit, new_observations):
    return patient_heldout_summary(oral_fit, new_observations, interval=0.9, error_threshold=0.25)


def test_default_thresholds_match_the_fit_diagnostics(oral_fit):
    rep = assess_cohort(oral_fit)
    diag = oral_fit.diagnostics()
    table = diag.table
    bad = table.index[table["r_hat"] > 1.01]
    population_bad = [q for q in bad if not q.startswith("theta[")] or diag.divergences > 0
    unreliable = set(rep.table.index[rep.table["status"] == "unreliable"])
    if population_bad:  # the whole cohort's posterior is in doubt: nobody may be trusted
        assert len(unreliable) == 16
    else:  # exactly the patients whose own parameters missed R-hat 1.01 are unreliable
        assert unreliable == {q[len("theta[") :].split(",")[0] for q in bad}
        assert rep.counts()["unreliable"] < 16


def test_flagged_twins_predict_worse_and_know_it(oral_sim, oral_trust, heldout):
    rep = oral_trust  # assess_cohort(oral_fit, SHORT_RUN), computed once per session
    sampling = oral_sim.table.groupby("id")["sampling"].first()
    status = rep.table["status"]
    assert (status[sampling == "sparse"] != "trustworthy").all()
    assert rep.counts()["unreliable"] == 0
    flagged = status.isin(["limited", "insufficient"]).to_numpy()
    perf = flag_performance(status, heldout, n_boot=2000, seed=0)
    # Less information: wider predictive intervals (bootstrap interval excludes 0) and a
    # larger median error.
    assert perf.loc["width", "diff_lower95"] > 0, perf
    assert perf.loc["mae", "difference"] > 0, perf
    assert flagged.sum() >= 4


def test_intervals_stay_calibrated_for_everyone(heldout):
    # 48 new observations; 90 % intervals: coverage >= 0.9 - 3 sd (binomial) = 0.77.
    n = heldout["n_heldout"].sum()
    coverage = (heldout["coverage"] * heldout["n_heldout"]).sum() / n
    assert n == 48
    assert coverage >= 0.9 - 3 * np.sqrt(0.09 / n)


def test_auc_and_bootstrap_on_known_cases():
    assert auc(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 1.0, 400)
    b = rng.normal(0.0, 1.0, 400)
    d, lo, hi = bootstrap_difference(np.r_[a, b], np.r_[np.ones(400, bool), np.zeros(400, bool)])
    # the true difference 1 lies in the 95 % interval; its width ~ 4 * sqrt(2 / 400) = 0.28
    assert lo < 1.0 < hi and 0.2 < hi - lo < 0.4
    assert d == pytest.approx(a.mean() - b.mean())


def test_heldout_predictive_draws_student_t_noise_for_a_student_t_output(
    student_t_fit, monkeypatch
):
    import twin_uq.trust.validation as validation

    post = student_t_fit
    model = post.model
    # The fit's own nu is weakly identified (posterior median ~20, nearly Normal): give the
    # draws alternating nu = 2.5 / 8 so that Student-t and Normal noise can be told apart.
    real = validation._residual_arrays
    add, prop, nu = real(post)
    nu = np.resize([2.5, 8.0], nu.size)
    monkeypatch.setattr(validation, "_residual_arrays", lambda p: (add, prop, nu))
    P = len(post.patient_ids)
    times = np.tile(np.linspace(1.0, 30.0, 8), (P, 1))
    y = heldout_predictive(post, times, np.zeros_like(times, int), seed=2, max_draws=None)
    # Noise-free predictions of the same draws, solved here independently.
    theta = np.asarray(post.posterior["theta"].transpose("chain", "draw", ...).values, float)
    theta = theta.reshape(-1, *theta.shape[2:])  # (S, P, K)
    f = np.empty_like(y)
    solve = jax.vmap(solve_outputs, in_axes=(None, 0, None, None, None))
    for i, pid in enumerate(post.patient_ids):
        sched = post.cohort.schedule(pid, signals=model.signals)
        cov = post.twin(pid).covariates
        f[:, i, :] = np.asarray(solve(model, theta[:, i, :], cov, sched, times[i])[1])[..., 0]
    a, b, v = add[:, :1, None], prop[:, :1, None], nu[:, None, None]
    assert_student_t_replicates(y, f, a, b, v)


def test_residual_arrays_put_each_site_at_its_output():
    from types import SimpleNamespace

    import xarray as xr

    from twin_uq.inference.residual import NU_UNUSED
    from twin_uq.trust.validation import _residual_arrays

    rng = np.random.default_rng(0)
    s_add = rng.random((2, 3, 1))  # (chain, draw, add_output): output "c"
    s_prop = rng.random((2, 3, 2))  # outputs "a" and "c"
    posterior = xr.Dataset(
        {
            "sigma_add": (("chain", "draw", "add_output"), s_add),
            # stored in another dimension order: the values must still land right
            "sigma_prop": (("prop_output", "chain", "draw"), s_prop.transpose(2, 0, 1)),
        },
        coords={"add_output": ["c"], "prop_output": ["a", "c"]},
    )
    post = SimpleNamespace(posterior=posterior, model=SimpleNamespace(output_names=("a", "b", "c")))
    add, prop, nu = _residual_arrays(post)
    np.testing.assert_array_equal(add[:, 2], s_add.reshape(6))
    np.testing.assert_array_equal(add[:, :2], 0.0)
    np.testing.assert_array_equal(prop[:, [0, 2]], s_prop.reshape(6, 2))
    np.testing.assert_array_equal(prop[:, 1], 0.0)
    np.testing.assert_array_equal(nu, np.full(6, NU_UNUSED))
