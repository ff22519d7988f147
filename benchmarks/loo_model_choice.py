"""Does leave-one-patient-out pick the true structural model, and does stacking favour it?

Two-compartment oral cohorts (truth: ``two_compartment``, the model's default typical
values and between-patient variability, combined residual error) are fitted by the true
model and by ``one_compartment_oral`` (same data, same dosing). Each pair of fits is
compared by PSIS leave-one-patient-out (``tq.compare(..., by="patient")``: the patient's
random effects integrated out) and the stacking weights are recorded.

* Model choice: ``--replicates`` cohorts of ``--patients`` patients; the true model "wins"
  when its elpd is the larger one. Success rate with its Jeffreys 90 % interval.
* Stacking vs cohort size: ``--stack-replicates`` cohorts of each size in ``--sizes``;
  weight of the true model (mean, min, max over replicates).

Fits are Laplace approximations (``tq.Laplace``; cheap on a shared 2-core machine, and
labelled approximate in every output).

Usage::

    .venv/bin/python benchmarks/loo_model_choice.py --out benchmarks/out/loo_model_choice.json
    .venv/bin/python benchmarks/loo_model_choice.py --replicates 1 --sizes 4 \
        --stack-replicates 1 --patients 4 --draws 200 --out benchmarks/out/loo_smoke.json

Results: a JSON file and a Markdown summary printed (pasted into docs/compare.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import twin_uq as tq
from twin_uq.twin.results import beta_interval

tq.configure()  # float64 before JAX starts

TRUE, WRONG = "two_compartment", "one_compartment_oral"
DESIGN = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    covariates={"WT": ("lognormal", 70.0, 0.2)},
)


def one_replicate(n: int, seed: int, draws: int, n_inner: int) -> dict:
    """Simulate a cohort of ``n`` patients, fit both models, compare them."""
    sim = tq.simulate_cohort(TRUE, n, DESIGN, seed=seed)
    t0 = time.perf_counter()
    fits = {
        label: tq.fit(model, sim.cohort, method=tq.Laplace(draws=draws), seed=seed, progress=False)
        for label, model in (("2cmt", TRUE), ("1cmt", WRONG))
    }
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = tq.compare(fits, by="patient", n_inner=n_inner)
    t_loo = time.perf_counter() - t0
    return {
        "n": n,
        "seed": seed,
        "winner": str(table.index[0]),
        "elpd_2cmt": float(table.loc["2cmt", "elpd"]),
        "elpd_1cmt": float(table.loc["1cmt", "elpd"]),
        "elpd_diff": float(table.loc["1cmt", "elpd"] - table.loc["2cmt", "elpd"]),
        "dse": float(table["dse"].max()),
        "weight_2cmt": float(table.loc["2cmt", "weight"]),
        "high_k_2cmt": int(table.loc["2cmt", "n_high_k"]),
        "high_k_1cmt": int(table.loc["1cmt", "n_high_k"]),
        "seconds_fit": t_fit,
        "seconds_loo": t_loo,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=10)
    ap.add_argument("--patients", type=int, default=8)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--stack-replicates", type=int, default=3)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--n-inner", type=int, default=128, help="inner draws of tq.compare")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/loo_model_choice.json"))
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    choice = []
    for r in range(args.replicates):
        row = one_replicate(args.patients, 1000 + r, args.draws, args.n_inner)
        choice.append(row)
        print(json.dumps(row), flush=True)
    stacking = []
    for n in args.sizes:
        for r in range(args.stack_replicates):
            if n == args.patients and r < len(choice):
                row = choice[r]  # the same cohort (same seed): not fitted twice
            else:
                row = one_replicate(n, 1000 + r, args.draws, args.n_inner)
                print(json.dumps(row), flush=True)
            stacking.append(row)
    wins = sum(row["winner"] == "2cmt" for row in choice)
    lo, hi = beta_interval(wins, len(choice), 0.9)
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "true_model": TRUE,
        "wrong_model": WRONG,
        "method": "laplace (approximate)",
        "draws": args.draws,
        "n_inner": args.n_inner,
        "model_choice": {"wins": wins, "replicates": len(choice), "interval90": [lo, hi]},
        "replicates": choice,
        "stacking": stacking,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nTrue model chosen in {wins} of {len(choice)} replicates "
          f"(Jeffreys 90% interval {lo:.2f}-{hi:.2f}), {args.patients} patients each.")  # fmt: skip
    print(
        "\n| patients | replicates | weight of true model: mean | min | max | elpd diff (1cmt - 2cmt), mean |"
    )
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        rows = [r for r in stacking if r["n"] == n]
        w = np.array([r["weight_2cmt"] for r in rows])
        d = np.mean([r["elpd_diff"] for r in rows])
        print(f"| {n} | {len(rows)} | {w.mean():.3f} | {w.min():.3f} | {w.max():.3f} | {d:.1f} |")
    fit_s = np.mean([r["seconds_fit"] for r in choice])
    loo_s = np.mean([r["seconds_loo"] for r in choice])
    print(f"\nMean time per replicate ({args.patients} patients): both fits {fit_s:.0f} s, "
          f"LOO of both {loo_s:.0f} s.")  # fmt: skip


if __name__ == "__main__":
    main()
