"""Where a first fit spends its JAX compilation, phase by phase.

Runs one short default fit (``tq.fit``, NUTS, 2 chains) of a benchmark cohort in a fresh
process and sums JAX's own compile events (``/jax/core/compile/*``: tracing, lowering to
StableHLO, XLA backend compilation) per phase of :func:`twin_uq.fit`: preparation (the
centring point), the sampler, post-processing of the draws, the after-fit solver check and
the rest. A second fit of the same shape follows, to show what it reuses.

    python compile_probe.py --problem b1_bergman_100 [--warmup 20 --draws 20] [--repeats 2]

Each repeat is its own process (a process's first fit is the one that compiles). The
machine's load changes the seconds by ±30 %: compare versions in one run, interleaved.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("prepare_fit", "run_nuts", "derive_draw_quantities", "check_fit_draws", "build_idata")


def probe(problem: str, warmup: int, draws: int) -> dict:
    """One process: compile seconds per phase and event kind for a first and second fit."""
    import jax
    from fit_benchmark import DATA, MODELS, PROBLEMS

    import twin_uq as tq

    # float64 and one CPU device, as measured before (jax is imported first here, so the
    # import of twin_uq never added host devices): chains=2 run vectorised.
    tq.configure(host_devices=1)
    fit_module = importlib.import_module("twin_uq.inference.fit")  # the name is the function
    current = {"phase": "other"}
    seconds: dict = defaultdict(float)

    def listen(event, secs, **kw):
        if event.startswith("/jax/core/compile/"):
            seconds[(current["phase"], event.rsplit("/", 1)[-1])] += secs

    jax.monitoring.register_event_duration_secs_listener(listen)

    def labelled(name, function):
        def wrapper(*args, **kwargs):
            current["phase"] = name
            try:
                return function(*args, **kwargs)
            finally:
                current["phase"] = "other"

        return wrapper

    for name in PHASES:  # fit() calls these through its module's globals
        setattr(fit_module, name, labelled(name, getattr(fit_module, name)))
    model = tq.load_model(MODELS[PROBLEMS[problem][0]])
    cohort = tq.read_cohort(DATA / f"{problem}.csv")
    result = {}
    for which, seed in (("first", 1), ("second", 2)):
        seconds.clear()
        t0 = time.perf_counter()
        tq.fit(model, cohort, chains=2, warmup=warmup, draws=draws, seed=seed, progress=False)
        wall = time.perf_counter() - t0
        phases: dict = defaultdict(dict)
        for (phase, kind), s in seconds.items():
            phases[phase][kind] = round(s, 2)
        result[which] = {
            "wall_s": round(wall, 2),
            "compile_s": round(sum(seconds.values()), 2),
            "by_phase": {p: dict(v, total=round(sum(v.values()), 2)) for p, v in phases.items()},
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", default="b1_bergman_100")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(probe(args.problem, args.warmup, args.draws)))
        return
    for _ in range(args.repeats):
        cmd = [sys.executable, __file__, "--worker", "--problem", args.problem,
               "--warmup", str(args.warmup), "--draws", str(args.draws)]  # fmt: skip
        out = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"probe failed:\n{out.stderr[-3000:]}")
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
