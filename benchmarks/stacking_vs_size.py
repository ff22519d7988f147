"""Do stacking weights concentrate on the true model as the cohort grows?

Two-compartment oral cohorts (truth: ``two_compartment`` at its default typical values and
between-patient variability, combined residual error; the design of
``benchmarks/loo_model_choice.py``: one 100 mg oral dose, 8 samples from 0.5 to 24 h,
weight lognormal around 70 kg) of each size in ``--sizes`` are fitted by the true model and
by ``one_compartment_oral`` (and by ``--extra`` models, if given), compared by PSIS
leave-one-patient-out (``tq.compare(..., by="patient")``, the patient's random effects
integrated out) and the stacking weight of the true model is recorded.

Replicate ``r`` of every size uses the seed ``--seed0 + r``; the sizes are run in turn
within each replicate, so that a run stopped early has about as many cohorts of each size.
Rows are appended to ``<out>/rows.jsonl`` as they finish; a rerun with the same ``--out``
skips the cohorts already there (method, size and seed), so several processes can share one
``--out`` (``--descending`` for the second) and NUTS cross-check rows sit beside Laplace
rows of the same cohorts.

* ``--method laplace`` (default): ``tq.Laplace(steps, draws)``, approximate and labelled so.
* ``--method nuts``: ``tq.NUTS(chains=1, warmup, draws)``, exact MCMC, short chains: the
  cross-check that LOO on exact fits picks the same model, with the patients' Pareto k.

Usage::

    .venv/bin/python benchmarks/stacking_vs_size.py --replicates 10 --sizes 4 8 16 32 \
        --out benchmarks/out/stacking_vs_size
    .venv/bin/python benchmarks/stacking_vs_size.py --method nuts --replicates 3 --sizes 8 16 \
        --warmup 300 --draws 300 --out benchmarks/out/stacking_vs_size
    .venv/bin/python benchmarks/stacking_vs_size.py --summarise --out benchmarks/out/stacking_vs_size

Results: ``<out>/rows.jsonl`` and a Markdown summary (``<out>/summary.md``, printed; pasted
into docs/compare.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from loo_model_choice import DESIGN, TRUE, WRONG  # the same truth, design and wrong model
from scipy.stats import spearmanr

import twin_uq as tq

tq.configure()  # float64 before JAX starts

#: Short labels of the models (the table's row names).
LABELS = {TRUE: "2cmt", WRONG: "1cmt"}


def fit_method(args: argparse.Namespace) -> tq.FitMethod:
    """The fit method of the run."""
    if args.method == "nuts":
        return tq.NUTS(chains=1, warmup=args.warmup, draws=args.draws)
    return tq.Laplace(steps=args.steps, draws=args.draws)


def one_cohort(n: int, seed: int, models: list[str], args: argparse.Namespace) -> dict:
    """Simulate a cohort of ``n`` patients, fit every model, compare them by patient-LOO."""
    sim = tq.simulate_cohort(TRUE, n, DESIGN, seed=seed)
    method = fit_method(args)
    t0 = time.perf_counter()
    fits = {
        LABELS.get(m, m): tq.fit(m, sim.cohort, method=method, seed=seed, progress=False)
        for m in models
    }
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = tq.compare(fits, by="patient", n_inner=args.n_inner)
    t_loo = time.perf_counter() - t0
    true = LABELS[TRUE]
    row = {
        "method": args.method,
        "n": n,
        "seed": seed,
        "winner": str(table.index[0]),
        "weights": {str(k): float(v) for k, v in table["weight"].items()},
        "elpd": {str(k): float(v) for k, v in table["elpd"].items()},
        "elpd_diff_vs_true": {
            str(k): float(table.loc[k, "elpd"] - table.loc[true, "elpd"]) for k in table.index
        },
        "dse": {str(k): float(v) for k, v in table["dse"].items()},
        "n_high_k": {str(k): int(v) for k, v in table["n_high_k"].items()},
        "max_k": {str(k): float(v) for k, v in table["max_k"].items()},
        "draws": args.draws,
        "n_inner": args.n_inner,
        "seconds_fit": t_fit,
        "seconds_loo": t_loo,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": os.getloadavg()[0],
    }
    if args.method == "nuts":
        row["warmup"] = args.warmup
        row["divergences"] = {
            k: int(np.asarray(p.idata["sample_stats"]["diverging"]).sum()) for k, p in fits.items()
        }
    return row


def read_rows(log: Path) -> list[dict]:
    """Finished rows (read before every cohort: several processes may share one log)."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def summarise(rows: list[dict], sizes: list[int]) -> str:
    """Markdown: weight of the true model per size and method; LOO agreement of NUTS."""
    true = LABELS[TRUE]
    frame = pd.DataFrame(
        {
            "method": r["method"],
            "n": r["n"],
            "seed": r["seed"],
            "w": r["weights"][true],
            "win": r["winner"] == true,
            "diff": min(v for k, v in r["elpd_diff_vs_true"].items() if k != true),
            "high_k": r["n_high_k"][true] / r["n"],
            "high_k_wrong": r["n_high_k"][LABELS[WRONG]] / r["n"],
            "fit_s": r["seconds_fit"],
            "loo_s": r["seconds_loo"],
        }
        for r in rows
        if r["n"] in sizes
    ).drop_duplicates(["method", "n", "seed"], keep="first")
    lines = [
        "| method | patients | cohorts | weight of 2cmt: mean | SD | median | min | max "
        "| true model wins | elpd diff (best wrong - 2cmt), mean | share of patients k > 0.7 "
        "(2cmt / 1cmt) | fit / LOO s (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, n), g in frame.groupby(["method", "n"]):
        sd = g["w"].std(ddof=1) if len(g) > 1 else float("nan")
        lines.append(
            f"| {method} | {n} | {len(g)} | {g['w'].mean():.3f} | {sd:.3f} | "
            f"{g['w'].median():.3f} | {g['w'].min():.3f} | {g['w'].max():.3f} | "
            f"{int(g['win'].sum())}/{len(g)} | {g['diff'].mean():.1f} | "
            f"{g['high_k'].mean():.2f} / {g['high_k_wrong'].mean():.2f} | "
            f"{g['fit_s'].mean():.0f} / {g['loo_s'].mean():.0f} |"
        )
    for method, g in frame.groupby("method"):
        if g["n"].nunique() > 2:
            rho, p = spearmanr(g["n"], g["w"])
            lines.append(
                f"\n{method}: Spearman correlation of the true model's weight with cohort size "
                f"{rho:.2f} (p = {p:.2g}, {len(g)} cohorts)."
            )
    both = frame.pivot_table(index=["n", "seed"], columns="method", values=["w", "win"])
    if {"laplace", "nuts"} <= set(frame["method"]):
        both = both.dropna()
        if len(both):
            lines.append(
                "\n| patients | seed | weight of 2cmt, Laplace / NUTS | winner agrees |\n"
                "|---|---|---|---|"
            )
            for (n, seed), r in both.iterrows():
                agree = bool(r[("win", "laplace")]) == bool(r[("win", "nuts")])
                lines.append(
                    f"| {n} | {seed} | {r[('w', 'laplace')]:.3f} / {r[('w', 'nuts')]:.3f} "
                    f"| {'yes' if agree else 'no'} |"
                )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--replicates", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--seed0", type=int, default=3000)
    ap.add_argument("--method", default="laplace", choices=("laplace", "nuts"))
    ap.add_argument("--steps", type=int, default=1500, help="Laplace optimisation steps")
    ap.add_argument("--warmup", type=int, default=300, help="NUTS warm-up (one chain)")
    ap.add_argument("--draws", type=int, default=400, help="posterior draws")
    ap.add_argument("--n-inner", type=int, default=512, help="inner draws of tq.compare")
    ap.add_argument("--extra", nargs="*", default=[], help="further (wrong) models to compare")
    ap.add_argument("--descending", action="store_true", help="run the replicates from the last")
    ap.add_argument("--summarise", action="store_true", help="only summarise finished rows")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/stacking_vs_size"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "rows.jsonl"
    models = [TRUE, WRONG, *args.extra]
    order = range(args.replicates)
    for r in reversed(order) if args.descending else order:
        for n in args.sizes:
            seed = args.seed0 + r
            done = {(x["method"], x["n"], x["seed"]) for x in read_rows(log)}
            if args.summarise or (args.method, n, seed) in done:
                continue
            row = one_cohort(n, seed, models, args)
            with log.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    table = summarise(read_rows(log), args.sizes)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
