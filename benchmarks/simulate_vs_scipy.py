"""Simulations per second: twin_uq (exact and ODE paths, jit + vmap) vs a SciPy solve_ivp loop.

Workload: one_compartment_oral, 4 oral doses of 100 mg every 12 h, 20 observation times
over 48 h, patients with log-normally varying ka, CL, V. Tolerances rtol=1e-6, atol=1e-9
for both ODE solvers (twin_uq Tsit5, SciPy RK45 = Dormand-Prince 5(4)); the exact path
needs none. Compile time is excluded from the rates and reported separately.

Run: .venv/bin/python benchmarks/simulate_vs_scipy.py
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import scipy
from scipy.integrate import solve_ivp

import twin_uq as tq
from twin_uq.simulate import Bolus, Schedule, simulate_cohort_outputs, stack_schedules

# float64 and one CPU device, as measured before: jax was imported first, so the import
# of twin_uq never added host devices here.
tq.configure(host_devices=1)

DOSE_TIMES = (0.0, 12.0, 24.0, 36.0)
DOSE = 100.0
TIMES = np.linspace(0.5, 48.0, 20)
RTOL, ATOL = 1e-6, 1e-9
SIZES = (1, 100, 1000)


def cohort(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    typical = np.array([1.0, 5.0, 50.0])
    theta = typical * np.exp(0.3 * rng.standard_normal((n, 3)))
    return theta


def scipy_one(theta: np.ndarray) -> np.ndarray:
    """One patient: integrate dose interval by dose interval, bolus added at each start."""
    ka, cl, v = theta
    k = cl / v

    def rhs(t, y):
        return [-ka * y[0], ka * y[0] - k * y[1]]

    y = np.zeros(2)
    out = np.empty(TIMES.size)
    ends = [*DOSE_TIMES[1:], TIMES[-1]]
    for t0, t1 in zip(DOSE_TIMES, ends, strict=True):
        y = y + np.array([DOSE, 0.0])
        last = t1 == TIMES[-1]
        sel = (t0 <= TIMES) & ((t1 >= TIMES) if last else (t1 > TIMES))
        t_eval = np.union1d(TIMES[sel], [t1])
        sol = solve_ivp(rhs, (t0, t1), y, method="RK45", rtol=RTOL, atol=ATOL, t_eval=t_eval)
        out[sel] = sol.y[1, np.searchsorted(t_eval, TIMES[sel])] / v
        y = sol.y[:, -1]
    return out


def time_it(fn, min_time: float = 1.0) -> float:
    """Seconds per call (best of repeated timing windows)."""
    best = np.inf
    for _ in range(3):
        reps, start = 0, time.perf_counter()
        while True:
            fn()
            reps += 1
            el = time.perf_counter() - start
            if el >= min_time / 3:
                break
        best = min(best, el / reps)
    return best


def main() -> None:
    model = tq.load_model("one_compartment_oral")
    sched_one = Schedule.build([Bolus(t, DOSE) for t in DOSE_TIMES], n_bolus=4, n_infusion=1)
    rows = []
    for n in SIZES:
        theta = cohort(n)
        scheds = stack_schedules([sched_one] * n)
        covs = jnp.full((n, 1), 70.0)
        times = jnp.broadcast_to(jnp.asarray(TIMES), (n, TIMES.size))
        th = jnp.asarray(theta)
        result = {}
        ref = None
        for label, settings in (
            ("exact", tq.SolverSettings("exact")),
            ("ode", tq.SolverSettings("tsit5", rtol=RTOL, atol=ATOL)),
        ):
            t0 = time.perf_counter()
            out = simulate_cohort_outputs(model, th, covs, scheds, times, settings)
            jax.block_until_ready(out)
            compile_s = time.perf_counter() - t0
            per = time_it(
                lambda s=settings, a=(th, covs, scheds, times): jax.block_until_ready(
                    simulate_cohort_outputs(model, *a, s)
                )
            )
            result[label] = (n / per, compile_s)
            if ref is None:
                ref = np.asarray(out[1][:, :, 0])
        n_sc = min(n, 100)  # SciPy rate from up to 100 patients (it is linear in n)
        t0 = time.perf_counter()
        sc = np.stack([scipy_one(theta[p]) for p in range(n_sc)])
        sc_rate = n_sc / (time.perf_counter() - t0)
        err = np.max(np.abs(sc - ref[:n_sc]) / (np.abs(ref[:n_sc]) + 1e-12))
        rows.append((n, result, sc_rate, err))

    lines = [
        "| patients | twin_uq exact (sims/s) | twin_uq ODE tsit5 (sims/s) | SciPy RK45 loop (sims/s) "
        "| exact / SciPy | ODE / SciPy | compile exact / ODE (s) | max rel. diff SciPy vs exact |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, res, sc_rate, err in rows:
        (ex, cex), (od, cod) = res["exact"], res["ode"]
        lines.append(
            f"| {n} | {ex:,.0f} | {od:,.0f} | {sc_rate:,.0f} | {ex / sc_rate:,.1f}x | "
            f"{od / sc_rate:,.1f}x | {cex:.1f} / {cod:.1f} | {err:.1e} |"
        )
    table = "\n".join(lines)
    print(table)
    header = f"""# Simulation throughput: twin_uq vs SciPy

Command: `.venv/bin/python benchmarks/simulate_vs_scipy.py`

Workload: `one_compartment_oral`, 4 oral doses of {DOSE:g} mg every 12 h, {TIMES.size}
observation times over 48 h, per-patient parameters log-normal around (ka 1/h, CL 5 L/h,
V 50 L). twin_uq: `simulate_cohort_outputs` (jit + vmap over patients), timed after
compilation (compile time of the first call shown separately). ODE tolerances rtol={RTOL:g},
atol={ATOL:g} for both Tsit5 and SciPy RK45; SciPy integrates each patient dose interval by
dose interval in a Python loop (rate measured on min(n, 100) patients).

Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()};
Python {sys.version.split()[0]}, jax {jax.__version__}, diffrax {diffrax.__version__},
numpy {np.__version__}, scipy {scipy.__version__}; float64.

"""
    Path(__file__).with_name("RESULTS_simulate.md").write_text(header + table + "\n")


if __name__ == "__main__":
    main()
