"""Trust metrics on hand-built posteriors whose answers are known in closed form."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from twin_uq.trust import TrustThresholds
from twin_uq.trust.metrics import covariate_support, information_metrics, ppc_metrics

S_CHAIN, S_DRAW = 4, 2000  # 8000 draws: MC SD of a variance ratio ~ sqrt(2/8000) = 1.6 %


def _stub(eta_sd, eta_mean=None, omega=0.5, n_obs=(8, 2, 0), seed=0):
    """Posterior with log theta = mu + omega * eta, eta_i ~ N(eta_mean_i, eta_sd_i^2)."""
    rng = np.random.default_rng(seed)
    P, K = len(eta_sd), 2
    eta_mean = np.zeros(P) if eta_mean is None else np.asarray(eta_mean)
    eta = eta_mean[None, None, :, None] + np.asarray(eta_sd)[
        None, None, :, None
    ] * rng.standard_normal((S_CHAIN, S_DRAW, P, K))
    mu = np.log([1.0, 10.0]) + 0.01 * rng.standard_normal((S_CHAIN, S_DRAW, K))
    om = np.full((S_CHAIN, S_DRAW, K), omega)
    theta = np.exp(mu[:, :, None, :] + om[:, :, None, :] * eta)
    ids = [f"P{i}" for i in range(P)]
    post = xr.Dataset(
        {
            "theta": (("chain", "draw", "patient", "parameter"), theta),
            "eta": (("chain", "draw", "patient", "parameter"), eta),
            "omega": (("chain", "draw", "parameter"), om),
        },
        coords={"patient": ids, "parameter": ["a", "b"]},
    )
    N = max(max(n_obs), 1)
    mask = np.zeros((P, N), bool)
    times = np.full((P, N), np.nan)
    for i, n in enumerate(n_obs):
        mask[i, :n] = True
        times[i, :n] = np.linspace(1.0, 24.0, n) if n > 1 else 4.0
    cd = xr.Dataset(
        {
            "obs_mask": (("patient", "obs"), mask),
            "obs_censored": (("patient", "obs"), np.zeros_like(mask)),
            "obs_time": (("patient", "obs"), times),
        }
    )
    idata = xr.DataTree.from_dict({"posterior": post, "constant_data": cd})
    return SimpleNamespace(posterior=post, idata=idata, patient_ids=tuple(ids))


def test_contraction_matches_closed_form():
    # Var_post(log theta) = omega^2 * s^2; new-patient variance = omega^2 + Var(mu) (tiny)
    # so contraction = 1 - s^2 / (1 + 0.01^2 / 0.25).
    sd = np.array([0.2, 0.7, 1.0])
    info, ctab = information_metrics(_stub(sd), TrustThresholds())
    expected = 1 - sd**2 / (1 + 0.01**2 / 0.25)
    for k in ("a", "b"):
        np.testing.assert_allclose(ctab[k].to_numpy(), expected, atol=0.04)
    np.testing.assert_allclose(info["contraction_median"], expected, atol=0.04)
    np.testing.assert_allclose(info["eta_sd_median"], sd, rtol=0.03)


def test_shrinkage_and_observation_counts():
    info, _ = information_metrics(
        _stub([0.3, 0.3, 0.3], eta_mean=[2.0, 0.0, -1.0]), TrustThresholds()
    )
    np.testing.assert_allclose(info["eta_abs_mean_max"], [2.0, 0.0, 1.0], atol=0.03)
    assert info["n_obs"].tolist() == [8, 2, 0]
    assert info["obs_span"].iloc[0] == pytest.approx(23.0)
    assert np.isnan(info["obs_span"].iloc[2])  # no observations: no span


def test_negligible_population_variability_is_left_out_of_contraction():
    info, ctab = information_metrics(_stub([1.0, 1.0, 1.0], omega=0.01), TrustThresholds())
    assert ctab.isna().all().all()
    assert info["contraction_median"].isna().all()


def _ppc_stub(y_obs, n_draws=4000, seed=1):
    rng = np.random.default_rng(seed)
    y_obs = np.asarray(y_obs, float)
    P, N = y_obs.shape
    rep = rng.standard_normal((1, n_draws, P, N))
    return SimpleNamespace(
        idata=xr.DataTree.from_dict(
            {
                "observed_data": xr.Dataset({"y": (("patient", "obs"), y_obs)}),
                "posterior_predictive": xr.Dataset(
                    {"y": (("chain", "draw", "patient", "obs"), rep)}
                ),
                "constant_data": xr.Dataset(
                    {"obs_time": (("patient", "obs"), np.tile(np.arange(N, dtype=float), (P, 1)))}
                ),
            }
        ),
        patient_ids=tuple(f"P{i}" for i in range(P)),
    )


def test_ppc_counts_misses_and_extremes():
    y = np.array(
        [
            [0.0, 0.5, -0.5, 1.0, np.nan],  # well inside
            [3.0, -3.0, 2.5, 0.0, 0.0],  # 3 of 5 outside the 95 % interval (|z| > 1.96)
            [9.0, 0.0, 0.0, 0.0, 0.0],  # one beyond every replicate
        ]
    )
    ppc = ppc_metrics(_ppc_stub(y))
    assert ppc["ppc_n"].tolist() == [4, 5, 5]
    assert ppc["ppc_outside95"].tolist() == [0, 3, 1]
    assert ppc["ppc_extreme"].tolist() == [0, 0, 1]
    assert ppc["ppc_worst_time"].iloc[2] == 0.0
    # P(Binomial(5, 0.05) >= 3) = 0.00116
    assert ppc["ppc_pvalue"].iloc[1] == pytest.approx(0.001158, rel=1e-3)
    assert ppc["ppc_pvalue"].iloc[0] == 1.0


def _cov_stub(frame):
    cohort = SimpleNamespace(covariates=frame, time_varying=())
    return SimpleNamespace(
        cohort=cohort, patient_ids=tuple(frame.index), model=SimpleNamespace(signals=())
    )


def test_covariates_outside_the_cohort_are_named():
    rng = np.random.default_rng(0)
    n = 40
    frame = pd.DataFrame(
        {
            "WT": 70 * np.exp(0.15 * rng.standard_normal(n)),
            "AGE": rng.uniform(30, 70, n),
            "SEX": pd.Categorical(["F", "M"] * (n // 2)),
        },
        index=[f"P{i:02d}" for i in range(n)],
    )
    frame.iloc[0, 0] = 180.0  # far heavier than anyone else
    frame.iloc[1, 1] = 50.0
    frame.iloc[1, 0] = 70.0
    frame["SEX"] = frame["SEX"].cat.add_categories(["X"])
    frame.iloc[2, 2] = "X"  # a level nobody else has
    table, flags = covariate_support(_cov_stub(frame), TrustThresholds())
    assert any("WT" in f and "above" in f for f in flags["P00"])
    assert flags["P01"] == ()
    assert any("SEX" in f and "only 0 other" in f for f in flags["P02"])
    assert table["mahalanobis_d2"].idxmax() == "P00"
    # Typical patients of a normal-ish cohort are rarely flagged (cut-off: 99.9 % quantile).
    assert sum(bool(v) for v in flags.values()) <= 3


def test_every_value_of_a_time_varying_covariate_is_checked():
    # 20 neonates gaining weight from ~3 kg; P07's weight at 96 h is 9 kg (a typing error
    # of the kind a baseline-only check misses: its first value is ordinary).
    rng = np.random.default_rng(1)
    ids = [f"P{i:02d}" for i in range(20)]
    rows = []
    for p in ids:
        w = 3.0 * np.exp(0.1 * rng.standard_normal())
        for t in (0.0, 48.0, 96.0):
            rows.append((p, t, "WT", w * (1 + 0.001 * t)))
    series = pd.DataFrame(rows, columns=["id", "time", "covariate", "value"])
    series.loc[(series["id"] == "P07") & (series["time"] == 96.0), "value"] = 9.0
    frame = pd.DataFrame(
        {"WT": series.groupby("id")["value"].first(), "AGE": rng.uniform(1, 5, 20)}, index=ids
    )
    cohort = SimpleNamespace(covariates=frame, time_varying=("WT",), covariate_series=series)
    post = SimpleNamespace(cohort=cohort, patient_ids=tuple(ids), model=SimpleNamespace(signals=()))
    table, flags = covariate_support(post, TrustThresholds())
    assert len(flags["P07"]) == 1
    assert "WT = 9 at time 96" in flags["P07"][0]
    assert table.loc["P07", "covariate_max_abs_z"] > TrustThresholds().covariate_z_max
    assert not any(flags[p] for p in ids if p != "P07")
