"""ESS per second: twin_uq NumPyro backend vs twin_uq PyMC backend vs PyMC's own ODE support.

Workload: one_compartment_oral, 12 simulated patients (8 samples each over 24 h after one
oral dose of 100 mg), the default population model (log-normal ka, CL, V with diagonal
random effects, combined residual error). Each contestant draws the same number of chains,
warm-up and post-warm-up iterations.

* ``twin_uq numpyro``: ``tq.fit(...)`` (NumPyro NUTS over the JAX model).
* ``twin_uq pymc / <sampler>``: ``tq.fit(..., backend="pymc", sampler=...)`` — the same
  population model compiled to PyMC around the JAX likelihood Op.
* ``pm.ode``: the same priors written by hand in PyMC with ``pm.ode.DifferentialEquation``
  (SciPy odeint with forward sensitivities) for the two-state ODE of every patient,
  non-centred random effects, PyMC NUTS.

ESS/s = the smallest bulk ESS over the population parameters (mu, omega, sigma_add,
sigma_prop) divided by the seconds of post-warm-up sampling (PyMC NUTS: the slowest
chain's summed per-draw time; samplers without per-draw timing: wall time pro rata by
iterations, stated in the table). Wall time includes compilation and warm-up.

Also writes the NumPyro-vs-PyMC agreement table of population summaries (means, SDs,
5/95% quantiles of typical values and omega) with Monte Carlo standard errors.

Run: .venv/bin/python benchmarks/pymc_comparison.py [--quick | --smoke]
(``--smoke``: 1 chain of 20 + 20 iterations and a 20 s pm.ode budget, only to check that
the script runs, as tests/test_benchmarks_smoke.py does; its numbers mean nothing.)
"""

from __future__ import annotations

import json
import platform
import signal
import sys
import time
from pathlib import Path

import arviz_stats as azs
import numpy as np
import xarray as xr

import twin_uq as tq

tq.configure()  # float64 and one CPU device per parallel chain, before JAX starts

N_PATIENTS = 12
TIMES = [0.5, 1, 2, 4, 6, 8, 12, 24]
POP_VARS = ("mu", "omega", "sigma_add", "sigma_prop")
PM_ODE_BUDGET_S = 420


def cohort():
    design = tq.Design(times=TIMES, doses=[tq.Bolus(0.0, 100.0, 1)])
    return tq.simulate_cohort("one_compartment_oral", N_PATIENTS, design, seed=2024)


def min_ess(posterior: xr.Dataset, names=POP_VARS) -> float:
    ds = posterior[[n for n in names if n in posterior]]
    ess = azs.ess(ds, method="bulk")
    return float(min(float(ess[v].min()) for v in ess.data_vars))


def agreement(a: xr.Dataset, b: xr.Dataset, k: float = 4.0):
    """Rows: quantity, statistic, value a, value b, |diff|, bound k·sqrt(mcse_a²+mcse_b²)."""
    rows = []
    for var in ("typical", "omega"):
        for p in a[var].parameter.values:
            xa, xb = a[var].sel(parameter=p), b[var].sel(parameter=p)
            stats = {
                "mean": (lambda x: float(x.mean()), {"method": "mean"}),
                "sd": (lambda x: float(x.std()), {"method": "sd"}),
                "q05": (lambda x: float(x.quantile(0.05)), {"method": "quantile", "prob": 0.05}),
                "q95": (lambda x: float(x.quantile(0.95)), {"method": "quantile", "prob": 0.95}),
            }
            for name, (f, kw) in stats.items():
                ma = float(azs.mcse(xa.to_dataset(name="x"), **kw)["x"])
                mb = float(azs.mcse(xb.to_dataset(name="x"), **kw)["x"])
                va, vb = f(xa), f(xb)
                rows.append((f"{var}[{p}]", name, va, vb, abs(va - vb), k * np.hypot(ma, mb)))
    return rows


def patient_median_corr(a: xr.Dataset, b: xr.Dataset) -> float:
    la = np.log(a["theta"].median(("chain", "draw")).values).ravel()
    lb = np.log(b["theta"].median(("chain", "draw")).values).ravel()
    return float(np.corrcoef(la, lb)[0, 1])


