"""Forecast calibration on a CGM-like trace: independent vs Ornstein-Uhlenbeck residuals.

A cohort of the ``glucose_meal`` model (three meals with insulin boluses on a basal
infusion) is observed every 5 minutes over a day. The observations are the model's
glucose plus a *correlated* deviation: on the combined error model's scale an
Ornstein-Uhlenbeck process with correlation time ``--tau`` (45 min), as a CGM trace's
residuals are. The cohort is fitted to the first ``--train`` minutes twice, with
independent residuals (``residual_correlation="none"``) and with the OU residual
(``"ou"``), and each twin forecasts the held-out trace: from origins every hour after the
training window, conditioned on the reading at the origin (``twin.forecast(origin=,
value=)``), at +30/60/120 min. Reported per model and horizon: coverage of the 90 %
forecast intervals (target 0.90), their mean width and the RMSE of the median.

Run from the repository root (about 10 minutes on 2 busy cores at the defaults)::

    .venv/bin/python benchmarks/cgm_autocorrelation.py
    .venv/bin/python benchmarks/cgm_autocorrelation.py --patients 4 --hours 8 --train 300

It writes ``benchmarks/out/cgm_autocorrelation.json`` (or ``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import twin_uq as tq
from twin_uq.inference.residual import ERROR_CODES, sample_correlated_observations
from twin_uq.simulate import solve

HORIZONS = (30.0, 60.0, 120.0)


def design(hours: float) -> tq.Design:
    """5-minute sampling over ``hours``; meals with boluses (carb ratio 10 g/U) on basal."""
    end = 60.0 * hours
    meals = [(t, g) for t, g in ((60.0, 60.0), (360.0, 80.0), (720.0, 70.0)) if t < end]
    doses = [tq.Infusion(0.0, 1.0 / 60.0, end + 240.0, 2)]  # basal 1 U/h
    for t, g in meals:
        doses += [tq.Bolus(t, g, 1), tq.Bolus(t, g / 10.0, 2)]
    return tq.Design(
        times=list(np.arange(5.0, end + 1e-9, 5.0)),
        doses=doses,
        covariates={"WT": ("lognormal", 70.0, 0.15)},
    )


def simulate(n: int, hours: float, tau: float, a: float, b: float, seed: int) -> pd.DataFrame:
    """The cohort's table with OU-correlated residuals (combined scale: SD sqrt(a² + b² f²))."""
    model = tq.load_model("glucose_meal")
    sim = tq.simulate_cohort(model, n, design(hours), seed=seed)
    table = sim.table.copy()
    arrays = sim.cohort.for_model(model)
    theta = sim.truth.theta
    key = jax.random.key(seed + 1)
    for i, pid in enumerate(sim.cohort.ids):
        rows = (table["id"] == pid) & (table["evid"] == 0)
        t = table.loc[rows, "time"].to_numpy(float)
        th = jnp.asarray(theta.loc[pid, list(model.parameter_names)].to_numpy(float))
        schedule = sim.cohort.schedule(pid, signals=model.signals)
        traj = solve(model, th, arrays.covariates[i], schedule, jnp.asarray(t), model.solver)
        f = np.asarray(traj.outputs[:, 0])
        key, k = jax.random.split(key)
        y = sample_correlated_observations(
            k,
            jnp.full(t.size, ERROR_CODES["combined"]),
            jnp.asarray(f),
            jnp.full(t.size, a),
            jnp.full(t.size, b),
            jnp.asarray(t),
            jnp.zeros(t.size, int),
            jnp.full(t.size, tau),
        )
        table.loc[rows, "dv"] = np.asarray(y)
    return table


