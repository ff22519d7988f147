"""Diabetes twins against a structurally different simulator (issue 29's proof).

Cohorts of children, adolescents and adults with type 1 diabetes are simulated by the
Dalla Man 2007 / UVA-Padova-type model of :mod:`twin_uq.testing.glucose_simulator` (13
states, nonlinear gastric emptying, two subcutaneous insulin compartments, a CGM with a
10-minute interstitial delay and AR(1) sensor error) and fitted with ``glucose_meal``
(6 states, 5 parameters): the twin's model is wrong in the ways physiology makes it wrong.
Two designs: dense CGM (a value every 5 min) and sparse fingersticks (six a day). The fit
sees every meal and insulin dose but only the readings of the first ``--train`` minutes;
the rest of the record is held out.

From origins in the held-out window (dense: a CGM reading every ``--origin-step`` min;
sparse: each held-out fingerstick), conditioned on the reading at the origin
(``twin.forecast(origin=, value=)``, as ``cgm_autocorrelation.py`` does):

* 90 % forecast intervals at +30/60/120 min against the held-out reading (dense: the CGM
  value; sparse: a fingerstick simulated at that time from the true plasma glucose with
  the simulator's meter error), with a Clopper-Pearson 95 % interval of the coverage;
  residual models OU (``residual_correlation="ou"``) and independent;
* CRPS of the forecast draws against the same readings, for the twin, a population-only
  twin (``new_patient_twin``: the same covariates and doses, none of the person's data,
  conditioned on the same origin reading) and last value carried forward (dense: the
  value plus the cohort's changes over ``h`` min in the training window, an empirical
  forecast distribution; sparse: the value alone, a point forecast whose CRPS is its
  absolute error);
* P(plasma glucose < 70 mg/dL at any time within ``--hypo-horizon`` min) from
  ``twin.risk`` against the simulator's noise-free plasma glucose (1-minute grid): Brier
  score and a reliability table, for the same three forecasters (last value: the share of
  training windows whose minimum change would take the value below 70; sparse: value
  below 70 or not); a reliability figure per design in ``benchmarks/out/``;
* trust (``tq.assess_patient``) per patient, and ``tq.audit`` by age group with the
  held-out readings.

Fits: ``--method svi`` (default for the dense design; approximate: a mean-field Gaussian
guide), ``laplace`` (a Gaussian at the mode; its Hessian was singular for these cohorts on
2026-12-08) or ``nuts`` (short chains: ``--chains --warmup --draws``); ``--sparse-method``
(default ``nuts``) for the fingerstick design. ``--cache DIR`` keeps the fits and reuses
them in a later run with the same arguments.

Run from the repository root::

    .venv/bin/python benchmarks/dallaman_validation.py --designs fingerstick cgm  # recorded
    .venv/bin/python benchmarks/dallaman_validation.py --therapy-sd 0.5 --sparse-method svi \\
        --out benchmarks/out/dallaman_validation_rich.json       # more hypoglycaemia
    .venv/bin/python benchmarks/dallaman_validation.py --per-group 1 --days 1 --train 720 \\
        --method svi --sparse-method svi --steps 300 --origin-step 240 --draws-forecast 50 \\
        --n-boot 50                                               # smoke

It writes ``benchmarks/out/dallaman_validation.json`` (``--out``), beside it
``dallaman_validation_reliability_<design>.png`` (reliability of the hypo- and
hyperglycaemia probabilities) and one CSV per design and residual model with every
forecast, and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import twin_uq as tq
from twin_uq.testing.glucose_simulator import simulate_t1d_cohort
from twin_uq.trust import TrustThresholds
from twin_uq.twin.new_patient import new_patient_twin

HORIZONS = (30.0, 60.0, 120.0)
HYPO = 70.0
#: Risk events scored: name -> (threshold mg/dL, below), "at any time within the horizon".
EVENTS = {"hypo": (HYPO, True), "hyper": (180.0, False)}
GROUPS = ("child", "adolescent", "adult")
#: Bin edges of the reliability table (predicted probability).
BINS = (0.0, 0.02, 0.1, 0.3, 0.6, 1.0)


# ---- scores ------------------------------------------------------------------------------
def crps_sample(samples: np.ndarray, y: float) -> float:
    """CRPS of the empirical distribution of ``samples`` (1-D) at the outcome ``y``.

    ``E|X - y| - E|X - X'|/2`` with both expectations over the sample (the "energy" form
    with the V-statistic, so one sample gives the absolute error); ``E|X - X'|`` from the
    sorted sample, ``2/n² Σ_i (2i - n - 1) x_(i)``, O(n log n). Same units as ``y``.
    """
    x = np.sort(np.asarray(samples, dtype=float).ravel())
    n = x.size
    if n == 0 or not np.all(np.isfinite(x)):
        raise ValueError("crps_sample needs a non-empty, finite sample")
    spread = 2.0 * np.sum((2.0 * np.arange(1, n + 1) - n - 1.0) * x) / n**2
    return float(np.mean(np.abs(x - y)) - 0.5 * spread)


def coverage_row(covered: np.ndarray) -> dict:
    """Share covered with its Clopper-Pearson 95 % interval."""
    k, n = int(np.sum(covered)), int(np.size(covered))
    if n == 0:
        return dict(n=0, covered=0, coverage=np.nan, lo=np.nan, hi=np.nan)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return dict(n=n, covered=k, coverage=k / n, lo=ci.low, hi=ci.high)


def reliability(prob: np.ndarray, event: np.ndarray) -> list[dict]:
    """Per predicted-probability bin: n, mean prediction, observed share with its 95 % CI."""
    rows = []
    edges = np.asarray(BINS)
    which = np.clip(np.digitize(prob, edges[1:-1], right=True), 0, edges.size - 2)
    for b in range(edges.size - 1):
        m = which == b
        if not m.any():
            continue
        row = coverage_row(event[m])
        rows.append(
            dict(bin=f"{edges[b]:.2f}-{edges[b + 1]:.2f}", n=row["n"],
                 predicted=float(prob[m].mean()), observed=row["coverage"],
                 lo=row["lo"], hi=row["hi"])
        )  # fmt: skip
    return rows


# ---- data --------------------------------------------------------------------------------
def held_out_readings(sim, design: str, train: float, seed: int) -> pd.DataFrame:
    """``ID, TIME, DV`` of every held-out reading; sparse: also fingersticks at lead times.

    A sparse design has no reading at origin + 30/60/120 min, so one is simulated there
    from the true plasma glucose with the simulator's meter error (SD sqrt(4² + (0.05 G)²)).
    """
    obs = sim.table[(sim.table["EVID"] == 0) & (sim.table["TIME"] > train)]
    out = obs[["ID", "TIME", "DV"]].assign(origin=True)
    if design == "cgm":
        return out.reset_index(drop=True)
    rng = np.random.default_rng([seed, 7])
    truth = sim.truth.set_index(["ID", "TIME"])["G"]
    extra = []
    for pid, t0 in out[["ID", "TIME"]].itertuples(index=False):
        for h in HORIZONS:
            g = float(truth.loc[(pid, t0 + h)])
            y = g + rng.standard_normal() * np.hypot(4.0, 0.05 * g)
            extra.append(dict(ID=pid, TIME=t0 + h, DV=y, origin=False))
    both = pd.concat([out, pd.DataFrame(extra)]).drop_duplicates(["ID", "TIME"])
    return both.sort_values(["ID", "TIME"]).reset_index(drop=True)


def lvcf_changes(train_obs: pd.DataFrame, step: float, hypo_horizon: float) -> dict:
    """Pooled changes over ``h`` min and minimum changes over the hypo horizon (training)."""
    deltas: dict = {h: [] for h in HORIZONS}
    mins, maxs = [], []
    k_hypo = round(hypo_horizon / step)
    for _, g in train_obs.groupby("ID"):
        y = g.sort_values("TIME")["DV"].to_numpy(float)
        for h in HORIZONS:
            k = round(h / step)
            deltas[h].append(y[k:] - y[:-k])
        win = np.lib.stride_tricks.sliding_window_view(y, k_hypo + 1)
        mins.append(win[:, 1:].min(axis=1) - win[:, 0])
        maxs.append(win[:, 1:].max(axis=1) - win[:, 0])
    return {"delta": {h: np.concatenate(v) for h, v in deltas.items()},
            "min": np.concatenate(mins), "max": np.concatenate(maxs)}  # fmt: skip


# ---- evaluation --------------------------------------------------------------------------
def with_horizon(twin, horizon: float):
    """The twin with its fixed-step solver horizon at ``horizon`` min, for every origin.

    ``twin.forecast`` / ``twin.risk`` extend the horizon to the latest time they need
    (``SolverSettings.covering``), and a new horizon compiles the solve anew: one compile
    per origin. One horizon past the whole record compiles once (grid points past the
    requested times are steps of length zero: the numbers do not change; as
    ``twin_uq.diabetes.stream`` does with ``horizon_block``).
    """
    s = twin.settings
    if not s.is_fixed_step or (s.horizon is not None and s.horizon >= horizon):
        return twin
    return replace(twin, posterior=replace(twin.posterior, settings=replace(s, horizon=horizon)))


def evaluate(post, sim, design, held, train, args, lv) -> pd.DataFrame:
    """One row per (patient, origin, horizon): forecasts, CRPS, hypo risks, outcomes."""
    truth_g = sim.truth.set_index(["ID", "TIME"])["G"]
    people = sim.patients
    rows = []
    horizon = float(sim.truth["TIME"].max()) + max(HORIZONS, default=0.0) + args.hypo_horizon
    for pid in post.patient_ids:
        twin = with_horizon(post.twin(pid), horizon)
        person = people.loc[pid]
        pop = new_patient_twin(
            post, {"WT": person["BW"], "BASAL": person["basal_u_per_h"]}, twin.schedule,
            seed=args.seed, patient_id=f"{pid} (population)",
        )  # fmt: skip
        pop = with_horizon(pop, horizon)
        mine = held[held["ID"] == pid].set_index("TIME")
        end = float(mine.index.max())
        origins = mine.index[mine["origin"].to_numpy(bool)].to_numpy(float)
        if design == "cgm":
            keep = np.isclose(np.mod(origins - train, args.origin_step), 0.0)
            origins = origins[keep & (origins > train)]
        for t0 in origins:
            hs = [h for h in HORIZONS if t0 + h <= end and (t0 + h) in mine.index]
            if not hs:
                continue
            y0 = float(mine.loc[t0, "DV"])
            common = dict(origin=float(t0), value=y0, draws=args.draws_forecast, seed=args.seed)
            fc = twin.forecast(hs, **common)
            fc_pop = pop.forecast(hs, **common)
            window = truth_g.loc[pid].loc[t0 + 1 : t0 + args.hypo_horizon].to_numpy()
            risk_kw = dict(horizon=args.hypo_horizon, n_paths=args.paths, **common)
            risks = {}
            for event, (thr, below) in EVENTS.items():
                risks[f"p_twin_{event}"] = twin.risk(thr, below=below, **risk_kw).probability
                risks[f"p_pop_{event}"] = pop.risk(thr, below=below, **risk_kw).probability
                if lv is None:
                    p_lv = float(y0 < thr) if below else float(y0 > thr)
                elif below:
                    p_lv = float(np.mean(y0 + lv["min"] < thr))
                else:
                    p_lv = float(np.mean(y0 + lv["max"] > thr))
                risks[f"p_lvcf_{event}"] = p_lv
            for j, h in enumerate(hs):
                y = float(mine.loc[t0 + h, "DV"])
                lv_samples = np.array([y0]) if lv is None else y0 + lv["delta"][h]
                rows.append(dict(
                    patient=pid, group=person["group"], origin=t0, horizon=h, value=y0, y=y,
                    median=fc.median[j], lower=fc.lower[j], upper=fc.upper[j],
                    pop_lower=fc_pop.lower[j], pop_upper=fc_pop.upper[j],
                    crps_twin=crps_sample(fc.draws[:, j], y),
                    crps_pop=crps_sample(fc_pop.draws[:, j], y),
                    crps_lvcf=crps_sample(lv_samples, y),
                    **risks, hypo=bool(window.min() < HYPO),
                    hyper=bool(window.max() > EVENTS["hyper"][0]),
                    min_truth=float(window.min()), max_truth=float(window.max()),
                ))  # fmt: skip
    return pd.DataFrame(rows)


def summarise(frame: pd.DataFrame) -> dict:
    """Coverage (overall and by group), CRPS, and the hypo scores (one row per origin)."""
    cov = frame.assign(
        inside=(frame["y"] >= frame["lower"]) & (frame["y"] <= frame["upper"]),
        pop_inside=(frame["y"] >= frame["pop_lower"]) & (frame["y"] <= frame["pop_upper"]),
        width=frame["upper"] - frame["lower"],
    )
    by_h = []
    for h, g in cov.groupby("horizon"):
        by_h.append(dict(
            horizon=h, **coverage_row(g["inside"].to_numpy()),
            width=float(g["width"].mean()),
            rmse=float(np.sqrt(np.mean((g["y"] - g["median"]) ** 2))),
            pop_coverage=float(g["pop_inside"].mean()),
            crps_twin=float(g["crps_twin"].mean()), crps_pop=float(g["crps_pop"].mean()),
            crps_lvcf=float(g["crps_lvcf"].mean()),
            by_group={k: coverage_row(v["inside"].to_numpy()) for k, v in g.groupby("group")},
        ))  # fmt: skip
    once = frame.drop_duplicates(["patient", "origin"])
    out = dict(by_horizon=by_h)
    for event in EVENTS:
        ev = once[event].to_numpy(float)
        res = dict(n=len(once), events=int(ev.sum()))
        for who in ("twin", "pop", "lvcf"):
            p = once[f"p_{who}_{event}"].to_numpy(float)
            res[f"brier_{who}"] = float(np.mean((p - ev) ** 2))
            res[f"reliability_{who}"] = reliability(p, ev)
        # the Brier score of always predicting the observed share (no skill)
        res["brier_climatology"] = float(np.mean((ev.mean() - ev) ** 2))
        out[event] = res
    return out


def trust_and_audit(post, held: pd.DataFrame, sim, args) -> dict:
    """Trust per patient and ``tq.audit`` by age group (held-out readings as holdout).

    An approximate fit caps every status at "limited" (``approximate_cap``); the status the
    other rules give is reported beside it (``uncapped``), labelled as such.
    """
    statuses = {}
    uncap = TrustThresholds(approximate_cap="trustworthy")
    for pid in post.patient_ids:
        a = tq.assess_patient(post, pid)
        b = tq.assess_patient(post, pid, thresholds=uncap) if post.approximate else a
        statuses[pid] = dict(status=str(a.status), uncapped=str(b.status),
                             fit_verdict=a.fit_verdict, data_verdict=a.data_verdict,
                             p_miss=float(a.p_miss), data_reasons=list(a.data_reasons),
                             fit_reasons=list(a.fit_reasons))  # fmt: skip
    frame = pd.DataFrame(statuses).T.assign(group=sim.patients["group"])
    cols = ["group", "status", "uncapped", "fit_verdict", "data_verdict"]
    counts = frame[cols].value_counts().rename("n").reset_index().to_dict(orient="records")
    p_miss = frame["p_miss"].astype(float).groupby(frame["group"]).median().to_dict()
    holdout = held.rename(columns={"ID": "id", "TIME": "time", "DV": "dv"})[["id", "time", "dv"]]
    res = tq.audit(post, by="AGE_GROUP", holdout=holdout, n_boot=args.n_boot, seed=args.seed,
                   min_group_size=min(5, args.per_group))  # fmt: skip
    keep = res.table[res.table["metric"].isin(["width", "coverage", "mae", "flagged"])]
    return dict(statuses=statuses, counts=counts, p_miss_median=p_miss,
                audit=keep.drop(columns=[c for c in ("unit",) if c in keep]).to_dict("records"),
                findings=list(res.findings))  # fmt: skip


def reliability_figure(results: dict, design: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(EVENTS), figsize=(5 * len(EVENTS), 5))
    for ax, event in zip(np.atleast_1d(axes), EVENTS, strict=True):
        _reliability_panel(ax, results, event, design)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _reliability_panel(ax, results: dict, event: str, design: str) -> None:
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect")
    styles = {"twin": ("o", "C0"), "pop": ("s", "C1"), "lvcf": ("^", "C2")}
    names = {"twin": "twin", "pop": "population only", "lvcf": "last value"}
    for corr, res in results.items():
        hypo = res[event]
        for who, (marker, colour) in styles.items():
            if who != "twin" and corr != "ou":
                continue  # the baselines once (from the OU fit)
            rel = hypo[f"reliability_{who}"]
            x = [r["predicted"] for r in rel]
            y = [r["observed"] for r in rel]
            err = [[r["observed"] - r["lo"] for r in rel], [r["hi"] - r["observed"] for r in rel]]
            ls = "-" if corr == "ou" else ":"
            label = f"{names[who]} ({corr}), Brier {hypo[f'brier_{who}']:.3f}"
            ax.errorbar(x, y, yerr=err, marker=marker, color=colour if corr == "ou" else "C3",
                        ls=ls, capsize=2, label=label)  # fmt: skip
    thr, below = EVENTS[event]
    what = f"glucose {'<' if below else '>'} {thr:g} mg/dL"
    ax.set(xlabel=f"predicted P({what} within horizon)", ylabel="observed share",
           xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=f"Dalla Man cohort, {design}: {event}")  # fmt: skip
    ax.legend(fontsize=7, loc="upper left")


def _beside(out: str, suffix: str) -> Path:
    """``benchmarks/out/<stem of --out>_<suffix>``: each run's files apart."""
    return Path(out).with_name(f"{Path(out).stem}_{suffix}")


