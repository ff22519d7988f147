"""Recovery of a time-varying covariate effect on clearance by NUTS (docs/data.md).

A cohort of one-compartment IV patients (100 mg bolus at 0 h and 24 h) whose creatinine
clearance changes at 12 h (a step up or down for each patient, as in acute kidney injury
and recovery); clearance follows it through a standardised covariate effect, with
allometric weight scaling:

    log CL_i(t) = mu_CL + 0.75 log(WT_i / 70) + beta (CRCL_i(t) - c) / s + omega_CL eta_i

(``c``, ``s``: median and SD of the baseline CRCL, as twin_uq's design standardises).
The concentrations are simulated from the closed form of the piecewise exponential
written out here (not by twin_uq), with proportional error. Reported: whether each true
population value lies in its 90 % interval, the coverage of the patients' true clearance
on both sides of the change, R-hat, bulk ESS and divergences.

    .venv/bin/python benchmarks/recovery_time_varying.py --patients 100 --chains 4 \
        --warmup 500 --draws 500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

TRUE = {"CL": 5.0, "V": 50.0, "omega_CL": 0.3, "omega_V": 0.2, "beta": 0.25, "sigma": 0.1}
OBS = (0.5, 2.0, 6.0, 11.0, 13.0, 18.0, 23.0, 25.0, 30.0, 36.0)


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """The cohort's long table and the true individual values (by hand, no twin_uq)."""
    rng = np.random.default_rng(seed)
    wt = 70 * np.exp(0.2 * rng.standard_normal(n))
    crcl0 = 90 * np.exp(0.3 * rng.standard_normal(n))
    crcl1 = crcl0 * np.exp(0.4 * rng.standard_normal(n))  # the change at 12 h
    c, s = float(np.median(crcl0)), float(np.std(crcl0))
    eta = rng.standard_normal((n, 2))
    base = np.log([TRUE["CL"], TRUE["V"]]) + eta * [TRUE["omega_CL"], TRUE["omega_V"]]
    log_cl0 = base[:, 0] + 0.75 * np.log(wt / 70) + TRUE["beta"] * (crcl0 - c) / s
    log_cl1 = log_cl0 + TRUE["beta"] * (crcl1 - crcl0) / s
    cl0, cl1, v = np.exp(log_cl0), np.exp(log_cl1), np.exp(base[:, 1]) * wt / 70
    rows = []
    for i in range(n):
        rows.append(dict(ID=i + 1, TIME=0.0, AMT=100.0, EVID=1, DV=np.nan, WT=wt[i], CRCL=crcl0[i]))
        rows.append(dict(ID=i + 1, TIME=12.0, AMT=0.0, EVID=2, DV=np.nan, WT=wt[i], CRCL=crcl1[i]))
        rows.append(
            dict(ID=i + 1, TIME=24.0, AMT=100.0, EVID=1, DV=np.nan, WT=wt[i], CRCL=crcl1[i])
        )
        k0, k1 = cl0[i] / v[i], cl1[i] / v[i]
        a12 = 100 * np.exp(-k0 * 12)
        for t in OBS:
            amount = 100 * np.exp(-k0 * t) if t < 12 else a12 * np.exp(-k1 * (t - 12))
            amount += 100 * np.exp(-k1 * (t - 24)) if t >= 24 else 0.0
            f = amount / v[i]
            y = f * (1 + TRUE["sigma"] * rng.standard_normal())
            rows.append(dict(ID=i + 1, TIME=t, AMT=0.0, EVID=0, DV=y, WT=np.nan, CRCL=np.nan))
    table = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], kind="stable")
    return table.reset_index(drop=True), {"cl0": cl0, "cl1": cl1, "v": v}


def main(argv: list[str] | None = None) -> int:
    # non-centred by default: the published runs were (PopulationModel's own default)
    ap = recovery_arguments(__doc__, "benchmarks/out/recovery_time_varying.json", centering="0")
    ap.add_argument("--laplace", action="store_true", help="a quick Laplace fit instead")
    args = ap.parse_args(argv)

    import twin_uq as tq

    tq.configure(host_devices=args.chains)
    from models.one_compartment_iv import OneCompartmentIV

    table, truth = simulate(args.patients, args.seed)
    cohort = tq.read_cohort(table)
    model = OneCompartmentIV()
    spec = tq.PopulationModel(
        model,
        covariate_effects={"CL": ["CRCL"]},
        error={"concentration": "proportional"},
        centering=args.centering,
    )
    start = time.perf_counter()
    post = tq.fit(
        model,
        cohort,
        population=spec,
        method=tq.Laplace(draws=args.draws)
        if args.laplace
        else tq.NUTS(chains=args.chains, warmup=args.warmup, draws=args.draws),
        seed=args.seed,
    )
    seconds = time.perf_counter() - start
    summary = post.population_summary(interval=0.9)
    inside = {}
    for name, row, true in (
        ("CL", "CL", TRUE["CL"]),
        ("V", "V", TRUE["V"]),
        # The summary reports a covariate effect as its ratio exp(beta) per SD.
        ("beta", "CL~CRCL", float(np.exp(TRUE["beta"]))),
        ("sigma", "sigma_prop[concentration]", TRUE["sigma"]),
    ):
        r = summary.loc[row]
        inside[name] = bool(r["lower"] <= true <= r["upper"])
    for name, p in (("omega_CL", "CL"), ("omega_V", "V")):
        r = summary.loc[p]
        inside[name] = bool(r["omega_lower"] <= TRUE[name] <= r["omega_upper"])
    # The patients' true clearance before and after the change, from their parameter paths.
    hits = {"cl0": 0, "cl1": 0}
    for i, pid in enumerate(post.patient_ids):
        pp = post.patient(pid)
        paths = pp.theta_path if pp.theta_path is not None else pp.theta[:, None, :]
        for key, g in (("cl0", 0), ("cl1", paths.shape[1] - 1)):
            lo, hi = np.quantile(paths[:, g, 0], [0.05, 0.95])
            hits[key] += int(lo <= truth[key][i] <= hi)
    diag = post.diagnostics()
    if args.laplace:  # no chains: report the point check only
        print(json.dumps({"inside": inside, "coverage": hits}, indent=2))
        print(summary[["median", "lower", "upper"]])
        return 0
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "patients": args.patients,
        "chains": args.chains,
        "warmup": args.warmup,
        "draws": args.draws,
        "centering": args.centering,
        "seconds": round(seconds, 1),
        "population_inside_90": inside,
        "population_summary_90": {
            str(k): {c: float(r[c]) for c in ("median", "lower", "upper")}
            for k, r in summary.iterrows()
        },
        "population_inside_count": f"{sum(inside.values())}/{len(inside)}",
        "patient_cl_coverage_90": {k: v / args.patients for k, v in hits.items()},
        **convergence_fields(diag, ("theta",)),
    }
    write_result(result, args.out)
    return 0


