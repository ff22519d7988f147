"""Recovery of inter-occasion variability on clearance by NUTS (docs/data.md).

A cohort of one-compartment IV patients with three occasions each (a 100 mg bolus at 0 h,
48 h and 96 h, each starting an occasion, ``OCC`` 1, 2, 3) and four concentrations per
occasion. Clearance varies between patients and between occasions:

    log CL_ik = mu_CL + omega_CL eta_i + omega_occ kappa_ik,   log V_i = mu_V + omega_V eta'_i

The concentrations are simulated from the piecewise exponential written out here (not by
twin_uq), with proportional error, and fitted with ``PopulationModel(..., iov=["CL"])``.
Reported: whether each true population value (typical CL and V, omega_CL, omega_V,
omega_occ, sigma) lies in its 90 % interval, the coverage of the patients' true clearance
on each occasion by their 90 % intervals, R-hat, bulk ESS and divergences.

    .venv/bin/python benchmarks/recovery_iov.py --patients 100 --chains 4 \
        --warmup 500 --draws 500
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from recovery_time_varying import (
    convergence_fields,
    head_commit,
    recovery_arguments,
    write_result,
)

TRUE = {
    "CL": 5.0,
    "V": 50.0,
    "omega_CL": 0.3,
    "omega_V": 0.2,
    "omega_occ_CL": 0.2,
    "sigma": 0.1,
}
STARTS = (0.0, 48.0, 96.0)  # each dose starts an occasion
SAMPLES = (1.0, 4.0, 10.0, 24.0)  # hours after each dose


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The cohort's long table and the true clearance ``(n, occasions)`` (by hand)."""
    rng = np.random.default_rng(seed)
    eta = rng.standard_normal((n, 2))
    kappa = rng.standard_normal((n, len(STARTS)))
    cl = TRUE["CL"] * np.exp(TRUE["omega_CL"] * eta[:, :1] + TRUE["omega_occ_CL"] * kappa)
    v = TRUE["V"] * np.exp(TRUE["omega_V"] * eta[:, 1])
    rows = []
    for i in range(n):
        amount_at_start = 0.0  # what is left of earlier doses when an occasion starts
        for k, t0 in enumerate(STARTS):
            rate = cl[i, k] / v[i]
            a0 = amount_at_start + 100.0
            rows.append(dict(ID=i + 1, TIME=t0, AMT=100.0, EVID=1, DV=np.nan, OCC=k + 1))
            for dt in SAMPLES:
                f = a0 * np.exp(-rate * dt) / v[i]
                y = f * (1 + TRUE["sigma"] * rng.standard_normal())
                rows.append(dict(ID=i + 1, TIME=t0 + dt, AMT=0.0, EVID=0, DV=y, OCC=k + 1))
            end = STARTS[k + 1] if k + 1 < len(STARTS) else np.inf
            amount_at_start = a0 * np.exp(-rate * (end - t0)) if np.isfinite(end) else 0.0
    table = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], kind="stable")
    return table.reset_index(drop=True), cl


def main(argv: list[str] | None = None) -> int:
    args = recovery_arguments(__doc__, "benchmarks/out/recovery_iov.json").parse_args(argv)

    import twin_uq as tq

    tq.configure(host_devices=args.chains)
    from models.one_compartment_iv import OneCompartmentIV

    # the commit of the library that runs (read before the fit: later commits may land)
    commit = head_commit()
    table, true_cl = simulate(args.patients, args.seed)
    cohort = tq.read_cohort(table, time_unit="h")
    model = OneCompartmentIV()
    spec = tq.PopulationModel(
        model, error={"concentration": "proportional"}, iov=["CL"], prior_check="off"
    )
    start = time.perf_counter()
    post = tq.fit(
        model,
        cohort,
        population=spec,
        method=tq.NUTS(chains=args.chains, warmup=args.warmup, draws=args.draws),
        seed=args.seed,
    )
    seconds = time.perf_counter() - start
    summary = post.population_summary(interval=0.9)
    inside = {}
    for name, row, col in (
        ("CL", "CL", ""),
        ("V", "V", ""),
        ("omega_CL", "CL", "omega_"),
        ("omega_V", "V", "omega_"),
        ("omega_occ_CL", "CL", "omega_occ_"),
        ("sigma", "sigma_prop[concentration]", ""),
    ):
        r = summary.loc[row]
        inside[name] = bool(r[f"{col}lower"] <= TRUE[name] <= r[f"{col}upper"])
    # Each patient's true clearance on each occasion against its 90 % interval.
    hits = np.zeros(len(STARTS))
    for i, pid in enumerate(post.patient_ids):
        pp = post.patient(pid)
        lo, hi = np.quantile(pp.theta_path[:, :, 0], [0.05, 0.95], axis=0)
        hits += (lo <= true_cl[i]) & (true_cl[i] <= hi)
    diag = post.diagnostics()
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "commit": commit,
        "patients": args.patients,
        "occasions_per_patient": len(STARTS),
        "chains": args.chains,
        "warmup": args.warmup,
        "draws": args.draws,
        "seconds": round(seconds, 1),
        "population_inside_90": inside,
        "population_inside_count": f"{sum(inside.values())}/{len(inside)}",
        "population_summary_90": {
            str(k): {
                c: float(r[c])
                for c in (
                    *("median", "lower", "upper"),
                    *("omega", "omega_lower", "omega_upper"),
                    *("omega_occ", "omega_occ_lower", "omega_occ_upper"),
                )
                if c in r and np.isfinite(r[c])
            }
            for k, r in summary.iterrows()
        },
        "occasion_cl_coverage_90": [round(float(h) / args.patients, 3) for h in hits],
        **convergence_fields(diag, ("theta", "kappa")),
    }
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