def fit_method(name: str, args):
    if name == "laplace":
        return tq.Laplace(steps=args.steps)
    if name == "svi":
        return tq.SVI(steps=args.steps)
    return tq.NUTS(chains=args.chains, warmup=args.warmup, draws=args.draws)


def run_design(design: str, args) -> dict:
    groups = dict.fromkeys(GROUPS, args.per_group)
    sim = simulate_t1d_cohort(
        groups, days=args.days, sampling=design, seed=args.seed, therapy_sd=args.therapy_sd
    )
    table = sim.table
    train_table = table[(table["EVID"] != 0) | (table["TIME"] <= args.train)]
    cohort = tq.read_cohort(train_table.reset_index(drop=True), time_unit="min")
    held = held_out_readings(sim, design, args.train, args.seed)
    lv = None
    if design == "cgm":
        train_obs = table[(table["EVID"] == 0) & (table["TIME"] <= args.train)]
        lv = lvcf_changes(train_obs, 5.0, args.hypo_horizon)
    method_name = (
        args.sparse_method if design == "fingerstick" and args.sparse_method else args.method
    )
    model = tq.load_model("glucose_meal")
    out = dict(n_patients=len(sim.patients), n_obs_train=int((train_table["EVID"] == 0).sum()),
               method=method_name, results={})  # fmt: skip
    for corr in ("none", "ou"):
        spec = tq.PopulationModel(model, residual_correlation=corr, centering="auto")
        t0 = time.perf_counter()
        cached = Path(args.cache) / f"{design}_{corr}.nc" if args.cache else None
        if cached is not None and cached.exists():  # a fit of an earlier run, same arguments
            post = tq.load_posterior(cached)
        else:
            post = tq.fit(model, cohort, population=spec, method=fit_method(method_name, args),
                          seed=args.seed, progress=False)  # fmt: skip
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                post.save(cached)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        frame = evaluate(post, sim, design, held, args.train, args, lv)
        eval_s = time.perf_counter() - t1
        summary = summarise(frame)
        t2 = time.perf_counter()
        summary["trust"] = trust_and_audit(post, held, sim, args)
        summary.update(
            fit_seconds=round(fit_s, 1), eval_seconds=round(eval_s, 1),
            trust_seconds=round(time.perf_counter() - t2, 1), approximate=bool(post.approximate),
            tau_median=(float(np.median(post.posterior["tau"].values))
                        if "tau" in post.posterior else None),
        )  # fmt: skip
        out["results"][corr] = summary
        frame.to_csv(_beside(args.out, f"{design}_{corr}.csv"), index=False)
        print_summary(design, corr, summary)
    reliability_figure(out["results"], design, _beside(args.out, f"reliability_{design}.png"))
    return out


