"""A default NUTS fit of ``glucose_meal`` to people with type 1 diabetes (issue 29).

The design a new user tried: ``P`` people, one day each (minutes 0-1440, 06:00 to 06:00),
three meals (breakfast, lunch, dinner) with an insulin bolus from the person's carb ratio,
basal insulin as an infusion all day, and six fingerstick glucose values (before each meal,
two hours after breakfast and dinner, at bedtime). The values are simulated from
``glucose_meal`` itself with known individual parameters (log-normal around the model's
typical values) and combined residual error, so the fit's intervals can be checked against
the truth.

The fit is ``tq.fit(model, cohort, method=tq.NUTS())`` with every setting at its default
(4 chains x (1000 warm-up + 1000 draws), the model's solver). Reported: wall time,
minimum bulk / tail ESS, maximum R-hat, divergences, the share of transitions at the
maximum tree depth, mean tree depth and steps per transition, step size, coverage of the
true individual parameters by their 90 % intervals, and the after-fit check of a
fixed-step solve against the adaptive reference. Results: ``RESULTS_glucose.md``.

    .venv/bin/python benchmarks/glucose_default_fit.py --patients 30
    # smaller or shorter runs (the smoke test)
    .venv/bin/python benchmarks/glucose_default_fit.py --patients 3 --chains 1 \\
        --warmup 20 --draws 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: Meal times (min after 06:00) and the fingerstick times of the design.
MEALS = (60.0, 360.0, 720.0)
FINGERSTICKS = (55.0, 180.0, 355.0, 715.0, 840.0, 960.0)
DAY = 1440.0
#: Between-person log-SDs of the simulated parameters (illustrative, a T1D clinic).
OMEGA = {"SI": 0.4, "GEZI": 0.3, "GB": 0.2, "VG": 0.15, "TAU_M": 0.3}
#: Residual error of a fingerstick meter: additive (mg/dL) and proportional.
SIGMA_ADD, SIGMA_PROP = 5.0, 0.07


def simulate(n: int, seed: int):
    """The cohort's long table and the true individual parameters (DataFrame by ID)."""
    import twin_uq as tq

    model = tq.load_model("glucose_meal")
    rng = np.random.default_rng(seed)
    typical = {p.name: p.typical for p in model.parameters}
    rows, truth = [], []
    for i in range(n):
        pid = f"T{i + 1:02d}"
        wt = float(70.0 * np.exp(0.2 * rng.standard_normal()))
        basal = float(np.round(0.9 * np.exp(0.25 * rng.standard_normal()), 2))  # U/h
        carb_ratio = float(rng.uniform(8.0, 15.0))  # g per U
        theta = {k: v * float(np.exp(OMEGA[k] * rng.standard_normal())) for k, v in typical.items()}
        # The individual's parameters after weight scaling (what the fit estimates).
        theta_ind = dict(theta)
        theta_ind["VG"] = theta["VG"] * (wt / 70.0)
        carbs = [float(np.round(rng.uniform(30.0, 80.0))) for _ in MEALS]
        insulin = [float(np.round(c / carb_ratio * 2) / 2) for c in carbs]  # half units
        schedule = tq.Schedule.build(
            boluses=[tq.Bolus(t, c, 1) for t, c in zip(MEALS, carbs, strict=True)]
            + [tq.Bolus(t, u, 2) for t, u in zip(MEALS, insulin, strict=True)],
            infusions=[tq.Infusion(0.0, basal / 60.0, DAY, 2)],
        )
        traj = tq.simulate(
            model,
            theta_ind,
            schedule,
            np.asarray(FINGERSTICKS),
            covariates={"WT": wt, "BASAL": basal},
        )
        f = np.asarray(traj.outputs)[:, 0]
        sd = np.sqrt(SIGMA_ADD**2 + (SIGMA_PROP * f) ** 2)
        y = f + sd * rng.standard_normal(f.shape)
        ev = [dict(ID=pid, TIME=0.0, AMT=basal / 60.0 * DAY, RATE=basal / 60.0, CMT=2, EVID=1)]
        for t, c, u in zip(MEALS, carbs, insulin, strict=True):
            ev.append(dict(ID=pid, TIME=t, AMT=c, RATE=0.0, CMT=1, EVID=1))
            ev.append(dict(ID=pid, TIME=t, AMT=u, RATE=0.0, CMT=2, EVID=1))
        ev += [
            dict(ID=pid, TIME=t, AMT=0.0, RATE=0.0, CMT=6, EVID=0, DV=float(v))
            for t, v in zip(FINGERSTICKS, y, strict=True)
        ]
        for r in ev:
            r.update(WT=wt, BASAL=basal)
        rows += ev
        truth.append({"ID": pid, **theta_ind})
    table = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], ascending=[True, True, False])
    return table.reset_index(drop=True), pd.DataFrame(truth).set_index("ID")


