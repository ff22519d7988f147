"""Stage-2 throughput of the two-stage Dask fit, and its error against the joint fit.

Usage::

    .venv/bin/python benchmarks/dask_throughput.py [--patients 100] [--throughput-patients 24]
        [--out benchmarks/out/dask_throughput.json] [--full-population-error]

1. Simulates a one-compartment oral cohort of ``--patients`` (truth known) and fits it
   jointly with NUTS (4 x 500): the reference, and stage 1 for the throughput runs.
2. Stage 2 for the first ``--throughput-patients`` patients on a LocalCluster with 1 and
   with 2 worker processes: one warm-up run (compiles the samplers on each worker) then a
   timed run; throughput = patients per minute of the timed run (steady state, compilation
   excluded; compilation is reported separately).
3. Approximation error on the whole cohort (2 workers): stage 1 on a random half of the
   patients, stage 2 for all; per patient and parameter the difference of posterior medians
   of log theta from the joint fit, in units of the joint posterior SD, and 90% interval
   coverage of the true values. ``--full-population-error`` adds stage 2 conditioned on the
   joint fit itself (the error of stage 2 alone; also checked by tests/distributed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster

import twin_uq as tq
from twin_uq.distributed import fit_two_stage

tq.configure()  # float64 and one CPU device per parallel chain, before JAX starts

DESIGN = tq.Design(
    times=[0.5, 1, 2, 4, 6, 8, 12, 24], doses=[tq.Bolus(0, 100, 1)], sparse_fraction=0.25,
    sparse_times=[2, 12], covariates={"WT": ("lognormal", 70, 0.2)},
)  # fmt: skip
STAGE2 = dict(chains=4, warmup=200, draws=250, population_draws_used=256, batch_size=8)


def _stage2(client, cohort, pop):
    t = time.perf_counter()
    post = fit_two_stage("one_compartment_oral", cohort, population=pop, cluster=client, **STAGE2)
    return post, time.perf_counter() - t


def _errors(post, ref, truth):
    a = np.log(ref.posterior["theta"].stack(s=("chain", "draw")))
    b = np.log(post.posterior["theta"].stack(s=("chain", "draw")))
    z = (b.median("s") - a.median("s")) / a.std("s")
    lo, hi = b.quantile(0.05, "s"), b.quantile(0.95, "s")
    tr = np.log(truth.loc[list(post.patient_ids), list(a["parameter"].values)])
    inside = (lo.values <= tr.values) & (tr.values <= hi.values)
    width = float(((hi - lo) / (a.quantile(0.95, "s") - a.quantile(0.05, "s"))).median())
    return {
        "median_shift_over_sd_mean_abs": float(np.abs(z).mean()),
        "median_shift_over_sd_max_abs": float(np.abs(z).max()),
        "coverage_90_two_stage": float(inside.mean()),
        "interval_width_ratio_median": width,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--throughput-patients", type=int, default=24)
    ap.add_argument("--full-population-error", action="store_true")
    ap.add_argument("--out", default="benchmarks/out/dask_throughput.json")
    args = ap.parse_args()
    sim = tq.simulate_cohort("one_compartment_oral", args.patients, DESIGN, seed=5)
    t = time.perf_counter()
    ref = tq.fit("one_compartment_oral", sim.cohort, chains=4, warmup=500, draws=500, seed=0,
                 progress=False)  # fmt: skip
    results: dict = {"patients": args.patients, "joint_fit_seconds": time.perf_counter() - t,
                     "stage2_settings": STAGE2, "throughput": {},
                     "throughput_patients": args.throughput_patients}  # fmt: skip
    few = sim.cohort.select(list(sim.cohort.ids)[: args.throughput_patients])
    truth = sim.truth.theta  # indexed by patient id
    cache = {"JAX_COMPILATION_CACHE_DIR": str(Path(args.out).parent / "jax-cache")}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=":0", env=cache) as cl, Client(cl) as client:  # fmt: skip
            _, first = _stage2(client, few, ref)
            _, steady = _stage2(client, few, ref)
            results["throughput"][n] = {
                "first_run_seconds_incl_compile": first,
                "steady_seconds": steady,
                "patients_per_minute": 60 * args.throughput_patients / steady,
            }
            if n == 2 and args.full_population_error:
                post, _ = _stage2(client, sim.cohort, ref)
                results["error_full_population"] = _errors(post, ref, truth)
            if n == 2:
                half = fit_two_stage("one_compartment_oral", sim.cohort, subsample=args.patients // 2,
                                     population_kwargs=dict(chains=4, warmup=500, draws=500),
                                     cluster=client, **STAGE2)  # fmt: skip
                results["error_half_subsample"] = _errors(half, ref, truth)
        print(json.dumps(results, indent=1), flush=True)
    results["error_joint_fit_itself"] = _errors(ref, ref, truth)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