def print_summary(design: str, corr: str, s: dict) -> None:
    print(f"\n== {design}, residual_correlation={corr!r}: fit {s['fit_seconds']} s "
          f"(approximate={s['approximate']}), tau median {s['tau_median']}")  # fmt: skip
    tab = pd.DataFrame([{k: v for k, v in r.items() if k != "by_group"} for r in s["by_horizon"]])
    print(tab.round(3).to_string(index=False))
    for event in EVENTS:
        h = s[event]
        print(f"{event}: {h['events']} of {h['n']} origins; Brier twin {h['brier_twin']:.4f}, "
              f"population {h['brier_pop']:.4f}, last value {h['brier_lvcf']:.4f}, "
              f"climatology {h['brier_climatology']:.4f}")  # fmt: skip
        print(pd.DataFrame(h["reliability_twin"]).round(3).to_string(index=False))
    print("trust:", s["trust"]["counts"])
    for f in s["trust"]["findings"][:6]:
        print("  audit:", f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-group", type=int, default=6, help="people per age group")
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--train", type=float, default=1440.0, help="training window (min)")
    p.add_argument("--designs", nargs="+", default=["cgm", "fingerstick"],
                   choices=["cgm", "fingerstick"])  # fmt: skip
    p.add_argument("--method", choices=("laplace", "svi", "nuts"), default="svi")
    p.add_argument("--sparse-method", choices=("laplace", "svi", "nuts"), default="nuts")
    p.add_argument("--steps", type=int, default=1500, help="Laplace / SVI optimisation steps")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--origin-step", type=float, default=60.0, help="dense: min between origins")
    p.add_argument("--hypo-horizon", type=float, default=120.0, help="min")
    p.add_argument("--draws-forecast", type=int, default=200, help="posterior draws used")
    p.add_argument("--paths", type=int, default=16, help="risk paths per draw")
    p.add_argument("--n-boot", type=int, default=500)
    p.add_argument("--seed", type=int, default=29)
    p.add_argument("--therapy-sd", type=float, default=0.15,
                   help="log-SD of the carb ratio / correction factor mismatch (simulator)")  # fmt: skip
    p.add_argument("--out", default="benchmarks/out/dallaman_validation.json")
    p.add_argument("--cache", default=None,
                   help="folder for the fits: reused when present (same arguments!)")  # fmt: skip
    args = p.parse_args()
    tq.configure()
    warnings.filterwarnings("ignore", message=".*infusion\\(s\\) \\(RATE > 0\\) go into")
    warnings.filterwarnings("ignore", message=".*uses covariate 'BASAL'")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record = dict(vars(args), horizons=HORIZONS, designs={})
    for design in args.designs:
        record["designs"][design] = run_design(design, args)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    record.update(commit=commit, date=time.strftime("%Y-%m-%d", time.gmtime()),
                  seconds=round(time.perf_counter() - start, 1))  # fmt: skip
    Path(args.out).write_text(json.dumps(record, indent=2, default=str))
    print(f"\nwrote {args.out} ({record['seconds']} s)")


if __name__ == "__main__":
    main()