def diagnostics(post, truth: pd.DataFrame | None) -> dict:
    """Convergence, sampler behaviour and coverage of the true individual parameters."""
    diag = post.diagnostics()
    table = diag.table
    stats = post.idata["sample_stats"]
    depth = np.asarray(stats["tree_depth"]).ravel()
    steps = np.asarray(stats["n_steps"]).ravel()
    max_depth = int(json.loads(post.idata.attrs["settings"]).get("max_tree_depth", 10))
    theta = post.posterior["theta"]
    lo = theta.quantile(0.05, dim=("chain", "draw"))
    hi = theta.quantile(0.95, dim=("chain", "draw"))
    covered = []
    for pid in truth.index if truth is not None else ():
        for k in truth.columns:
            t = truth.loc[pid, k]
            covered.append(
                float(lo.sel(patient=pid, parameter=k))
                <= t
                <= float(hi.sel(patient=pid, parameter=k))
            )
    return {
        "min_ess_bulk": float(table["ess_bulk"].min()),
        "min_ess_tail": float(table["ess_tail"].min()),
        "max_r_hat": float(table["r_hat"].max()),
        "divergences": int(diag.divergences),
        "max_tree_depth_share": float(np.mean(depth >= max_depth)),
        "mean_tree_depth": float(depth.mean()),
        "mean_steps_per_transition": float(steps.mean()),
        "step_size": float(np.median(np.asarray(stats["step_size"]))),
        "coverage_theta_90": float(np.mean(covered)) if covered else None,
        "converged": bool(diag.converged),
        # The after-fit check of a fixed-step solve against adaptive Tsit5 (None: adaptive).
        "fixed_step_check": json.loads(post.idata.attrs.get("fixed_step_check", "null")),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--chains", type=int, default=None, help="default: tq.NUTS()'s")
    ap.add_argument("--warmup", type=int, default=None, help="default: tq.NUTS()'s")
    ap.add_argument("--draws", type=int, default=None, help="default: tq.NUTS()'s")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--data",
        choices=("glucose_meal", "dalla_man"),
        default="glucose_meal",
        help="simulate from the fitted model (truth known) or from the Dalla Man 2007 "
        "simulator of twin_uq.testing (adults, fingersticks; no parameter coverage)",
    )
    out_dir = Path(os.environ.get("TWIN_UQ_BENCH_OUT", Path(__file__).parent / "out"))
    ap.add_argument("--out", default=str(out_dir / "glucose_default_fit.json"))
    args = ap.parse_args(argv)

    import twin_uq as tq

    settings = {k: getattr(args, k) for k in ("chains", "warmup", "draws") if getattr(args, k)}
    method = tq.NUTS(**settings)
    tq.configure(host_devices=method.chains)
    if args.data == "dalla_man":
        from twin_uq.testing.glucose_simulator import simulate_t1d_cohort

        sim = simulate_t1d_cohort(
            {"adult": args.patients}, sampling="fingerstick", seed=args.seed,
            fingerstick_times=FINGERSTICKS, meal_times=MEALS,
        )  # fmt: skip
        table, truth = sim.table.drop(columns="AGE_GROUP"), None
    else:
        table, truth = simulate(args.patients, args.seed)
    cohort = tq.read_cohort(table, time_unit="min")
    start = time.perf_counter()
    post = tq.fit("glucose_meal", cohort, method=method, seed=0, progress=not args.no_progress)
    wall = time.perf_counter() - start
    result = {
        "patients": args.patients,
        "data": args.data,
        "fingersticks_per_patient": len(FINGERSTICKS),
        "method": post.idata.attrs["fit_method"],
        "wall_s": round(wall, 1),
        **diagnostics(post, truth),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
