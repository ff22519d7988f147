"""The posterior predictive check scores censored observations by their interval (mid-PIT)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import xarray as xr

from twin_uq.trust.metrics import ppc_metrics


def _post(y_obs, y_rep, cens, lloq, limit, with_direction=True):
    """A stand-in posterior: one chain of replicates ``y_rep`` (D, P, N)."""
    dims = ("patient", "obs")
    P, N = np.shape(y_obs)
    constant = {
        "obs_time": (dims, np.tile(np.arange(N, dtype=float), (P, 1))),
        "obs_mask": (dims, np.ones((P, N), bool)),
        "obs_lloq": (dims, np.asarray(lloq, float)),
    }
    if with_direction:
        constant["obs_cens"] = (dims, np.asarray(cens))
        constant["obs_limit"] = (dims, np.asarray(limit, float))
    idata = {
        "observed_data": xr.Dataset({"y": (dims, np.asarray(y_obs, float))}),
        "posterior_predictive": xr.Dataset(
            {"y": (("chain", "draw", *dims), np.asarray(y_rep, float)[None])}
        ),
        "constant_data": xr.Dataset(constant),
    }
    return SimpleNamespace(idata=idata, patient_ids=[f"p{i}" for i in range(P)])


# 200 replicates, evenly spread on (0, 10): P(y_rep < x) = x / 10 exactly on the grid.
REP = (np.arange(200) + 0.5) / 20.0


def _reps(n_obs):
    return np.repeat(REP[:, None, None], n_obs, axis=2)  # (D, P=1, N)


def test_censored_points_enter_the_check_by_the_mid_pit_of_their_interval():
    nan = np.nan
    # obs 0: measured 5 (PIT 0.5); obs 1: below 0.2 (mid-PIT 0.01: a miss, the replicates lie
    # above the LLOQ); obs 2: below 4 (mid-PIT 0.2); obs 3: above 9.9 (mid-PIT 0.995, a miss);
    # obs 4: in (3, 7) (mid-PIT 0.5)
    post = _post(
        y_obs=[[5.0, nan, nan, nan, nan]],
        y_rep=_reps(5),
        cens=[[0, 1, 1, -1, 1]],
        lloq=[[-np.inf, 0.2, 4.0, 9.9, 7.0]],
        limit=[[nan, nan, nan, nan, 3.0]],
    )
    row = ppc_metrics(post).iloc[0]
    assert row["ppc_n"] == 5
    assert row["ppc_outside95"] == 2
    assert row["ppc_extreme"] == 0
    assert row["ppc_worst_time"] == 3.0  # |0.995 - 0.5| is the largest deviation


def test_fits_saved_without_the_direction_check_uncensored_points_only():
    nan = np.nan
    post = _post([[5.0, nan]], _reps(2), [[0, 1]], [[-np.inf, 0.2]], [[nan, nan]], False)
    row = ppc_metrics(post).iloc[0]
    assert row["ppc_n"] == 1 and row["ppc_outside95"] == 0
