"""Recovery of a one-compartment oral model from steady-state TDM records by NUTS (docs/data.md).

Routine therapeutic drug monitoring of chronic therapy: every patient is at steady state
on a fixed regimen when sampled. The record is written as a NONMEM-style CSV and read back
with ``tq.read_cohort`` (so the data contract is exercised): one dose row per patient with
``SS=1``, ``II`` and ``ADDL=1`` (the steady-state dose at 0 h and one more dose at ``II``),
and four concentrations, a trough 15 min before the second dose and three samples after it
(peak, mid-interval, late). Two arms:

* oral (80 % of patients): 100, 200 or 300 mg by mouth every 12 h or 24 h (``CMT=1``);
* intravenous infusion (20 %): 200 mg over 1 h every 12 h into the central compartment
  (``CMT=2``, ``RATE=200``, ``SS=1``).

Parameters (``one_compartment_oral``, allometric weight on CL and V as the model declares):
log-normal ka, CL, V with between-patient SDs, proportional error. The concentrations are
simulated from the closed forms of the periodic steady state written out here (not by
twin_uq): for an oral dose D every tau, s hours after the last dose, k = CL/V,

    C(s) = D ka / (V (ka - k)) [exp(-k s) / (1 - exp(-k tau)) - exp(-ka s) / (1 - exp(-ka tau))]

and for an infusion of rate R over T every tau, with C_min = R/CL (1 - e^{-kT}) e^{-k(tau-T)}
/ (1 - e^{-k tau}): C(s) = R/CL (1 - e^{-ks}) + C_min e^{-ks} for s <= T, then
C(T) e^{-k(s-T)}. Every sample lies in [0, 2 tau) where the curve is periodic. Reported:
true population values in their 90 % intervals, coverage of the patients' true CL, R-hat,
bulk ESS, divergences.

    .venv/bin/python benchmarks/recovery_steady_state.py --patients 100 --chains 4 \
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

# True values, away from the model's defaults (ka 1, CL 5, V 50).
TRUE = {
    "ka": 1.5,
    "CL": 4.0,
    "V": 60.0,
    "omega_ka": 0.3,
    "omega_CL": 0.3,
    "omega_V": 0.2,
    "sigma": 0.1,
}
INFUSION_SHARE = 0.2
INFUSION = {"amount": 200.0, "duration": 1.0, "tau": 12.0}


def oral_ss(s: np.ndarray, dose: float, tau: float, ka: float, k: float, v: float) -> np.ndarray:
    """Steady-state concentration ``s`` h after an oral dose (mg/L), first-order absorption."""
    a = np.exp(-k * s) / (1 - np.exp(-k * tau)) - np.exp(-ka * s) / (1 - np.exp(-ka * tau))
    return dose * ka / (v * (ka - k)) * a


def infusion_ss(
    s: np.ndarray, dose: float, duration: float, tau: float, cl: float, v: float
) -> np.ndarray:
    """Steady-state concentration ``s`` h after an infusion starts (mg/L)."""
    k, rate = cl / v, dose / duration
    c_min = rate / cl * -np.expm1(-k * duration) * np.exp(-k * (tau - duration))
    c_min /= -np.expm1(-k * tau)
    during = rate / cl * -np.expm1(-k * s) + c_min * np.exp(-k * s)
    c_end = rate / cl * -np.expm1(-k * duration) + c_min * np.exp(-k * duration)
    return np.where(s <= duration, during, c_end * np.exp(-k * (s - duration)))


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """The NONMEM-style table and the true individual values (by hand, no twin_uq)."""
    rng = np.random.default_rng(seed)
    wt = 70 * np.exp(0.2 * rng.standard_normal(n))
    eta = rng.standard_normal((n, 3))
    omega = np.array([TRUE["omega_ka"], TRUE["omega_CL"], TRUE["omega_V"]])
    ka, cl, v = (np.log([TRUE["ka"], TRUE["CL"], TRUE["V"]]) + eta * omega).T
    ka, cl, v = np.exp(ka), np.exp(cl) * (wt / 70) ** 0.75, np.exp(v) * wt / 70
    infused = np.arange(n) >= n - round(INFUSION_SHARE * n)
    rows = []
    for i in range(n):
        pid = i + 1
        if infused[i]:
            dose, tau, cmt = INFUSION["amount"], INFUSION["tau"], 2
            rate = dose / INFUSION["duration"]
            after = [INFUSION["duration"], rng.uniform(2.0, 4.0), rng.uniform(6.0, 10.0)]
        else:
            dose, tau, cmt, rate = rng.choice([100.0, 200.0, 300.0]), rng.choice([12.0, 24.0]), 1, 0
            after = [rng.uniform(0.5, 1.5), rng.uniform(2.0, 4.0), rng.uniform(tau / 2, tau - 1)]
        rows.append(
            dict(ID=pid, TIME=0.0, AMT=dose, EVID=1, MDV=1, CMT=cmt, RATE=rate, SS=1, II=tau,
                 ADDL=1, DV=np.nan, WT=wt[i])
        )  # fmt: skip
        times = np.array([tau - 0.25, *(tau + np.asarray(after))])
        s = np.mod(times, tau)  # hours since the last dose, within the periodic steady state
        if infused[i]:
            f = infusion_ss(s, dose, INFUSION["duration"], tau, cl[i], v[i])
        else:
            f = oral_ss(s, dose, tau, ka[i], cl[i] / v[i], v[i])
        y = f * (1 + TRUE["sigma"] * rng.standard_normal(len(f)))
        for t, obs in zip(times, y, strict=True):
            rows.append(
                dict(ID=pid, TIME=round(float(t), 4), AMT=0.0, EVID=0, MDV=0, CMT=2, RATE=0,
                     SS=0, II=0.0, ADDL=0, DV=float(obs), WT=wt[i])
            )  # fmt: skip
    table = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], kind="stable")
    return table.reset_index(drop=True), {"ka": ka, "cl": cl, "v": v, "infused": infused}


def main(argv: list[str] | None = None) -> int:
    # tq.fit's default parameterisation (a PopulationModel's own default is non-centred)
    ap = recovery_arguments(__doc__, "benchmarks/out/recovery_steady_state.json", centering="auto")
    ap.set_defaults(warmup=1000, draws=1000)
    args = ap.parse_args(argv)

    import twin_uq as tq

    tq.configure(host_devices=args.chains)
    table, truth = simulate(args.patients, args.seed)
    model, post, fields = fit_csv_cohort(args, table, "one_compartment_oral")
    summary = post.population_summary(interval=0.9)
    # Each patient's true CL against its 90 % interval, by arm.
    j = [p.name for p in model.parameters].index("CL")
    hits = {"oral": [], "infusion": []}
    for i, pid in enumerate(post.patient_ids):
        lo, hi = np.quantile(post.patient(pid).theta[:, j], [0.05, 0.95])
        hits["infusion" if truth["infused"][i] else "oral"].append(bool(lo <= truth["cl"][i] <= hi))
    result = {
        **fields,
        "infusion_patients": int(truth["infused"].sum()),
        **population_fields(summary, TRUE, ("ka", "CL", "V")),
        "patient_cl_coverage_90": {k: round(float(np.mean(v)), 3) for k, v in hits.items() if v},
        **convergence_fields(post.diagnostics(), ("theta",)),
    }
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
