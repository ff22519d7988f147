"""Cost of one log-density gradient of the windkessel3 waveform fit, by solver.

The cohort of ``heart_pressure.py`` (four-element Windkessel truth, two fitted beats of
160 pressure samples and an inflow knot every 5 ms per patient, OU residuals) is
prepared once per solver; the jitted ``value_and_grad`` of the NumPyro potential is
timed at the same starting point, the solvers interleaved over the repeats so that they
share the machine's load (the 1-minute load average is recorded before and after).

    python heart_gradient.py --patients 6 --out out/heart_gradient.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from functools import partial
from pathlib import Path

import numpy as np
from heart_pressure import FIT_BEATS
from recovery_time_varying import write_result

SOLVERS = {
    "tsit5 (rtol 1e-6)": dict(method="tsit5", rtol=1e-6, atol=1e-6, max_steps=16384),
    "rk4 5 ms": dict(method="rk4", fixed_step=0.005, rtol=1e-6, atol=1e-6),
    "rk4 2.5 ms": dict(method="rk4", fixed_step=0.0025, rtol=1e-6, atol=1e-6),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default="out/heart_gradient.json")
    args = ap.parse_args(argv)

    import jax
    from numpyro.infer import init_to_median
    from numpyro.infer.util import initialize_model

    import twin_uq as tq
    from twin_uq.inference.numpyro_model import cohort_program
    from twin_uq.inference.prepare import prepare_fit
    from twin_uq.testing.windkessel4 import cohort_table, simulate_pressure_cohort

    tq.configure()
    model = tq.load_model("windkessel3")
    sim = simulate_pressure_cohort(args.patients, seed=2026, n_beats=3)
    table = cohort_table(sim)
    period = 60.0 / 75.0
    held = table[(table["evid"] == 0) & (table["time"] >= FIT_BEATS * period - 1e-9)]
    cohort = tq.read_cohort(table.drop(held.index), time_unit="s")
    population = tq.PopulationModel(model, residual_correlation="ou")
    load_before = os.getloadavg()[0]
    fns, compile_s, values = {}, {}, {}
    for name, opts in SOLVERS.items():
        prep = prepare_fit(population, cohort, tq.SolverSettings(**opts))
        info = initialize_model(
            jax.random.key(0),
            partial(cohort_program, prep.structure),
            model_args=prep.program_args(),
            init_strategy=init_to_median(num_samples=15),
        )
        f = jax.jit(jax.value_and_grad(info.potential_fn))
        z = info.param_info.z
        t0 = time.perf_counter()
        values[name] = float(jax.block_until_ready(f(z))[0])
        compile_s[name] = time.perf_counter() - t0
        fns[name] = (f, z)
    times = {name: [] for name in fns}
    for _ in range(args.repeats):
        for name, (f, z) in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(z))
            times[name].append(time.perf_counter() - t0)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "commit": commit,
        "settings": vars(args),
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "solvers": {
            name: {
                "first_call_s": compile_s[name],
                "grad_ms_median": 1e3 * float(np.median(times[name])),
                "grad_ms_min": 1e3 * float(np.min(times[name])),
                "potential": values[name],
            }
            for name in fns
        },
    }
    for name, r in result["solvers"].items():
        print(
            f"{name}: gradient {r['grad_ms_median']:.2f} ms (min {r['grad_ms_min']:.2f}), "
            f"first call {r['first_call_s']:.1f} s, potential {r['potential']:.3f}"
        )
    print("load average (1 min) before/after:", result["load_average_1min"])
    write_result(result, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
