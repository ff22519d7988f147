"""Timing of the posterior twin: ``update`` (one patient, 20 observations) and ``predict``.

Goals on the 2-core development machine: ``update`` < 2 s and ``predict`` (100 time points,
all posterior draws) < 0.2 s, median over repeats after compilation.

Run: ``.venv/bin/python benchmarks/twin_timing.py [--fit fit.nc]``; writes
``benchmarks/RESULTS_twin.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

import twin_uq as tq

tq.configure()  # float64 and one CPU device per parallel chain, before JAX starts

HERE = Path(__file__).parent
DESIGN = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    sparse_fraction=0.25,
    sparse_times=[2.0, 24.0],
    covariates={
        "WT": ("lognormal", 70.0, 0.2),
        "AGE": ("uniform", 20.0, 85.0),
        "SEX": ("categorical", ("F", "M"), (0.5, 0.5)),
    },
)  # the design of tests/conftest.py, so a saved test fit can be reused with --fit


_CPU: dict[int, list[float]] = {}


def _timed(fn, repeats):
    """Wall times of ``repeats`` calls; CPU times (all threads) kept in ``_CPU[id(fn)]``."""
    out, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        out.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    _CPU[id(out)] = cpu
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", help="a saved one_compartment_oral fit to reuse (.nc)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    sim = tq.simulate_cohort("one_compartment_oral", 16, DESIGN, seed=11)
    t0 = time.perf_counter()
    if args.fit and Path(args.fit).exists():
        post = tq.load_posterior(args.fit)
    else:
        post = tq.fit(
            "one_compartment_oral",
            sim.cohort,
            chains=2,
            warmup=400,
            draws=400,
            seed=0,
            progress=False,
        )
    fit_s = time.perf_counter() - t0
    t = sim.table
    pid = str(t.loc[t["sampling"] == "rich", "id"].iloc[0])
    twin = post.twin(pid)

    # 12 new observations -> 20 in all for the update.
    times = np.linspace(26.0, 48.0, 12)
    new = pd.DataFrame(
        {"id": pid, "time": times, "dv": 0.05 * np.exp(-0.05 * (times - 24)), "evid": 0}
    )
    t0 = time.perf_counter()
    twin.update(new, seed=0)
    update_first = time.perf_counter() - t0
    upd = _timed(lambda: twin.update(new, seed=1), args.repeats)
    updated = twin.update(new, seed=2)
    rec = updated.history[-1]

    grid = np.linspace(0.0, 48.0, 100)
    t0 = time.perf_counter()
    twin.predict(grid)
    predict_first = time.perf_counter() - t0
    pred = _timed(lambda: twin.predict(grid, seed=3), max(args.repeats, 20))

    rows = [
        (
            f"update (20 obs, {rec.method}, {rec.n_draws} draws)",
            update_first,
            statistics.median(upd),
            min(upd),
            2.0,
            statistics.median(_CPU[id(upd)]),
        ),
        (
            f"predict (100 times x {twin.n_draws} draws)",
            predict_first,
            statistics.median(pred),
            min(pred),
            0.2,
            statistics.median(_CPU[id(pred)]),
        ),
    ]
    lines = [
        "# Posterior twin timings",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"cohort fit ({'loaded' if args.fit and Path(args.fit).exists() else 'fitted'}) {fit_s:.1f} s.",
        f"Patient {pid} of a 16-patient one_compartment_oral NUTS fit "
        f"({post.posterior.sizes['chain']} x {post.posterior.sizes['draw']} draws).",
        "Median and minimum over repeats after the first (compiling) call.",
        "",
        "CPU = process CPU time of the call summed over threads: unlike wall time it barely",
        "depends on other load on the machine (on an idle machine wall <= CPU time).",
        "",
        "| operation | first call (s) | median wall (s) | min wall (s) | median CPU (s) | goal (s) | met (wall) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, first, med, mn, goal, cpu in rows:
        lines.append(
            f"| {name} | {first:.2f} | {med:.3f} | {mn:.3f} | {cpu:.3f} | < {goal:g} | {'yes' if med < goal else 'no'} |"
        )
    nrec = twin.update(new, seed=5, method="nuts").history[-1]  # compiles
    nuts = _timed(lambda: twin.update(new, seed=4, method="nuts"), 2)
    lines.append(
        f"| update, NUTS forced (4 x (400 + 500)) | - | {statistics.median(nuts):.3f} | {min(nuts):.3f} | "
        f"{statistics.median(_CPU[id(nuts)]):.3f} | < 2 | {'yes' if statistics.median(nuts) < 2 else 'no'} |"
    )
    lines += [
        "",
        f"NUTS update diagnostics: max R-hat {nrec.r_hat:.3f}, min bulk ESS {nrec.ess_bulk:.0f}, divergences {nrec.divergences}.",
        f"Importance-sampling update: Pareto k-hat {rec.pareto_k:.2f}, ESS {rec.ess_bulk:.0f} of 2048 proposals.",
        "",
        f"Load average during the run: {os.getloadavg()[0]:.1f} (other work on the machine slows every number).",
    ]
    text = "\n".join(lines) + "\n"
    (HERE / "RESULTS_twin.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