def pm_ode_fit(sim, chains, warmup, draws, seed):
    """The same population model written by hand with pm.ode.DifferentialEquation."""
    import pymc as pm
    import pytensor.tensor as pt

    model = tq.load_model("one_compartment_oral")
    spec = tq.PopulationModel(model=model, centering=0.0)
    mu_loc, mu_scale = spec.mu_prior()
    omega_scale = spec.omega_prior()
    add_scale, prop_scale = spec.sigma_prior()
    table = sim.cohort.to_dataframe()
    obs = table[table["evid"] == 0] if "evid" in table else table
    ids = list(sim.cohort.ids)
    P = len(ids)
    y = np.stack([obs[obs["id"] == i]["dv"].to_numpy(float) for i in ids])  # (P, T)
    times = np.asarray(TIMES, float)

    def rhs(yv, t, p):
        # States: depot and central of every patient; p = (ka_1..ka_P, k_1..k_P).
        ka, k = p[:P], p[P : 2 * P]
        depot, central = yv[:P], yv[P:]
        return pt.concatenate([-ka * depot, ka * depot - k * central])

    ode = pm.ode.DifferentialEquation(
        func=rhs,
        times=times,
        n_states=2 * P,
        n_theta=2 * P,
        t0=0.0,
    )
    with pm.Model():
        mu = pm.Normal("mu", mu_loc, mu_scale)
        omega = pm.HalfNormal("omega", omega_scale)
        eta = pm.Normal("eta", 0.0, 1.0, shape=(P, 3))
        theta = pt.exp(mu + omega * eta)  # WT absent: allometric offsets are 0
        ka, cl, v = theta[:, 0], theta[:, 1], theta[:, 2]
        sol = ode(y0=np.r_[np.full(P, 100.0), np.zeros(P)], theta=pt.concatenate([ka, cl / v]))
        conc = sol[:, P:].T / v[:, None]  # (P, T)
        sa = pm.HalfNormal("sigma_add", add_scale)
        sp = pm.HalfNormal("sigma_prop", prop_scale)
        sd = pt.sqrt(sa**2 + (sp * conc) ** 2)
        pm.Normal("y", conc, sd, observed=y)
        init = {"mu": mu_loc, "omega": np.minimum(0.5 * omega_scale, 0.3), "eta": np.zeros((P, 3)),
                "sigma_add": 0.5 * add_scale, "sigma_prop": 0.5 * prop_scale}  # fmt: skip
        t0 = time.perf_counter()
        trace = pm.sample(
            draws=draws, tune=warmup, chains=chains, cores=1, random_seed=seed,
            init="adapt_diag", initvals=init, progressbar=False, compute_convergence_checks=False,
            compile_kwargs={"mode": "CVM"},
        )  # fmt: skip
        wall = time.perf_counter() - t0
    sampling = float(trace["sample_stats"]["perf_counter_diff"].values.sum(axis=1).max())
    return trace["posterior"].to_dataset(), wall, sampling


