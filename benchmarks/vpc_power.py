"""Power and false-alarm rate of the simulated VPC and the NPDE test.

Each replicate simulates a two-compartment oral cohort (``two_compartment``, its typical
values, 30 % between-patient variability, combined residual error) and fits it twice with
a cheap method (Laplace by default): with the true model and with ``one_compartment_oral``
(misspecified: no peripheral compartment). Both fits are checked by

* the simulated VPC (``tq.vpc``, time bins of the nominal design, 10th/50th/90th
  percentiles, 90 % intervals): flagged when MORE than ``--vpc-threshold`` (default 0.2,
  twice the nominal 10 %) of the observed percentiles fall outside their simulated
  intervals;
* the NPDE (``tq.npde``, decorrelated): flagged when the global test of Comets et al. (2008)
  (t-test of the mean, chi-square test of the variance, Shapiro-Wilk; Bonferroni
  ``p = min(1, 3 min p)``) gives ``p < --alpha`` (default 0.05).

The rates reported: for the true model, the false-alarm rate of each rule; for the
one-compartment model, its power. With a binomial 95 % interval (Wilson).

Usage::

    .venv/bin/python benchmarks/vpc_power.py --replicates 50 --out benchmarks/out/vpc_power
    # the same with NUTS (1 chain, 400 + 400), a few replicates to check the Laplace rates
    .venv/bin/python benchmarks/vpc_power.py --method nuts --replicates 5 \
        --out benchmarks/out/vpc_power_nuts
    .venv/bin/python benchmarks/vpc_power.py --replicates 2 --patients 8 --nsim 100  # smoke
    .venv/bin/python benchmarks/vpc_power.py --cost 100 --nsim 500   # seconds of one VPC

Each finished replicate is appended to ``<out>/replicates.jsonl`` (a rerun with the same
``--out`` continues where it stopped; a second process with ``--descending`` shares the
work, and a replicate both ran counts once); ``<out>/vpc_power.md`` holds the summary
table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

import twin_uq as tq

tq.configure()

TRUE_MODEL = "two_compartment"
WRONG_MODEL = "one_compartment_oral"
TIMES = [0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0]


def _method(args):
    if args.method == "laplace":
        return tq.Laplace(steps=args.steps, learning_rate=0.02, draws=args.draws)
    if args.method == "nuts":
        return tq.NUTS(chains=1, warmup=args.draws, draws=args.draws)
    raise SystemExit(f"unknown --method {args.method!r}")


def replicate(r: int, args) -> list[dict]:
    """Simulate one cohort, fit both models, check both fits; one row per model."""
    design = tq.Design(times=TIMES, doses=[tq.Bolus(0.0, 100.0, 1)])
    sim = tq.simulate_cohort(TRUE_MODEL, args.patients, design, seed=1000 + r)
    rows = []
    for label, model in (("true (2-cmt)", TRUE_MODEL), ("misspecified (1-cmt)", WRONG_MODEL)):
        t0 = time.perf_counter()
        # prior_check="off": the default priors are centred on these models' typical values.
        post = tq.fit(model, sim.cohort, method=_method(args), prior_check="off", seed=r,
                      progress=False)  # fmt: skip
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        sims = tq.checks.simulate_design(post, args.nsim, seed=r)
        v = tq.vpc(post, sims=sims, interval=0.9)
        n = tq.npde(post, sims=sims, seed=r)
        test = n.tests(alpha=args.alpha).loc["all"]
        rows.append(
            dict(
                replicate=r,
                model=label,
                vpc_outside=v.outside_fraction,
                vpc_flag=bool(v.outside_fraction > args.vpc_threshold),
                npde_mean=float(test["mean"]),
                npde_variance=float(test["variance"]),
                npde_p=float(test["p_global"]),
                npde_p_mean=float(test["p_mean"]),
                npde_p_variance=float(test["p_variance"]),
                npde_p_normality=float(test["p_normality"]),
                npde_flag=bool(test["p_global"] < args.alpha),
                method=args.method,
                patients=args.patients,
                nsim=args.nsim,
                fit_s=t_fit,
                fit_timings=json.loads(post.idata.attrs["backend_info"]).get("timings", {}),
                check_s=time.perf_counter() - t0,
            )
        )
    return rows


def _describe(args) -> str:
    if args.method == "nuts":
        return f"nuts (1 chain, {args.draws} warm-up + {args.draws} draws)"
    return f"laplace ({args.steps} steps, {args.draws} draws; approximate)"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise(frame: pd.DataFrame, args) -> str:
    lines = [
        "| model fitted | replicates | VPC flag rate (95% CI) | NPDE flag rate (95% CI) | "
        "either (95% CI) | Shapiro-Wilk of the NPDE, p < alpha (95% CI) | "
        "median VPC outside fraction | median NPDE variance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, g in frame.groupby("model", sort=False):
        n = len(g)
        cells = []
        normality = g["npde_p_normality"] < args.alpha
        for flags in (g["vpc_flag"], g["npde_flag"], g["vpc_flag"] | g["npde_flag"], normality):
            k = int(flags.sum())
            lo, hi = wilson(k, n)
            cells.append(f"{k}/{n} = {k / n:.2f} ({lo:.2f}-{hi:.2f})")
        lines.append(
            f"| {label} | {n} | {' | '.join(cells)} | {g['vpc_outside'].median():.3f} | "
            f"{g['npde_variance'].median():.2f} |"
        )
    lines.append("")
    lines.append(
        f"Settings: {args.patients} patients per cohort, times {TIMES} h, one 100 mg oral dose; "
        f"fits: {_describe(args)}; {args.nsim} simulated cohorts per check; VPC rule: outside "
        f"fraction > {args.vpc_threshold}; NPDE rule: global p < {args.alpha}. Mean fit time "
        f"{frame['fit_s'].mean():.1f} s, mean check time (simulation, VPC and NPDE) "
        f"{frame['check_s'].mean():.1f} s."
    )
    return "\n".join(lines)


def cost(args) -> str:
    """Seconds of a VPC (simulation included) with ``--nsim`` cohorts of a large fit."""
    design = tq.Design(times=TIMES, doses=[tq.Bolus(0.0, 100.0, 1)])
    sim = tq.simulate_cohort(WRONG_MODEL, args.cost, design, seed=7)
    # The fit's quality does not matter here: the cost of a check is that of its simulation.
    post = tq.fit(WRONG_MODEL, sim.cohort, method=tq.Laplace(steps=200, draws=1000),
                  prior_check="off", seed=0, progress=False)  # fmt: skip
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        tq.vpc(post, nsim=args.nsim, x="tad", pc=True)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    tq.npde(post, nsim=args.nsim)
    t_npde = time.perf_counter() - t0
    return (
        f"VPC of {args.cost} patients x {len(TIMES)} observations with {args.nsim} simulated "
        f"cohorts (`tq.vpc(post, nsim={args.nsim}, x='tad', pc=True)`): first call "
        f"{times[0]:.1f} s (JAX compilation included), second {times[1]:.1f} s; "
        f"`tq.npde` with the same number of cohorts (compiled) {t_npde:.1f} s."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--replicates", type=int, default=50)
    ap.add_argument("--patients", type=int, default=16)
    ap.add_argument("--nsim", type=int, default=500)
    ap.add_argument("--method", default="laplace", choices=("laplace", "nuts"))
    ap.add_argument("--draws", type=int, default=400, help="posterior draws (NUTS: also warm-up)")
    ap.add_argument("--steps", type=int, default=1500, help="Laplace optimisation steps")
    ap.add_argument("--summarise", action="store_true", help="only summarise finished replicates")
    ap.add_argument("--vpc-threshold", type=float, default=0.2)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--out", default="benchmarks/out/vpc_power")
    ap.add_argument("--cost", type=int, default=0, help="only time a VPC of this many patients")
    ap.add_argument(
        "--shard", default="0/1",
        help="i/n: run only the replicates r with r %% n == i (n processes share one --out)",
    )  # fmt: skip
    ap.add_argument(
        "--descending", action="store_true",
        help="run the replicates from the last down (a second process beside an ascending one)",
    )  # fmt: skip
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Every replicate compiles the same programs again (each fit builds new functions); the
    # persistent cache keys them by their XLA text, so later replicates load them from disk.
    # Same compiled code, same numbers.
    jax.config.update("jax_compilation_cache_dir", str(out / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    if args.cost:
        line = cost(args)
        (out / "vpc_cost.md").write_text(line + "\n")
        print(line)
        return
    log = out / "replicates.jsonl"

    def finished() -> set[int]:
        # Read before every replicate: several processes may share one --out.
        if not log.exists():
            return set()
        return {json.loads(line)["replicate"] for line in log.read_text().splitlines() if line}

    shard, n_shards = (int(v) for v in args.shard.split("/"))
    order = range(args.replicates)
    for r in reversed(order) if args.descending else order:
        if args.summarise or r % n_shards != shard or r in finished():
            continue
        rows = replicate(r, args)
        # Drop the compiled programs of this replicate's fits (the disk cache keeps them):
        # every XLA executable holds memory mappings of its own, and one process that kept
        # 36 replicates' worth reached the kernel's limit and aborted inside LLVM.
        jax.clear_caches()
        with log.open("a") as fh:
            fh.write("".join(json.dumps(row) + "\n" for row in rows))
        print(f"replicate {r}: " + "; ".join(
            f"{x['model']} VPC {x['vpc_outside']:.2f} NPDE p {x['npde_p']:.3g}" for x in rows
        ), flush=True)  # fmt: skip
    frame = pd.DataFrame([json.loads(line) for line in log.read_text().splitlines() if line])
    # Two processes that met on one replicate both ran it: the first rows written count.
    frame = frame.drop_duplicates(["replicate", "model"], keep="first")
    frame = frame[frame["replicate"] < args.replicates]
    frame = frame[frame.groupby("replicate")["model"].transform("size") == 2]
    table = summarise(frame, args)
    (out / "vpc_power.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
