"""Circulation twins against a four-element Windkessel truth: R and C, held-out beats, what-if.

A cohort of virtual arteries is simulated with the parallel four-element Windkessel
(:mod:`twin_uq.testing.windkessel4`: an inertance the fitted model lacks), driven by a
prescribed half-sine aortic inflow, recorded over three beats at 100 Hz with
Ornstein-Uhlenbeck-correlated noise (SD 2 mmHg, correlation time 30 ms).
``windkessel3`` is fitted per patient (population model with the OU residual,
``residual_correlation="ou"``) to the first two beats; the third is held out.

    python heart_pressure.py --patients 12 --warmup 1000 --draws 1000 --out out/heart_pressure.json

The model integrates with its own solver (RK4 on the inflow knots, steps of at most
2.5 ms); ``--solver tsit5`` uses the adaptive Tsit5 it had before 2026-12-08.

Reported: seconds to fit; for each patient the posterior median and 90 % interval of the
peripheral resistance ``R`` and the compliance ``C`` against the truth (the four-element
model's ``R`` and ``C`` mean the same as the three-element model's), and of the total
resistance (mean pressure over mean flow: ``R + Z`` of the fitted model, ``R`` of the
four-element one, whose inertance carries the mean flow past ``Z``); coverage of the 90 %
predictive intervals of the held-out beat; and the what-if "resistance lowered by 20 %"
(a vasodilator): systolic, diastolic and mean pressure at the new periodic steady state,
with 90 % intervals, against the four-element model's truth (``resistance_what_if`` of
``windkessel3``); the sampler's leapfrog steps and each patient's posterior correlations
of ``log R``, ``log C``, ``log Z`` (the geometry); the load average before and after.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np
from recovery_time_varying import write_result

FIT_BEATS = 2  # of the three recorded; the last is held out
WHATIF_BEATS = 12  # beats simulated after the change (about 6 R·C): the last is read


def posterior_geometry(post, names) -> dict:
    """Leapfrog steps per iteration and the posterior correlations of each patient's log R, C, Z.

    The median over patients of each pair's correlation, and its largest magnitude: the
    pairs a reparameterisation would target.
    """
    out = {}
    if "sample_stats" in post.idata.children:  # NUTS; not an approximate fit
        out["n_steps_mean"] = float(post.idata["sample_stats"]["n_steps"].mean())
    theta = post.idata["posterior"]["theta"]  # (chain, draw, patient, parameter)
    logs = np.log(theta.values.reshape(-1, *theta.shape[2:]))  # (S, P, K)
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            r = [np.corrcoef(logs[:, p, i], logs[:, p, j])[0, 1] for p in range(logs.shape[1])]
            out[f"corr_log_{a}_{names[j]}"] = {
                "median": float(np.median(r)),
                "max_abs": float(np.max(np.abs(r))),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--method", choices=("nuts", "laplace"), default="nuts")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--whatif-draws", type=int, default=200)
    ap.add_argument("--whatif-factor", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument(
        "--solver",
        choices=("model", "tsit5"),
        default="model",
        help="model: windkessel3's own (RK4 on the knots, 2.5 ms); tsit5: adaptive (before)",
    )
    ap.add_argument("--out", default="out/heart_pressure.json")
    args = ap.parse_args(argv)

    import os
    import sys

    import twin_uq as tq
    from twin_uq.testing.windkessel4 import cohort_table, half_sine_flow, simulate_pressure_cohort

    tq.configure()
    model = tq.load_model("windkessel3")
    wk3 = sys.modules[type(model).__module__]
    solver = None
    if args.solver == "tsit5":
        solver = tq.SolverSettings(method="tsit5", rtol=1e-6, atol=1e-6, max_steps=16384)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    heart_rate, stroke_volume, ejection = 75.0, 70.0, 0.3
    period = 60.0 / heart_rate

    t0 = time.perf_counter()
    sim = simulate_pressure_cohort(
        args.patients,
        seed=args.seed,
        whatif_factor=args.whatif_factor,
        n_beats=3,
        heart_rate=heart_rate,
        stroke_volume=stroke_volume,
        ejection_time=ejection,
    )
    simulate_s = time.perf_counter() - t0
    table = cohort_table(sim)
    held = table[(table["evid"] == 0) & (table["time"] >= FIT_BEATS * period - 1e-9)]
    fit_rows = table.drop(held.index)
    cohort = tq.read_cohort(fit_rows, time_unit="s")

    population = tq.PopulationModel(model, residual_correlation="ou")
    if args.method == "nuts":
        method = tq.NUTS(chains=args.chains, warmup=args.warmup, draws=args.draws)
    else:
        method = tq.Laplace()
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    post = tq.fit(
        model, cohort, population=population, method=method, seed=0, solver=solver,
        progress=False,
    )  # fmt: skip
    fit_s = time.perf_counter() - t0
    load.append(os.getloadavg()[0])
    diag = post.diagnostics()
    geometry = posterior_geometry(post, model.parameter_names)

    t0 = time.perf_counter()
    truth = sim.truth.set_index("id")
    flow_t = np.arange(round(WHATIF_BEATS * period / 0.005) + 1) * 0.005
    signal = tq.Signal(
        "inflow", tuple(flow_t), tuple(half_sine_flow(flow_t, stroke_volume, heart_rate, ejection))
    )
    per_patient, covered = [], []
    trust = post.trust()
    for pid in post.patient_ids:
        twin = post.twin(pid)
        rows = held[held["id"] == pid]
        ds = twin.predict(rows["time"].to_numpy(), interval=0.9)
        lo, hi = ds["lower"].values[0], ds["upper"].values[0]
        cov = (rows["dv"].to_numpy() >= lo) & (rows["dv"].to_numpy() <= hi)
        covered.append(cov)
        par = twin.parameters(interval=0.9)
        theta = np.asarray(twin.theta)
        w = wk3.resistance_what_if(
            twin,
            args.whatif_factor,
            signal,
            period,
            beats=WHATIF_BEATS,
            interval=0.9,
            draws=min(args.whatif_draws, theta.shape[0]),
        )
        entry = {"id": pid, "held_out_coverage": float(cov.mean())}
        for name in ("R", "C", "Z"):
            entry[name] = {
                "truth": float(truth.loc[pid, name]),
                "median": float(par.loc[name, "median"]),
                "lower": float(par.loc[name, "lower"]),
                "upper": float(par.loc[name, "upper"]),
            }
        # Total resistance (mean pressure / mean flow): R + Z in the three-element model,
        # R in the four-element one (the inertance short-circuits Z for the mean flow).
        names = model.parameter_names
        total = theta[:, names.index("R")] + theta[:, names.index("Z")]
        qt = np.quantile(total, [0.5, 0.05, 0.95])
        entry["R_total"] = {
            "truth": float(truth.loc[pid, "R"]),
            "median": float(qt[0]),
            "lower": float(qt[1]),
            "upper": float(qt[2]),
        }
        for name, key in (("systolic",) * 2, ("diastolic",) * 2, ("mean_pressure", "mean")):
            m, lo, hi = w["after"][key]
            entry[f"whatif_{name}"] = {
                "truth": float(truth.loc[pid, f"whatif_{name}"]),
                "median": m,
                "lower": lo,
                "upper": hi,
            }
        entry["status"] = str(trust[pid].status)
        per_patient.append(entry)
    twin_s = time.perf_counter() - t0

    def covers(key):
        return [p[key]["lower"] <= p[key]["truth"] <= p[key]["upper"] for p in per_patient]

    allcov = np.concatenate(covered)
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "commit": commit,
        "settings": vars(args),
        "simulate_s": simulate_s,
        "fit_s": fit_s,
        "load_average_1min": load,
        "geometry": geometry,
        "twin_questions_s": twin_s,
        "diagnostics": str(diag),
        "held_out_points": int(allcov.size),
        "held_out_coverage_90": float(allcov.mean()),
        "R_covered": int(sum(covers("R"))),
        "C_covered": int(sum(covers("C"))),
        "R_total_covered": int(sum(covers("R_total"))),
        "whatif_covered": {
            k: int(sum(covers(f"whatif_{k}"))) for k in ("systolic", "diastolic", "mean_pressure")
        },
        "n_patients": len(per_patient),
        "per_patient": per_patient,
    }
    print(diag)
    print("geometry:", geometry, "load average:", load)
    print(
        f"fit {fit_s:.0f} s ({args.method}); held-out beat coverage {allcov.mean():.3f} of "
        f"{allcov.size}; R covered {result['R_covered']}/{len(per_patient)}, C covered "
        f"{result['C_covered']}/{len(per_patient)}; what-if covered {result['whatif_covered']}"
    )
    for p in per_patient:
        print(
            p["id"],
            *(
                f"{k} {p[k]['truth']:.3g} [{p[k]['lower']:.3g}, {p[k]['upper']:.3g}]"
                for k in ("R", "C")
            ),
            "what-if mean P "
            f"{p['whatif_mean_pressure']['truth']:.1f} [{p['whatif_mean_pressure']['lower']:.1f}, "
            f"{p['whatif_mean_pressure']['upper']:.1f}]",
            p["status"],
            file=sys.stdout,
        )
    write_result(result, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