def main() -> None:
    quick = "--quick" in sys.argv
    smoke = "--smoke" in sys.argv
    chains, warmup, draws = (1, 20, 20) if smoke else (2, 300, 300) if quick else (4, 1000, 1000)
    budget = 20 if smoke else PM_ODE_BUDGET_S
    sim = cohort()
    kw = {"chains": chains, "warmup": warmup, "draws": draws, "seed": 1, "progress": False}
    results = []
    posts = {}
    for label, extra in (
        ("twin_uq numpyro", {}),
        ("twin_uq pymc / pymc NUTS", {"backend": "pymc", "sampler": "pymc"}),
        ("twin_uq pymc / nutpie (jax)", {"backend": "pymc", "sampler": "nutpie"}),
        ("twin_uq pymc / numpyro (jax)", {"backend": "pymc", "sampler": "numpyro"}),
    ):
        t0 = time.perf_counter()
        post = tq.fit("one_compartment_oral", sim.cohort, **extra, **kw)
        wall = time.perf_counter() - t0
        timings = json.loads(post.idata.attrs["backend_info"])["timings"]
        if "sampling" in timings:
            sampling = timings["sampling"]
            timed = "per-draw" if extra.get("sampler") == "pymc" else "measured"
            if extra.get("sampler") in ("nutpie", "numpyro"):
                timed = "pro rata"
        else:  # NumPyro backend timing warm-up and sampling together
            sampling = timings["warmup_and_sampling"] * draws / (warmup + draws)
            timed = "pro rata"
        ess = min_ess(post.posterior)
        div = int(post.idata["sample_stats"]["diverging"].values.sum())
        results.append((label, ess, sampling, wall, ess / sampling, timed, div))
        posts[label] = post.posterior
        print(results[-1], flush=True)
    write(results, posts, chains, warmup, draws)
    # SciPy odeint with 2P states and 2P·(2P+2P) sensitivities per gradient is far slower
    # per draw: one in-process chain of (100 + 100) iterations under a wall-clock cap.
    oc, ow, od = (1, 10, 10) if smoke else (1, 100, 100)
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(budget)
    t_ode = time.perf_counter()
    try:
        post_ode, wall, sampling = pm_ode_fit(sim, oc, ow, od, seed=1)
        signal.alarm(0)
        ess = min_ess(post_ode)
        results.append((f"pm.ode.DifferentialEquation (PyMC NUTS; {oc}x({ow}+{od}))", ess, sampling, wall,
                        ess / sampling, "per-draw", -1))  # fmt: skip
        print(results[-1], flush=True)
    except Exception as err:  # report, do not hide, a failure of the peer
        signal.alarm(0)
        # The alarm raised inside Numba-compiled PyTensor code surfaces as a SystemError.
        timed_out = time.perf_counter() - t_ode >= budget - 1
        why = f"did not finish within {budget} s" if timed_out else f"{type(err).__name__}: {err}"
        results.append((f"pm.ode.DifferentialEquation ({oc}x({ow}+{od})): {why}"[:160], np.nan,
                        np.nan, np.nan, np.nan, "", -1))  # fmt: skip
    write(results, posts, chains, warmup, draws)


def _alarm(signum, frame):
    raise TimeoutError("pm.ode fit ran past its time budget")


def write(results, posts, chains, warmup, draws) -> None:
    ref = posts["twin_uq numpyro"]
    lines = [
        "# PyMC backend vs NumPyro backend vs pm.ode",
        "",
        f"one_compartment_oral, {N_PATIENTS} patients x {len(TIMES)} samples; "
        f"{chains} chains x ({warmup} warm-up + {draws} draws); "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}.",
        "",
        "| fit | min bulk ESS (pop.) | sampling s | wall s (incl. compile, warm-up) | ESS/s | sampling time | divergences |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, ess, samp, wall, rate, timed, div in results:
        lines.append(
            f"| {label} | {ess:.0f} | {samp:.1f} | {wall:.1f} | {rate:.1f} | {timed} | "
            f"{div if div >= 0 else 'n/a'} |"
        )
    for label in ("twin_uq pymc / pymc NUTS", "twin_uq pymc / nutpie (jax)"):
        rows = agreement(ref, posts[label])
        ok = sum(r[4] < r[5] for r in rows)
        lines += [
            "",
            f"## Agreement: twin_uq numpyro vs {label}",
            "",
            f"Bound: |diff| < 4·sqrt(mcse_a² + mcse_b²) (arviz_stats.mcse; quantiles with "
            f"method='quantile'). Within bound: {ok}/{len(rows)}. Correlation of patient "
            f"posterior medians of log theta: {patient_median_corr(ref, posts[label]):.4f}.",
            "",
            "| quantity | stat | numpyro | pymc | abs diff | bound |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {q} | {s} | {a:.4g} | {b:.4g} | {d:.3g} | {bd:.3g} |" for q, s, a, b, d, bd in rows
        ]
    out = Path(__file__).with_name("RESULTS_pymc.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
