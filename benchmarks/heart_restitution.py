"""APD restitution twins against a Fenton-Karma truth: cost, coverage, alternans calibration.

A cohort of virtual hearts is simulated with the Fenton-Karma three-variable cell model
(:mod:`twin_uq.testing.fenton_karma`, structurally different from the fitted map): a
dynamic restitution protocol (20 beats at each of 1000 ... 460 ms), steady-state APD90
with noise (SD 4 ms), and the truth of "APD alternans (or 2:1 block) after 40 beats at
``--alternans-bcl``" from the cell model itself. ``mitchell_schaeffer_restitution`` is
fitted to the cohort with ``tq.fit`` (NUTS, the default), its "time" axis being the
pacing cycle length. Each patient has one interior cycle length held out; a few patients
(``--sparse``) keep only two cycle lengths (1000 and 600 ms).

    python heart_restitution.py --patients 50 --out out/heart_restitution.json

Reported: seconds to fit (wall clock, this machine's load included); coverage of the 90 %
predictive intervals at the held-out cycle lengths; per patient the probability of
alternans (restitution slope > 1 at the steady state of ``--alternans-bcl``) with its
MCSE, against the cell model's truth: Brier score, reliability by bins of probability;
the trust status of the two-cycle-length patients.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from recovery_time_varying import write_result

BCLS = (1000.0, 850.0, 700.0, 600.0, 520.0, 460.0)
SPARSE_BCLS = (1000.0, 600.0)
BINS = (0.0, 0.1, 0.3, 0.7, 0.9, 1.0)


def split_rows(data, sparse_ids, rng):
    """``(fit rows, held-out rows)``: one interior cycle length per full patient held out."""
    keep, held = [], []
    for pid, rows in data.groupby("id", sort=False):
        if pid in sparse_ids:
            keep.append(rows[rows["time"].isin(SPARSE_BCLS)])
            continue
        interior = rows[(rows["time"] < BCLS[0]) & (rows["time"] > BCLS[-1])]
        if len(interior) and len(rows) > 3:
            out = interior.sample(1, random_state=int(rng.integers(2**31)))
            held.append(out)
            rows = rows.drop(out.index)
        keep.append(rows)
    import pandas as pd

    return pd.concat(keep), pd.concat(held)


def reliability(prob: np.ndarray, truth: np.ndarray) -> list[dict[str, float]]:
    """Observed frequency of the event in bins of predicted probability."""
    table = []
    for lo, hi in itertools.pairwise(BINS):
        inside = (prob >= lo) & ((prob < hi) | (hi == 1.0))
        if inside.any():
            table.append(
                {
                    "bin": f"[{lo:.1f}, {hi:.1f}{']' if hi == 1.0 else ')'}",
                    "n": int(inside.sum()),
                    "mean_probability": float(prob[inside].mean()),
                    "observed_frequency": float(truth[inside].mean()),
                }
            )
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=50)
    ap.add_argument("--sparse", type=int, default=5, help="patients with two cycle lengths")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--target-accept", type=float, default=0.9)
    ap.add_argument("--alternans-bcl", type=float, default=400.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default="out/heart_restitution.json")
    args = ap.parse_args(argv)

    import twin_uq as tq
    from twin_uq.testing.fenton_karma import simulate_restitution_cohort

    tq.configure()
    model = tq.load_model("mitchell_schaeffer_restitution")
    restitution = sys.modules[type(model).__module__]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()

    t0 = time.perf_counter()
    sim = simulate_restitution_cohort(
        args.patients, BCLS, seed=args.seed, alternans_bcl=args.alternans_bcl
    )
    simulate_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    ids = list(sim.truth["id"])
    sparse_ids = set(ids[: args.sparse])
    fit_rows, held = split_rows(sim.data, sparse_ids, rng)
    # TIME holds the pacing cycle length in ms, as the model declares; nothing is converted.
    cohort = tq.read_cohort(
        fit_rows[["id", "time", "output", "dv"]],
        time_unit="ms",  # the cycle lengths are in ms
    )

    t0 = time.perf_counter()
    post = tq.fit(
        model,
        cohort,
        chains=args.chains,
        warmup=args.warmup,
        draws=args.draws,
        target_accept=args.target_accept,
        seed=0,
        progress=False,
    )
    fit_s = time.perf_counter() - t0
    diag = post.diagnostics()

    t0 = time.perf_counter()
    covered = []
    for _, row in held.iterrows():
        ds = post.twin(row["id"]).predict([row["time"]], interval=0.9)
        lo, hi = float(ds["lower"].values[0, 0]), float(ds["upper"].values[0, 0])
        covered.append(lo <= row["dv"] <= hi)
    fitted_ids = [pid for pid in ids if pid in set(post.patient_ids)]
    alt = [
        restitution.alternans_probability(post.twin(pid), args.alternans_bcl) for pid in fitted_ids
    ]
    twin_s = time.perf_counter() - t0
    truth = sim.truth.set_index("id").loc[fitted_ids]
    prob = np.array([a["probability"] for a in alt])
    event = truth["alternans"].to_numpy(bool)
    trust = post.trust()
    status = {pid: str(trust[pid].status) for pid in fitted_ids}
    # The data verdict answers "do this patient's own data inform the twin", whatever the
    # fit's convergence (which makes every twin unreliable when it fails).
    data_verdict = {pid: str(trust[pid].data_verdict) for pid in fitted_ids}
    reasons = {pid: list(trust[pid].reasons) for pid in sparse_ids if pid in status}
    n_cov = len(covered)
    p_cov = float(np.mean(covered)) if n_cov else float("nan")
    result = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "commit": commit,
        "settings": vars(args),
        "cycle_lengths_ms": BCLS,
        "simulate_s": simulate_s,
        "fit_s": fit_s,
        "twin_questions_s": twin_s,
        "diagnostics": str(diag),
        "max_rhat": diag.max_rhat,
        "max_rhat_quantity": str(diag.table["r_hat"].idxmax()),
        "min_ess_bulk": diag.min_ess_bulk,
        "divergences": int(diag.divergences),
        "converged": bool(diag.converged),
        "held_out": n_cov,
        "coverage_90": p_cov,
        "coverage_mcse": float(np.sqrt(0.9 * 0.1 / n_cov)) if n_cov else float("nan"),
        "alternans_prevalence": float(event.mean()),
        "alternans_block": int(truth["block"].sum()),
        "brier": float(np.mean((prob - event) ** 2)),
        "brier_prevalence_only": float(np.mean((event.mean() - event) ** 2)),
        "max_mcse": float(max(a["mcse"] for a in alt)),
        "reliability": reliability(prob, event),
        "per_patient": [
            {"id": pid, **a, "truth": bool(e), "status": status[pid], "data": data_verdict[pid]}
            for pid, a, e in zip(fitted_ids, alt, event, strict=True)
        ],
        "sparse_status": {pid: status[pid] for pid in sorted(sparse_ids) if pid in status},
        "sparse_reasons": reasons,
        "sparse_flagged": int(sum(status[p] != "trustworthy" for p in sparse_ids if p in status)),
        "sparse_data_verdict": {p: data_verdict[p] for p in sorted(sparse_ids) if p in status},
        "full_data_verdict_counts": {
            v: int(sum(data_verdict[p] == v for p in fitted_ids if p not in sparse_ids))
            for v in sorted(set(data_verdict.values()))
        },
        "full_status_counts": {
            s: int(sum(status[p] == s for p in fitted_ids if p not in sparse_ids))
            for s in sorted(set(status.values()))
        },
    }
    print(diag)
    print(
        f"fit {fit_s:.0f} s; coverage {p_cov:.3f} of {n_cov}; Brier {result['brier']:.3f} "
        f"(prevalence only {result['brier_prevalence_only']:.3f}); sparse flagged "
        f"{result['sparse_flagged']}/{len(sparse_ids)}"
    )
    for row in result["reliability"]:
        print(row)
    write_result(result, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
