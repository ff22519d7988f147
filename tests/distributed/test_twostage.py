"""Two-stage fit on a real LocalCluster against the single-process hierarchical fit.

Stage 1 is the session fixture ``oral_fit`` itself (``population=``), so the two-stage
patient posteriors are draws of ``p(theta_i | y_i, population posterior)`` and must agree
with the joint fit's ``theta_i`` marginals within Monte Carlo error (plus the small
double-use of patient i's data in the population posterior, see twin_uq.twin.update).
Worker compilation takes minutes on 2 shared cores, so the module is marked slow.
"""

import json

import numpy as np
import pandas as pd
import pytest
from optional_deps import require

distributed = require("distributed")

import arviz_stats as azs  # noqa: E402
import cloudpickle  # noqa: E402
import worker_faults  # noqa: E402

import twin_uq as tq  # noqa: E402
from twin_uq.distributed import fit_two_stage  # noqa: E402

pytestmark = pytest.mark.slow

SETTINGS = dict(batch_size=4, chains=4, warmup=200, draws=250, population_draws_used=256, seed=3)


@pytest.fixture(scope="module")
def marker(tmp_path_factory):
    return tmp_path_factory.mktemp("fault") / "kill-once"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # A restarted worker reloads compiled samplers from disk instead of recompiling.
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache"))}
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env=env
    ) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def two_stage(oral_fit, client):
    return fit_two_stage("one_compartment_oral", oral_fit.cohort, population=oral_fit,
                         cluster=client, **SETTINGS)  # fmt: skip


def _mcse(x: np.ndarray, method: str, prob: float | None = None) -> float:
    return float(azs.mcse(x, method=method, prob=prob))


def test_layout_and_every_patient_exactly_once(two_stage, oral_fit):
    post = two_stage
    assert post.method == "two-stage" and post.approximate
    assert list(post.posterior["patient"].values) == list(oral_fit.patient_ids)
    for group in ("posterior", "posterior_predictive", "log_likelihood", "observed_data",
                  "constant_data", "cohort_table", "two_stage"):  # fmt: skip
        assert group in post.idata.children, group
    th = post.posterior["theta"]
    assert th.sizes == {"chain": 4, "draw": 250, "patient": 16, "parameter": 3}
    assert np.isfinite(th.values).all() and (th.values > 0).all()
    assert np.isfinite(post.idata["log_likelihood"]["y"].values).all()
    assert (post.idata["two_stage"]["divergences"].values == 0).all()
    assert len(set(post.idata["two_stage"]["worker_pid"].values.tolist())) == 2


def test_population_quantities_are_the_stage1_draws(two_stage, oral_fit):
    for var in ("mu", "omega", "sigma_prop"):
        ref = oral_fit.posterior[var].values.reshape(2000, -1)
        got = two_stage.posterior[var].values.reshape(1000, -1)
        # Evenly thinned stage-1 draws, in order: every 2nd of 2000 (rounded).
        idx = np.linspace(0, 1999, 1000).round().astype(int)
        np.testing.assert_array_equal(got, ref[idx])


def test_patient_medians_and_quantiles_match_the_joint_fit_within_mcse(two_stage, oral_fit):
    a = oral_fit.posterior["theta"]
    b = two_stage.posterior["theta"]
    zs = []
    for pid in oral_fit.patient_ids:
        for par in a["parameter"].values:
            x = np.log(a.sel(patient=pid, parameter=par).values)
            y = np.log(b.sel(patient=pid, parameter=par).values)
            for method, prob, stat in (
                ("median", None, np.median),
                ("quantile", 0.05, lambda v: np.quantile(v, 0.05)),
                ("quantile", 0.95, lambda v: np.quantile(v, 0.95)),
            ):
                se = np.hypot(_mcse(x, method, prob), _mcse(y, method, prob))
                zs.append((stat(y) - stat(x)) / se)
    zs = np.asarray(zs)
    # 144 comparisons: |z| < 4.5 has family-wise false-alarm rate ~1e-3 under pure MC
    # error; the mean z (a shared bias) is checked separately.
    assert np.abs(zs).max() < 4.5, np.abs(zs).max()
    assert abs(zs.mean()) < 4.5 / np.sqrt(len(zs)) * 3


def test_saved_result_round_trips(two_stage, tmp_path):
    path = two_stage.save(tmp_path / "two_stage.nc")
    back = tq.load_posterior(path)
    assert back.method == "two-stage"
    np.testing.assert_array_equal(back.posterior["theta"].values, two_stage.posterior["theta"].values)
    np.testing.assert_array_equal(
        back.idata["two_stage"]["pop_draw"].values, two_stage.idata["two_stage"]["pop_draw"].values
    )


def test_killed_worker_still_gives_the_complete_identical_result(two_stage, oral_fit, client, marker):
    # The plugin travels by value: worker processes need not import the tests folder.
    cloudpickle.register_pickle_by_value(worker_faults)
    client.register_plugin(worker_faults.KillOnceOnTask(marker, key_prefix="twin-uq-stage2-"))
    marker.write_text("kill the first worker that starts a batch")
    try:
        post = fit_two_stage("one_compartment_oral", oral_fit.cohort, population=oral_fit,
                             cluster=client, **SETTINGS)  # fmt: skip
    finally:
        client.unregister_worker_plugin(worker_faults.KillOnceOnTask.name)
    assert not marker.exists()  # a worker really died
    assert list(post.posterior["patient"].values) == list(oral_fit.patient_ids)
    # Per-patient seeds: the rerun batch gives the same draws whichever worker ran it.
    np.testing.assert_allclose(
        post.posterior["theta"].values, two_stage.posterior["theta"].values, rtol=1e-10
    )


def test_update_many_updates_each_patient_once(oral_fit, client):
    from twin_uq.distributed import update_many

    rows = pd.DataFrame({"id": ["P02", "P05"], "time": [30.0, 30.0], "dv": [0.05, 0.08]})
    out = update_many(oral_fit, rows, cluster=client, chains=2, warmup=100, draws=100, seed=1)
    assert sorted(out) == ["P02", "P05"]
    for res in out.values():
        assert res["theta"].ndim == 2 and res["theta"].shape[1] == 3
        assert np.isfinite(res["theta"]).all()


def test_a_fixed_step_model_is_checked_against_the_adaptive_reference(client):
    # The two-stage result must carry the same after-fit solver check as a joint fit.
    knots = np.array([0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100, 120, 150, 180.0])
    insulin = 10 + 90 * np.exp(-knots / 8) + 20 * (knots / 30) * np.exp(1 - knots / 30)
    design = tq.Design(times=[5, 10, 15, 20, 30, 45, 60, 90, 120, 180],
                       signals={"insulin": (knots, insulin)})  # fmt: skip
    model = tq.load_model("bergman_minimal")
    assert model.solver.is_fixed_step
    sim = tq.simulate_cohort(model, 4, design, seed=2)
    stage1 = tq.fit(model, sim.cohort, chains=2, warmup=150, draws=100, seed=3, progress=False)
    post = fit_two_stage(model, sim.cohort, population=stage1, cluster=client, batch_size=2,
                         chains=2, warmup=100, draws=100, population_draws_used=64, seed=1)  # fmt: skip
    check = json.loads(post.idata.attrs["fixed_step_check"])
    assert check["passed"] and check["draws_checked"] == 32
    assert check["reference"]["method"] == "tsit5"
    n_obs = int(np.asarray(post.prepared.data.arrays.obs_mask).sum())
    assert check["threshold_sd"] == pytest.approx(0.1 / np.sqrt(n_obs))