def evaluate(post, table: pd.DataFrame, train: float, seed: int) -> pd.DataFrame:
    """Forecasts from hourly origins after ``train`` against the held-out readings."""
    rows = []
    obs = table[table["evid"] == 0]
    for pid in post.patient_ids:
        twin = post.twin(pid)
        mine = obs[obs["id"] == pid].set_index("time")["dv"]
        end = float(mine.index.max())
        for origin in np.arange(train, end - min(HORIZONS) + 1e-9, 60.0):
            hs = [h for h in HORIZONS if origin + h <= end]
            fc = twin.forecast(hs, origin=float(origin), value=float(mine.loc[origin]), seed=seed)
            for h, lo, hi, med in zip(hs, fc.lower, fc.upper, fc.median, strict=True):
                y = float(mine.loc[origin + h])
                rows.append(
                    dict(patient=pid, origin=origin, horizon=h, y=y, lower=lo, upper=hi, median=med)
                )
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(
        covered=(frame["y"] >= frame["lower"]) & (frame["y"] <= frame["upper"]),
        width=frame["upper"] - frame["lower"],
        sq=(frame["y"] - frame["median"]) ** 2,
    )
    out = frame.groupby("horizon").agg(
        n=("covered", "size"),
        coverage=("covered", "mean"),
        width=("width", "mean"),
        mse=("sq", "mean"),
    )
    out["rmse"] = np.sqrt(out.pop("mse"))
    # binomial SE of a coverage (a lower bound: forecasts of one patient are correlated)
    out["coverage_se"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / out["n"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=12)
    p.add_argument("--hours", type=float, default=20.0, help="length of the trace (h)")
    p.add_argument("--train", type=float, default=600.0, help="training window (min)")
    p.add_argument("--tau", type=float, default=45.0, help="true correlation time (min)")
    p.add_argument("--sigma-add", type=float, default=6.0, help="mg/dL")
    p.add_argument("--sigma-prop", type=float, default=0.08)
    p.add_argument("--method", choices=("laplace", "svi", "nuts"), default="laplace")
    p.add_argument("--steps", type=int, default=3000, help="optimisation steps (laplace, svi)")
    p.add_argument("--draws", type=int, default=200, help="NUTS warm-up and draws (1 chain)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="benchmarks/out/cgm_autocorrelation.json")
    args = p.parse_args()
    tq.configure()
    # Basal insulin is meant to go into the subcutaneous depot, and BASAL is the default.
    warnings.filterwarnings("ignore", message=".*infusion\\(s\\) \\(RATE > 0\\) go into")
    warnings.filterwarnings("ignore", message=".*uses covariate 'BASAL'")
    model = tq.load_model("glucose_meal")
    table = simulate(
        args.patients, args.hours, args.tau, args.sigma_add, args.sigma_prop, args.seed
    )
    train_table = table[(table["evid"] != 0) | (table["time"] <= args.train)]
    cohort = tq.read_cohort(train_table.reset_index(drop=True), time_unit="min")
    method = {
        "laplace": lambda: tq.Laplace(steps=args.steps),
        "svi": lambda: tq.SVI(steps=args.steps),
        "nuts": lambda: tq.NUTS(chains=1, warmup=args.draws, draws=args.draws),
    }[args.method]()
    results, summaries = {}, {}
    for corr in ("none", "ou"):
        spec = tq.PopulationModel(model, residual_correlation=corr, centering=0.0)
        t0 = time.perf_counter()
        post = tq.fit(model, cohort, population=spec, method=method, seed=0, progress=False)
        fit_s = time.perf_counter() - t0
        frame = evaluate(post, table, args.train, seed=1)
        summary = summarise(frame)
        summaries[corr] = summary
        tau = float(np.median(post.posterior["tau"].values)) if "tau" in post.posterior else None
        results[corr] = dict(
            fit_seconds=round(fit_s, 1),
            tau_median=tau,
            by_horizon=summary.reset_index().to_dict(orient="records"),
        )
        print(f"\nresidual_correlation={corr!r}: fit {fit_s:.0f} s, tau median {tau}")
        print(summary.round(3).to_string())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    record = dict(vars(args), commit=commit, horizons=HORIZONS, results=results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=float))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
