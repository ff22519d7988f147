"""Four-element Windkessel (pressure-waveform test data): equations, solution, cohort."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from twin_uq.testing.windkessel4 import (
    TYPICAL,
    cohort_table,
    half_sine_flow,
    simulate_pressure_cohort,
    wk4_pressure,
)

FLOW = {"stroke_volume": 70.0, "heart_rate": 75.0, "ejection_time": 0.3}


def test_waveform_matches_an_adaptive_reference_solve():
    # The parallel four-element Windkessel written again for SciPy's LSODA, paced from rest
    # for 32 beats (18 time constants R·C: the periodic steady state to 1e-6 mmHg), then
    # compared over two beats with the simulator's exact periodic start.
    R, C, Z, L = (TYPICAL[k] for k in ("R", "C", "Z", "L"))

    def rhs(t, y):
        q = half_sine_flow(np.asarray(t), **FLOW)
        return [(q - y[0] / R) / C, Z * (q - y[1]) / L]

    t, p, _ = wk4_pressure(TYPICAL, 1.6, **FLOW)
    lead = 32 * 0.8
    ref = solve_ivp(
        rhs,
        (0, lead + 1.6),
        [0.0, 0.0],
        method="LSODA",
        rtol=1e-10,
        atol=1e-10,
        max_step=2e-3,
        dense_output=True,
    )
    tt = t[::200]
    y = ref.sol(lead + tt)
    expected = y[0] + Z * (half_sine_flow(lead + tt, **FLOW) - y[1])
    np.testing.assert_allclose(p[::200], expected, rtol=0, atol=1e-3)  # mmHg


def test_mean_pressure_is_resistance_times_mean_flow():
    # At periodic steady state no volume is stored over a beat and the inertance carries
    # no mean pressure drop: mean P = R · SV · HR / 60, whatever C, Z and L.
    for params in (TYPICAL, {"R": 1.6, "C": 0.7, "Z": 0.09, "L": 0.002}):
        t, p, q = wk4_pressure(params, 0.8, **FLOW)
        mean = np.trapezoid(p, t) / 0.8
        assert mean == pytest.approx(params["R"] * 70.0 * 75.0 / 60.0, rel=1e-4)
        assert np.trapezoid(q, t) == pytest.approx(70.0, rel=1e-6)  # one stroke volume


def test_cohort_table_noise_and_whatif_truth():
    sim = simulate_pressure_cohort(40, seed=3, noise_sd=2.0, noise_tau=0.03)
    d = sim.data
    assert set(d["output"]) == {"pressure"} and d.groupby("id").size().eq(240).all()
    assert (d.groupby("id")["P0"].nunique() == 1).all()
    # Noise: SD and lag-1 correlation of the residuals about the truth, pooled over
    # patients, within Monte Carlo error (9600 draws; lag-1 correlation exp(-0.01/0.03)).
    resid = []
    for pid, rows in d.groupby("id"):
        th = sim.truth.set_index("id").loc[pid]
        t, p, _ = wk4_pressure({k: th[k] for k in ("R", "C", "Z", "L")}, 2.4, **FLOW)
        resid.append(rows["dv"].to_numpy() - np.interp(rows["time"], t, p))
    r = np.stack(resid)
    assert r.std() == pytest.approx(2.0, rel=0.05)
    lag1 = np.mean(r[:, 1:] * r[:, :-1]) / r.var()
    assert lag1 == pytest.approx(np.exp(-1 / 3), abs=0.04)
    # The what-if lowers R by 20 %: mean pressure falls by 20 % (R · mean flow).
    ratio = sim.truth["whatif_mean_pressure"] / sim.truth["mean_pressure"]
    np.testing.assert_allclose(ratio, 0.8, rtol=1e-4)


def test_cohort_table_has_pressure_rows_and_inflow_signal_rows():
    sim = simulate_pressure_cohort(2, seed=0)
    table = cohort_table(sim)
    flow_t, flow_q = sim.inflow
    for pid, rows in table.groupby("id", sort=False):
        obs, sig = rows[rows["evid"] == 0], rows[rows["evid"] == 2]
        data = sim.data[sim.data["id"] == pid]
        np.testing.assert_array_equal(obs["dv"], data["dv"])
        assert obs["inflow"].isna().all() and sig["dv"].isna().all()
        np.testing.assert_array_equal(sig["time"], flow_t)
        np.testing.assert_array_equal(sig["inflow"], flow_q)
        assert (rows["P0"] == data["P0"].iloc[0]).all()
        # sorted by time, a pressure sample before a signal row at the same time
        key = list(zip(rows["time"], rows["evid"], strict=True))
        assert key == sorted(key)
