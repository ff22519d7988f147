"""Does the recommended next sample deliver what ``twin.next_measurement`` predicts?

Issue #28's proof, on a simulated oral cohort whose truth is known:

1. **Calibration and benefit.** For every data-poor patient (two samples, at 2 h and 24 h)
   the twin ranks candidate times 1..48 h by the expected shrinkage of the 90 % interval
   of CL. A real measurement is then simulated from the patient's TRUE parameters (true
   residual error) at the recommended time, at a fixed protocol time (12 h) and at a
   random candidate time, and the twin is updated on each (``twin.update``, the live
   update). Reported: mean predicted vs mean realised shrinkage at the recommended time,
   and the realised gain of the recommendation over the fixed and the random time, with
   95 % intervals over patients (paired).
2. **Brute force.** For one patient and three candidate times, the expected shrinkage by
   re-weighting is compared with the average over imagined measurements each conditioned
   on exactly by NUTS (``twin.update(method="nuts")``).
3. **Cost.** ``next_measurement`` over 50 candidate times for one patient, second call.

Run: .venv/bin/python benchmarks/next_sample_study.py [--patients 40] [--brute 16]
(smallest: --patients 6 --chains 1 --warmup 30 --draws 30 --brute 2)
Results are printed as JSON; the measured ones are in benchmarks/RESULTS_next_sample.md.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

import twin_uq as tq

tq.configure()

DESIGN = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    sparse_fraction=0.5,
    sparse_times=[2.0, 24.0],
    covariates={"WT": ("lognormal", 70.0, 0.2)},
)
CANDIDATES = np.arange(1.0, 48.5, 1.0)
FIXED = 12.0


def width(twin, k: int) -> float:
    lo, hi = np.quantile(np.asarray(twin.theta)[:, k], [0.05, 0.95])
    return float(hi - lo)


def measure(sim, pid: str, t: float, rng) -> float:
    """One measurement of patient ``pid`` at ``t`` from the true parameters and error."""
    model = tq.load_model("one_compartment_oral")
    theta = sim.truth.theta.loc[pid].to_numpy()
    wt = float(sim.cohort.covariates.loc[pid, "WT"])
    traj = tq.simulate(model, theta, sim.cohort.schedule(pid), [t], covariates={"WT": wt})
    f = float(np.asarray(traj.outputs)[0, 0])
    a = sim.truth.sigma_add["concentration"]
    b = sim.truth.sigma_prop["concentration"]
    return f + float(np.sqrt(a**2 + (b * f) ** 2) * rng.standard_normal())


def realised(twin, k: int, t: float, y: float, seed: int) -> float:
    new = twin.update(pd.DataFrame({"time": [t], "dv": [y], "evid": [0]}), seed=seed)
    return 1.0 - width(new, k) / width(twin, k)


def mean_ci(x) -> list[float]:
    x = np.asarray(x, float)
    se = x.std(ddof=1) / np.sqrt(x.size)
    return [float(x.mean()), float(x.mean() - 1.96 * se), float(x.mean() + 1.96 * se)]


def cost(post, sim, repeats: int = 3) -> dict:
    """Seconds (wall and CPU) of ``next_measurement`` over 50 candidate times for the first
    data-poor patient, after a first (compiling) call: ``repeats`` calls."""
    table = sim.table
    pid = sorted(set(table.loc[table["sampling"] == "sparse", "id"].astype(str)))[0]
    tw = post.twin(pid)
    times50 = np.linspace(1.0, 48.0, 50)
    tw.next_measurement(times50, goal="CL", max_exact=0)
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        tw.next_measurement(times50, goal="CL", max_exact=0)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return dict(patient=pid, draws=int(tw.n_draws), seconds_50_candidates=wall, cpu_seconds=cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--brute", type=int, default=16, help="imagined values per brute-force time")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--cost-only", action="store_true", help="fit, then only the cost section")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    sim = tq.simulate_cohort("one_compartment_oral", args.patients, DESIGN, seed=args.seed)
    t0 = time.perf_counter()
    post = tq.fit(
        "one_compartment_oral",
        sim.cohort,
        chains=args.chains,
        warmup=args.warmup,
        draws=args.draws,
        seed=0,
        progress=False,
    )
    fit_s = time.perf_counter() - t0
    if args.cost_only:
        print(json.dumps(dict(fit_seconds=fit_s, **cost(post, sim)), indent=1))
        return
    k = list(post.model.parameter_names).index("CL")
    table = sim.table
    sparse = sorted(set(table.loc[table["sampling"] == "sparse", "id"].astype(str)))
    rows = []
    for i, pid in enumerate(sparse):
        tw = post.twin(pid)
        res = tw.next_measurement(CANDIDATES, goal="CL", seed=i)
        tab = res.table.set_index("time")
        best = float(res.best["time"])
        rand = float(rng.choice(CANDIDATES))
        row = dict(patient=pid, best=best, random=rand)
        for name, t in (("best", best), ("fixed", FIXED), ("random", rand)):
            y = measure(sim, pid, t, rng)
            row[f"predicted_{name}"] = float(tab.loc[t, "effect"])
            row[f"mcse_{name}"] = float(tab.loc[t, "mcse"])
            row[f"realised_{name}"] = realised(tw, k, t, y, seed=i)
        rows.append(row)
        print(json.dumps(row), flush=True)
    frame = pd.DataFrame(rows)

    # Brute force on the first data-poor patient.
    tw = post.twin(sparse[0])
    brute_times = np.array([4.0, 12.0, 36.0])
    res = tw.next_measurement(brute_times, goal="CL", n_imagined=256, seed=11)
    brute = []
    for t in brute_times:
        draws = tw.predict([t], draws=args.brute, seed=int(t))["y"].values[:, 0, 0]
        exact = [
            1.0
            - width(
                tw.update(
                    pd.DataFrame({"time": [t], "dv": [float(y)], "evid": [0]}),
                    method="nuts",
                    seed=j,
                ),
                k,
            )
            / width(tw, k)
            for j, y in enumerate(draws)
        ]
        row = res.table.set_index("time").loc[t]
        brute.append(
            dict(
                time=float(t),
                reweighted=float(row["effect"]),
                reweighted_mcse=float(row["mcse"]),
                exact=mean_ci(exact),
            )
        )
        print(json.dumps(brute[-1]), flush=True)

    seconds = cost(post, sim)["seconds_50_candidates"][0]

    summary = dict(
        patients=args.patients,
        data_poor=len(sparse),
        fit_seconds=fit_s,
        predicted_best=mean_ci(frame["predicted_best"]),
        realised_best=mean_ci(frame["realised_best"]),
        realised_minus_predicted_best=mean_ci(frame["realised_best"] - frame["predicted_best"]),
        gain_over_fixed=mean_ci(frame["realised_best"] - frame["realised_fixed"]),
        gain_over_random=mean_ci(frame["realised_best"] - frame["realised_random"]),
        predicted_fixed=mean_ci(frame["predicted_fixed"]),
        realised_fixed=mean_ci(frame["realised_fixed"]),
        brute_force=brute,
        seconds_50_candidates=seconds,
    )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
