"""Fenton-Karma cell model (restitution test data): equations, integration, protocol."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from twin_uq.testing.fenton_karma import (
    APD_LEVEL,
    MLR1,
    fk_beats,
    fk_rest_state,
    simulate_restitution_cohort,
)


def _rhs(t, y, P, stim):
    """Fenton & Karma (1998) eqs. 3-9 written again, for SciPy (independent of the scan)."""
    u, v, w = y
    p = float(u >= P["u_c"])
    q = float(u >= P["u_v"])
    j_fi = -v * p * (1 - u) * (u - P["u_c"]) / P["tau_d"]
    j_so = u * (1 - p) / P["tau_0"] + p / P["tau_r"]
    j_si = -w * (1 + np.tanh(P["k"] * (u - P["u_csi"]))) / (2 * P["tau_si"])
    tau_vm = q * P["tau_v1m"] + (1 - q) * P["tau_v2m"]
    dv = (1 - p) * (1 - v) / tau_vm - p * v / P["tau_vp"]
    dw = (1 - p) * (1 - w) / P["tau_wm"] - p * w / P["tau_wp"]
    return [stim - (j_fi + j_so + j_si), dv, dw]


def test_one_beat_matches_an_adaptive_reference_solve():
    # One beat from rest at the published MLR-I values: stimulus 0.5/ms for 1 ms.
    _, apd = fk_beats(MLR1, 1000.0, 1, fk_rest_state(1))
    kw = {"method": "LSODA", "rtol": 1e-9, "atol": 1e-11, "max_step": 0.5}
    a = solve_ivp(_rhs, (0, 1), [0.0, 1.0, 1.0], args=(MLR1, 0.5), dense_output=True, **kw)
    b = solve_ivp(_rhs, (1, 1000), a.y[:, -1], args=(MLR1, 0.0), dense_output=True, **kw)
    tt = np.linspace(0, 1, 2001)
    up = tt[np.argmax(a.sol(tt)[0] > APD_LEVEL)]
    t = np.linspace(1, 1000, 200_001)
    u = b.sol(t)[0]
    down = t[np.flatnonzero((u[:-1] > APD_LEVEL) & (u[1:] <= APD_LEVEL))[0]]
    assert 200 < apd[0, 0] < 400  # a plausible ventricular APD90 (ms)
    assert apd[0, 0] == pytest.approx(down - up, abs=1.0)  # fixed 0.02 ms step vs LSODA


def test_cohort_table_and_truth():
    sim = simulate_restitution_cohort(
        3, (800.0, 500.0), seed=1, beats_per_bcl=4, alternans_bcl=400.0, alternans_beats=4
    )
    d = sim.data
    assert set(d["output"]) == {"apd90"} and set(d["time"]) <= {500.0, 800.0}
    # rows by patient and increasing cycle length, as the data loader requires
    assert all(np.all(np.diff(g["time"].to_numpy()) > 0) for _, g in d.groupby("id"))
    t = sim.truth.set_index("id")
    assert list(t.index) == ["P000", "P001", "P002"]
    # noise-free APD shortens at the faster rate (restitution), measured = truth + noise
    assert (t["apd_500"] < t["apd_800"]).all()
    merged = d.merge(t[["apd_800"]], left_on="id", right_index=True).query("time == 800")
    assert np.abs(merged["dv"] - merged["apd_800"]).max() < 5 * 4.0
    assert t["alternans"].dtype == bool
