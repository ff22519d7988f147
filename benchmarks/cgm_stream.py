"""Cost of following a CGM stream: seconds per new reading, and what recompilation costs.

A ``glucose_meal`` twin with an OU residual (:mod:`twin_uq.testing.cgm_twin`: the shapes
of a fitted twin, ``--population-draws`` population draws) knows a 5-minute trace up to
``--fit-end`` min; it then follows the next ``--readings`` values one at a time
(:func:`twin_uq.diabetes.stream.stream_twin`: surprise check, ``twin.update``, trust,
forecast at +30/60/120 min, four risks). Run twice: with the stream's fixed-step horizon
extended in 240-min blocks (the default) and following every reading (``horizon_block``
= the solver's 2-min step, which is what ``SolverSettings.covering`` alone does).

    .venv/bin/python benchmarks/cgm_stream.py [--readings 24] [--population-draws 256]

Prints per-step seconds by stage and the median of the steps after the first; writes
``benchmarks/out/cgm_stream.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

import twin_uq as tq
from twin_uq.diabetes.stream import stream_twin
from twin_uq.testing.cgm_twin import cgm_trace, cgm_twin


def run(block: float, readings: int, args) -> list[dict]:
    trace = cgm_trace(end=args.fit_end + 5.0 * readings)
    twin = cgm_twin(trace, fit_end=args.fit_end, population_draws=args.population_draws)
    new = trace[trace["time"] > args.fit_end]
    steps = []
    t0 = time.perf_counter()
    cpu = time.process_time()
    for step in stream_twin(twin, new, horizon_block=block, seed=1):
        # CPU seconds of this process (all its threads): what the step costs whatever the
        # other processes on the machine do.
        now = time.process_time()
        rec = {k: round(v, 3) for k, v in step.seconds.items()}
        rec["cpu"], cpu = round(now - cpu, 3), now
        rec |= {"time": step.time, "method": step.twin.history[-1].method,
                "status": str(step.trust.status)}  # fmt: skip
        print(f"block {block:g}: {rec}", flush=True)
        steps.append(rec)
    print(f"block {block:g}: {time.perf_counter() - t0:.1f} s for {len(steps)} readings")
    return steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--readings", type=int, default=24)
    p.add_argument(
        "--readings-uncached", type=int, default=4,
        help="readings of the run that follows every reading's horizon (each one compiles)",
    )  # fmt: skip
    p.add_argument("--fit-end", type=float, default=240.0)
    p.add_argument("--population-draws", type=int, default=256)
    p.add_argument("--out", default="benchmarks/out/cgm_stream.json")
    args = p.parse_args()
    tq.configure()
    # the commit of the code this process runs (taken before the runs: the branch may move)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    load = os.getloadavg()
    results = {}
    for block, n in ((240.0, args.readings), (2.0, args.readings_uncached)):
        steps = run(block, n, args)
        totals = np.array([s["total"] for s in steps])
        cpus = np.array([s["cpu"] for s in steps])
        results[str(block)] = dict(
            steps=steps,
            first=float(totals[0]),
            median_after_first=float(np.median(totals[1:])),
            max_after_first=float(np.max(totals[1:])),
            cpu_median_after_first=float(np.median(cpus[1:])),
        )
        print(
            f"block {block:g}: first {totals[0]:.1f} s, median after {np.median(totals[1:]):.2f} s"
        )
    record = dict(vars(args), commit=commit, load_before=load, load_after=os.getloadavg(),
                  cpus=os.cpu_count(), results=results)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