def recovery_arguments(
    doc: str, default_out: str, centering: str | None = None
) -> argparse.ArgumentParser:
    """The options every recovery study takes: cohort size, NUTS settings, seed, output.

    With ``centering`` (``"auto"`` or a weight in [0, 1]) the study also takes
    ``--centering``, the random effects' parameterisation, with that default.
    """
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    if centering is not None:
        ap.add_argument(
            "--centering",
            type=lambda text: text if text == "auto" else float(text),
            default=centering if centering == "auto" else float(centering),
            help=f"PopulationModel centering: 'auto' or a weight in [0, 1] (default {centering})",
        )
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default=default_out)
    return ap


def convergence_fields(diag, individual_prefixes: tuple[str, ...]) -> dict:
    """Worst R-hat values, the largest over population and over all sites, ESS, divergences.

    Sites whose name starts with one of ``individual_prefixes`` (patient parameters,
    occasion effects) do not count as population sites.
    """
    table = diag.table
    population = [not str(k).startswith(individual_prefixes) for k in table.index]
    rhat = table["r_hat"].dropna()
    return {
        "worst_rhat": {str(k): float(v) for k, v in rhat.sort_values().tail(5).items()},
        "max_rhat_population": float(table.loc[population, "r_hat"].max()),
        "max_rhat_all": float(table["r_hat"].max()),
        "min_ess_bulk": float(table["ess_bulk"].min()),
        "divergences": int(diag.divergences),
        "converged": bool(diag.converged),
    }


def head_commit() -> str:
    """The short hash of the checked-out commit (the library that runs)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


def fit_csv_cohort(args, table: pd.DataFrame, model_name: str):
    """Write ``table`` as a NONMEM-style CSV beside ``args.out``, read it back, fit by NUTS.

    Proportional error on ``concentration``, ``args.centering``; returns ``(model, post,
    fields)`` with ``fields`` the run's date, commit (read before the fit: later commits may
    land), cohort size, chain settings, centering and fit seconds.
    """
    import twin_uq as tq

    commit = head_commit()
    csv = Path(args.out).with_suffix(".csv")
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    cohort = tq.read_cohort(csv, time_unit="h")  # the NONMEM columns read back from the file
    model = tq.load_model(model_name)
    spec = tq.PopulationModel(
        model, error={"concentration": "proportional"}, centering=args.centering
    )
    start = time.perf_counter()
    post = tq.fit(
        model,
        cohort,
        population=spec,
        method=tq.NUTS(chains=args.chains, warmup=args.warmup, draws=args.draws),
        seed=args.seed,
    )
    fields = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "commit": commit,
        "patients": args.patients,
        "chains": args.chains,
        "warmup": args.warmup,
        "draws": args.draws,
        "centering": args.centering,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return model, post, fields


def population_fields(summary: pd.DataFrame, true: dict, names: tuple[str, ...]) -> dict:
    """Whether each true typical value, omega (``true["omega_<name>"]``) and the proportional
    SD (``true["sigma"]``) lie in the summary's interval, with the summary itself."""
    inside = {}
    for name in names:
        r = summary.loc[name]
        inside[name] = bool(r["lower"] <= true[name] <= r["upper"])
        if f"omega_{name}" in true:
            om = true[f"omega_{name}"]
            inside[f"omega_{name}"] = bool(r["omega_lower"] <= om <= r["omega_upper"])
    r = summary.loc["sigma_prop[concentration]"]
    inside["sigma"] = bool(r["lower"] <= true["sigma"] <= r["upper"])
    columns = ("median", "lower", "upper", "omega", "omega_lower", "omega_upper")
    return {
        "population_inside_90": inside,
        "population_inside_count": f"{sum(inside.values())}/{len(inside)}",
        "population_summary_90": {
            str(k): {c: float(r[c]) for c in columns if c in r and np.isfinite(r[c])}
            for k, r in summary.iterrows()
        },
    }


def write_result(result: dict, out: str | Path) -> None:
    """Print the result and write it as JSON (parent folders created)."""
    print(json.dumps(result, indent=2))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
