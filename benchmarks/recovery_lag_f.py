"""Recovery of lag time and bioavailability by NUTS (docs/data.md).

A crossover cohort: every patient takes 100 mg by mouth at 0 h (``CMT=1``, the gut depot)
and 100 mg as an intravenous bolus at 48 h (``CMT=2``), which identifies the
bioavailability F1. Nine concentrations per patient (0.5, 1, 1.5, 2, 4, 8 and 24 h after
the oral dose, 1 and 8 h after the IV dose); weight scales CL (power 0.75) and V (power 1)
as the model declares. Fitted with ``one_compartment_oral_lag``: log-normal ka, CL, V and
lag time ALAG1 with between-patient SDs, F1 a population value on the logit scale (the
model declares it without between-patient variability), proportional error. The record
is written as a NONMEM-style CSV and read back with ``tq.read_cohort``.

The concentrations are simulated from the closed form written out here (not by twin_uq):
with s = t - ALAG1 and k = CL/V, the oral dose gives F1 D ka / (V (ka - k)) (e^{-ks} -
e^{-ka s}) for s > 0 (0 before), the IV dose D/V e^{-k(t - 48)} from 48 h. A value below
the assay's limit (0.02 mg/L; every sample taken before the lag ends) is written as
censored (``CENS=1``, ``DV`` the limit; M3), as a laboratory reports it. Reported: true
population values in their 90 % intervals, coverage of the patients' true CL and ALAG1,
the realised SD of the simulated patients' log effects (the cohort's own spread, which the
posterior of omega follows) and whether each omega interval holds it, R-hat, bulk ESS,
divergences.

    .venv/bin/python benchmarks/recovery_lag_f.py --patients 100 --chains 4 \
        --warmup 1000 --draws 1000
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from recovery_time_varying import (
    convergence_fields,
    fit_csv_cohort,
    population_fields,
    recovery_arguments,
    write_result,
)

# True values, away from the model's defaults (ka 1, CL 5, V 50, ALAG1 0.5, F1 0.8).
TRUE = {
    "ka": 1.5,
    "CL": 4.0,
    "V": 60.0,
    "ALAG1": 0.75,
    "F1": 0.6,
    "omega_ka": 0.3,
    "omega_CL": 0.3,
    "omega_V": 0.2,
    "omega_ALAG1": 0.3,
    "sigma": 0.1,
}
DOSE = 100.0
IV_TIME = 48.0
TIMES = (0.5, 1.0, 1.5, 2.0, 4.0, 8.0, 24.0, 49.0, 56.0)
LLOQ = 0.02  # mg/L, lower limit of quantification of the assay


def concentration(t: np.ndarray, ka: float, cl: float, v: float, lag: float, f: float):
    """Oral dose at 0 h (lagged, scaled by F) plus IV bolus at ``IV_TIME`` (mg/L)."""
    k, s = cl / v, np.maximum(t - lag, 0.0)
    oral = f * DOSE * ka / (v * (ka - k)) * (np.exp(-k * s) - np.exp(-ka * s))
    iv = np.where(t >= IV_TIME, DOSE / v * np.exp(-k * np.maximum(t - IV_TIME, 0.0)), 0.0)
    return oral + iv


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """The NONMEM-style table and the true individual values (by hand, no twin_uq)."""
    rng = np.random.default_rng(seed)
    wt = 70 * np.exp(0.2 * rng.standard_normal(n))
    names = ("ka", "CL", "V", "ALAG1")
    eta = rng.standard_normal((n, len(names)))
    omega = np.array([TRUE[f"omega_{p}"] for p in names])
    ka, cl, v, lag = np.exp(np.log([TRUE[p] for p in names]) + eta * omega).T
    cl, v = cl * (wt / 70) ** 0.75, v * wt / 70
    rows = []
    times = np.array(TIMES)
    for i in range(n):
        pid = i + 1
        for t, cmt in ((0.0, 1), (IV_TIME, 2)):
            rows.append(
                dict(ID=pid, TIME=t, AMT=DOSE, EVID=1, MDV=1, CMT=cmt, DV=np.nan, CENS=0, WT=wt[i])
            )
        f = concentration(times, ka[i], cl[i], v[i], lag[i], TRUE["F1"])
        y = f * (1 + TRUE["sigma"] * rng.standard_normal(len(f)))
        for t, obs in zip(times, y, strict=True):
            # below the assay's limit (before the lag: exactly 0): reported as censored, M3
            blq = obs < LLOQ
            rows.append(
                dict(ID=pid, TIME=t, AMT=0.0, EVID=0, MDV=0, CMT=2, DV=LLOQ if blq else float(obs),
                     CENS=int(blq), WT=wt[i])
            )  # fmt: skip
    table = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], kind="stable")
    # The SD of the patients' own log effects (ddof=1, as benchmarks/fit_benchmark.py): what
    # the posterior of omega follows with 100 patients, whatever the generative omega.
    realised = {p: float(np.std(eta[:, j] * omega[j], ddof=1)) for j, p in enumerate(names)}
    return table.reset_index(drop=True), {"CL": cl, "ALAG1": lag, "omega_realised": realised}


def realised_fields(summary: pd.DataFrame, realised: dict[str, float]) -> dict:
    """Each parameter's realised SD of log effects and whether its omega interval holds it."""
    return {
        p: {
            "sd": sd,
            "inside_90": bool(summary.loc[p, "omega_lower"] <= sd <= summary.loc[p, "omega_upper"]),
        }
        for p, sd in realised.items()
    }


def main(argv: list[str] | None = None) -> int:
    # tq.fit's default parameterisation (PopulationModel's default too since 2026-12-07)
    ap = recovery_arguments(__doc__, "benchmarks/out/recovery_lag_f.json", centering="auto")
    ap.set_defaults(warmup=1000, draws=1000)
    args = ap.parse_args(argv)

    import twin_uq as tq

    tq.configure(host_devices=args.chains)
    table, truth = simulate(args.patients, args.seed)
    model, post, fields = fit_csv_cohort(args, table, "one_compartment_oral_lag")
    summary = post.population_summary(interval=0.9)
    names = [p.name for p in model.parameters]
    hits = {"CL": 0, "ALAG1": 0}
    for i, pid in enumerate(post.patient_ids):
        theta = post.patient(pid).theta
        for p in hits:
            lo, hi = np.quantile(theta[:, names.index(p)], [0.05, 0.95])
            hits[p] += int(lo <= truth[p][i] <= hi)
    result = {
        **fields,
        **population_fields(summary, TRUE, ("ka", "CL", "V", "ALAG1", "F1")),
        "patient_coverage_90": {p: h / args.patients for p, h in hits.items()},
        "omega_realised": realised_fields(summary, truth["omega_realised"]),
        **convergence_fields(post.diagnostics(), ("theta",)),
    }
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
