"""Where a first fit spends its JAX compilation, phase by phase.

Runs one short default fit (``tq.fit``, NUTS, 2 chains) of a benchmark cohort in a fresh
process and sums JAX's own compile events (``/jax/core/compile/*``: tracing, lowering to
StableHLO, XLA backend compilation) per phase of :func:`twin_uq.fit`: preparation (the
centring point), the sampler, post-processing of the draws, the after-fit solver check and
the rest. A second fit follows, to show what it reuses: of the same cohort, or of
``--then`` (another cohort, e.g. ``p1_oral_1000:100``, its first 100 patients: same shapes,
other data; or ``p1_oral_12``: other shapes).

    python compile_probe.py --problem b1_bergman_100 [--warmup 20 --draws 20] [--repeats 2]
    python compile_probe.py --problem p1_oral_100 --cache /tmp/cc --repeats 2   # cold, warm
    python compile_probe.py --problem p1_oral_100 --then p1_oral_1000:110 --shape-buckets

``--shape-buckets`` fits with ``tq.fit(..., shape_buckets=True)``: the cohort padded to its
bucket (100 and 110 patients are both in bucket 112), so the second fit of another size
reuses the first's programs. ``--then-only`` skips the first fit in every process (with a
warm ``--cache``: a new process's first fit of a cohort whose bucket is in the cache).

``--cache FOLDER`` turns on JAX's persistent compilation cache in FOLDER for every
process (``tq.configure(compilation_cache=FOLDER)``), so the second repeat is a new
process with a warm cache; ``--cache off`` (the default) runs without one. Cache hits and
misses are counted from JAX's own events.

Each repeat is its own process (a process's first fit is the one that compiles). The
machine's load changes the seconds by ±30 %: compare versions in one run, interleaved.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("prepare_fit", "run_nuts", "derive_draw_quantities", "check_fit_draws", "build_idata")


def _cohort(spec: str):
    """``name`` or ``name:P`` (the first P patients of that cohort)."""
    from fit_benchmark import DATA

    import twin_uq as tq

    name, _, count = spec.partition(":")
    cohort = tq.read_cohort(DATA / f"{name}.csv")
    if count:
        cohort = cohort.select(list(cohort.ids)[: int(count)])
    return cohort


def probe(
    problem: str,
    warmup: int,
    draws: int,
    then: str | None,
    cache: str,
    buckets: bool = False,
    then_only: bool = False,
) -> dict:
    """One process: compile seconds per phase and event kind for a first and second fit."""
    import jax
    from fit_benchmark import MODELS, PROBLEMS

    import twin_uq as tq

    # float64 and one CPU device, as measured before (jax is imported first here, so the
    # import of twin_uq never added host devices): chains=2 run vectorised.
    t_start = time.perf_counter()
    try:
        tq.configure(host_devices=1, compilation_cache=False if cache == "off" else cache)
    except TypeError:  # code before 2026-12-07: only the command line had a cache
        tq.configure(host_devices=1)
        if cache != "off":
            from twin_uq.cli._cache import enable_compilation_cache

            os.environ["TWIN_UQ_CACHE"] = cache
            enable_compilation_cache()
    # tq.fit's pipeline and its NUTS method call the phases through their modules' globals.
    modules = {
        name: importlib.import_module(f"twin_uq.inference.{where}")
        for name, where in (
            ("prepare_fit", "pipeline"),
            ("run_nuts", "methods"),
            ("derive_draw_quantities", "pipeline"),
            ("check_fit_draws", "pipeline"),
            ("build_idata", "pipeline"),
        )
    }
    current = {"phase": "other"}
    seconds: dict = defaultdict(float)

    def listen(event, secs, **kw):
        if event.startswith("/jax/core/compile/"):
            seconds[(current["phase"], event.rsplit("/", 1)[-1])] += secs

    jax.monitoring.register_event_duration_secs_listener(listen)
    counts: dict = defaultdict(int)

    def count(event, **kw):
        if event.startswith("/jax/compilation_cache/"):
            counts[event.rsplit("/", 1)[-1]] += 1

    jax.monitoring.register_event_listener(count)

    def labelled(name, function):
        def wrapper(*args, **kwargs):
            current["phase"] = name
            try:
                return function(*args, **kwargs)
            finally:
                current["phase"] = "other"

        return wrapper

    for name in PHASES:
        setattr(modules[name], name, labelled(name, getattr(modules[name], name)))
    model = tq.load_model(MODELS[PROBLEMS[problem.partition(":")[0]][0]])
    result = {"load_s": round(time.perf_counter() - t_start, 2), "shape_buckets": buckets}
    result["load_average"] = os.getloadavg()[0]
    fits = (("first", 1, problem), ("second", 2, then or problem))
    for which, seed, spec in fits[1:] if then_only else fits:
        cohort = _cohort(spec)
        seconds.clear()
        counts.clear()
        options = {"shape_buckets": True} if buckets else {}
        t0 = time.perf_counter()
        try:
            tq.fit(
                model, cohort, chains=2, warmup=warmup, draws=draws, seed=seed, progress=False,
                **options,
            )  # fmt: skip
            failed = False
        except tq.FitFailedError:  # a run this short may not move: compiled all the same
            failed = True
        wall = time.perf_counter() - t0
        phases: dict = defaultdict(dict)
        for (phase, kind), s in seconds.items():
            phases[phase][kind] = round(s, 2)
        result[which] = {
            "cohort": spec,
            "wall_s": round(wall, 2),
            "sampler_failed": failed,
            "cache": dict(counts),
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
    ap.add_argument("--then", default=None, help="cohort of the second fit (default: same)")
    ap.add_argument("--cache", default="off", help="persistent cache folder, or off")
    ap.add_argument("--shape-buckets", action="store_true", help="tq.fit(shape_buckets=True)")
    ap.add_argument("--then-only", action="store_true", help="only the --then fit")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(
            json.dumps(
                probe(
                    args.problem,
                    args.warmup,
                    args.draws,
                    args.then,
                    args.cache,
                    args.shape_buckets,
                    args.then_only,
                )
            )
        )
        return
    for _ in range(args.repeats):
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--problem",
            args.problem,
            "--warmup",
            str(args.warmup),
            "--draws",
            str(args.draws),
            "--cache",
            args.cache,
        ]
        cmd += ["--then", args.then] if args.then else []  # fmt: skip
        cmd += ["--shape-buckets"] if args.shape_buckets else []
        cmd += ["--then-only"] if args.then_only else []
        out = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"probe failed:\n{out.stderr[-3000:]}")
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
