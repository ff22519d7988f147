"""Validation of the trust flag: do flagged twins really predict held-out data worse?

Simulated one-compartment oral cohorts with known truth in which a subgroup is data-poor
(and, in scenario B, older with an unmodelled age effect on clearance and no observation
before the split). Each cohort is fitted on the observations up to ``t_split``; the twins
then predict the later observations (posterior predictive from the draws of each
patient's parameters). We compare held-out error, 90 % interval coverage and width of
patients flagged ``limited``/``insufficient`` with those rated ``trustworthy`` (difference
with a 95 % bootstrap interval over patients) and give the ROC AUC of the flag for "the
90 % interval missed a held-out observation" and for "a held-out error above the
clinical threshold". Two deliberately poor fits check the other end: one chain of 30
draws must make every patient ``unreliable``; a Laplace fit must cap every status at
``limited``.

Usage::

    .venv/bin/python benchmarks/trust_validation.py --out benchmarks/results/trust
    .venv/bin/python benchmarks/trust_validation.py --quick      # small, for a smoke run

Results: ``trust_validation.md`` (tables pasted into docs/trust.md), CSV and JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import twin_uq as tq
from twin_uq.trust import TrustThresholds, assess_cohort
from twin_uq.trust.validation import flag_performance, patient_heldout_summary

tq.configure()  # float64 and one CPU device per parallel chain, before JAX starts

MODEL = "one_compartment_oral"
TIMES = [0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0]
T_SPLIT = 6.0
#: Absolute error counted as clinically relevant: 0.25 mg/L, 6 % of the clinical range
#: 0-4 mg/L of the model's concentration output.
ERROR_THRESHOLD = 0.25
COVARIATES = {
    "WT": ("lognormal", 70.0, 0.2),
    "AGE": ("uniform", 20.0, 85.0),
}

SCENARIOS = {
    "A_sparse": dict(
        description=(
            "30 % of patients sampled at 2, 8, 12, 24 h (one observation before the split), "
            "the others at all times (five before the split)."
        ),
        design=tq.Design(
            times=TIMES,
            doses=[tq.Bolus(0.0, 100.0, 1)],
            sparse_fraction=0.3,
            sparse_times=[2.0, 8.0, 12.0, 24.0],
            covariates=COVARIATES,
            jitter=0.2,
        ),
    ),
    "B_shifted_unobserved": dict(
        description=(
            "20 % of patients 30 years older (AGE shifted +30) with an age effect on clearance "
            "the fit does not model (-1.5 % per year), observed only after the split "
            "(8, 12, 24 h): no data before the forecast."
        ),
        design=tq.Design(
            times=TIMES,
            doses=[tq.Bolus(0.0, 100.0, 1)],
            sparse_fraction=0.2,
            sparse_times=[8.0, 12.0, 24.0],
            covariates=COVARIATES,
            effects={"CL": {"AGE": -0.015}},
            sparse_covariate_shift={"AGE": 30.0},
            jitter=0.2,
        ),
    ),
}


def md_table(frame: pd.DataFrame, fmt: str = ".3f") -> str:
    """A DataFrame as a Markdown table (no extra dependency)."""

    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else format(v, fmt)
        return str(v)

    head = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    rows = [
        [str(i)] + [cell(v) for v in row]
        for i, row in zip(frame.index, frame.to_numpy(), strict=True)
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def heldout_table(cohort: tq.Cohort) -> pd.DataFrame:
    t = cohort.to_dataframe()
    obs = t[(t["evid"] == 0) & t["dv"].notna()]
    return obs[["id", "time", "dv"]].reset_index(drop=True)


def run_scenario(name: str, spec: dict, args, out: Path) -> dict:
    sim = tq.simulate_cohort(MODEL, args.n, spec["design"], seed=args.seed)
    sampling = sim.table.groupby("id")["sampling"].first()
    train, hold = sim.cohort.split_at(T_SPLIT)
    t0 = time.time()
    post = tq.fit(
        MODEL,
        train,
        chains=args.chains,
        warmup=args.warmup,
        draws=args.draws,
        seed=args.seed,
        progress=False,
    )
    fit_s = time.time() - t0
    report = post.trust()
    table = report.table
    held = patient_heldout_summary(
        post, heldout_table(hold), interval=0.9, error_threshold=ERROR_THRESHOLD
    )
    joined = table.join(held).join(sampling.rename("sampling"))
    joined.to_csv(out / f"{name}_patients.csv")
    perf = flag_performance(
        table["status"], held, score=1.0 - table["contraction_median"].fillna(0.0), seed=args.seed
    )
    crosstab = pd.crosstab(joined["sampling"], joined["status"])
    # The same fit judged with 0.1 % divergent transitions tolerated: shows what the
    # data-driven flags do when the strict global rule has made every patient unreliable.
    relaxed = assess_cohort(post, TrustThresholds(max_divergence_fraction=0.001)).table
    perf_relaxed = flag_performance(
        relaxed["status"],
        held,
        score=1.0 - relaxed["contraction_median"].fillna(0.0),
        seed=args.seed,
    )
    joined["status_relaxed"] = relaxed["status"]
    diag = post.diagnostics()
    return dict(
        name=name,
        description=spec["description"],
        n=args.n,
        fit_seconds=fit_s,
        converged=diag.converged,
        diagnostics=str(diag),
        counts=report.counts().to_dict(),
        crosstab=crosstab,
        performance=perf,
        performance_relaxed=perf_relaxed,
        crosstab_relaxed=pd.crosstab(joined["sampling"], joined["status_relaxed"]),
        joined=joined,
        thresholds=report.thresholds.to_json(),
    )


def poor_fits(args) -> dict:
    sim = tq.simulate_cohort(MODEL, args.n, SCENARIOS["A_sparse"]["design"], seed=args.seed)
    train, _ = sim.cohort.split_at(T_SPLIT)
    short = tq.fit(MODEL, train, chains=1, warmup=30, draws=30, seed=1, progress=False)
    lap = tq.fit(MODEL, train, method="laplace", seed=1, progress=False)
    r_short, r_lap = short.trust(), lap.trust()
    return {
        "one_chain_30_draws": r_short.counts().to_dict(),
        "one_chain_example_reasons": list(next(iter(r_short)).reasons),
        "laplace": r_lap.counts().to_dict(),
    }


def markdown(results: list[dict], poor: dict | None, args) -> str:
    lines = [
        "## Validation results",
        "",
        f"Model `{MODEL}`, {args.n} patients per scenario, seed {args.seed}, NUTS "
        f"{args.chains} chains x {args.draws} draws ({args.warmup} warm-up). Fit on observations "
        f"up to t = {T_SPLIT:g} h; held-out: later observations. Clinical error threshold "
        f"{ERROR_THRESHOLD} mg/L. Flagged = `limited` or `insufficient`. Differences are "
        "flagged minus trustworthy, 95 % bootstrap interval over patients (2000 resamples).",
        "",
    ]
    for r in results:
        lines += [
            f"### {r['name']}",
            "",
            r["description"],
            "",
            f"Fit: {r['fit_seconds']:.0f} s, converged: {r['converged']}. Status counts: "
            + ", ".join(f"{k} {v}" for k, v in r["counts"].items()),
            "",
            "Status by sampling group:",
            "",
            md_table(r["crosstab"]),
            "",
            md_table(r["performance"]),
            "",
        ]
        if "performance_relaxed" in r:
            lines += [
                "Same fit, global divergence rule relaxed (max_divergence_fraction = 0.001):",
                "",
                md_table(r["crosstab_relaxed"]),
                "",
                md_table(r["performance_relaxed"]),
                "",
            ]
    if poor is not None:
        lines += [
            "### Deliberately poor fits",
            "",
            f"- one chain, 30 warm-up + 30 draws: {poor['one_chain_30_draws']}",
            f"  (reasons, first patient: {' | '.join(poor['one_chain_example_reasons'])})",
            f"- Laplace approximation: {poor['laplace']}",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/trust")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="24 patients, 2x200 draws")
    ap.add_argument("--skip-poor", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.chains, args.warmup, args.draws = 24, 2, 200, 200
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name, spec in SCENARIOS.items():
        r = run_scenario(name, spec, args, out)
        results.append(r)
        print(f"[{name}] fit {r['fit_seconds']:.0f}s counts {r['counts']}", flush=True)
        print(r["crosstab"], flush=True)
        print(r["performance"].round(3).to_string(), flush=True)
        (out / "trust_validation.md").write_text(markdown(results, None, args))
    pooled = pd.concat([r["joined"] for r in results], keys=[r["name"] for r in results])
    pooled.index = [f"{a}:{b}" for a, b in pooled.index]
    perf = flag_performance(
        pooled["status"],
        pooled[["n_heldout", "mae", "coverage", "any_miss", "width", "any_large_error"]],
        score=1.0 - pooled["contraction_median"].fillna(0.0),
    )
    results.append(
        dict(
            name="pooled",
            description="Both scenarios together.",
            fit_seconds=sum(r["fit_seconds"] for r in results),
            converged=all(r["converged"] for r in results),
            counts=pooled["status"].value_counts().to_dict(),
            crosstab=pd.crosstab(pooled["sampling"], pooled["status"]),
            performance=perf,
        )
    )
    print(perf.round(3).to_string(), flush=True)
    poor = None if args.skip_poor else poor_fits(args)
    print(poor, flush=True)
    (out / "trust_validation.md").write_text(markdown(results, poor, args))
    summary = {
        r["name"]: {
            "counts": r["counts"],
            "performance": r["performance"].reset_index().to_dict(orient="records"),
        }
        for r in results
    }
    summary["poor_fits"] = poor
    summary["thresholds"] = json.loads(results[0].get("thresholds", "{}"))
    (out / "trust_validation.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
