"""Fit benchmark: twin_uq ``tq.fit`` vs the same model hand-written in NumPyro + diffrax.

Problems (cohorts generated once with fixed seeds, saved in ``benchmarks/data/`` as CSV with
a ``*_truth.json`` of the true population values):

* ``p1_oral_12``, ``p1_oral_100``: one-compartment oral PK, 100 mg single dose, 9 samples
  per patient over 24 h, weight ~ lognormal(70 kg, 0.2), omega 0.3, combined error.
* ``p1_oral_md_12``, ``p1_oral_md_100``: the same model and population, multiple dosing:
  100 mg at 0, 12 and 24 h, 10 samples over 36 h (troughs at 11.5 and 23.5 h).
* ``b1_bergman_20`` (and ``b1_bergman_100``): Bergman minimal model IVGTT, glucose observed
  at 10 times (5-180 min), measured insulin as a per-patient signal (first- and
  second-phase profile of tests/models/test_bergman_minimal.py, between-patient log-SD 0.3
  of its excursion), proportional error.

Each (problem, tool) runs in its own subprocess (isolated peak memory, ru_maxrss); tools
alternate problem by problem in one invocation so that both see the same machine load.

* ``twin_uq``: ``tq.fit(model, cohort, chains=2, warmup=W, draws=D)`` twice (seeds 1, 2):
  the first fit includes compilation, the second reuses it; quality metrics from fit 2.
* ``handwritten``: ``benchmarks/handwritten_numpyro.py`` (one ``MCMC.run``).

Compile time = seconds of JAX's own compile events (``/jax/core/compile/*``: tracing,
lowering, XLA compilation) during a fit; warm-up+sampling = the sampler's own timer
(twin_uq) or the ``MCMC.run`` wall time minus compile time (hand-written; includes
NumPyro's eager initialisation).

Metrics: min bulk-ESS over population (typical, omega) and patient (theta) parameters,
ESS/s = min ESS / (warm-up + sampling seconds, compile excluded), max R-hat (typical,
omega, theta), post-warm-up divergences, coverage of the true typical values and omegas by
90% central intervals, peak RSS.

Run:
  .venv/bin/python benchmarks/fit_benchmark.py --make-data
  .venv/bin/python benchmarks/fit_benchmark.py --problems p1_oral_12 p1_oral_100 b1_bergman_20
  .venv/bin/python benchmarks/fit_benchmark.py --scaling        # twin_uq only, oral
Results: benchmarks/out/fit_benchmark_*.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from importlib import metadata as md
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
OUT = Path(os.environ.get("TWIN_UQ_BENCH_OUT", HERE / "out"))  # the GPU run writes to $OUT
PY = sys.executable

ORAL_TIMES = [0.5, 1, 2, 3, 4, 6, 8, 12, 24]
# Multiple dosing: 100 mg every 12 h (0, 12, 24 h), samples in each interval, none at a dose.
ORAL_MD_DOSES = [0.0, 12.0, 24.0]
ORAL_MD_TIMES = [0.5, 1, 2, 4, 8, 11.5, 14, 23.5, 26, 36]
BERGMAN_KNOTS = [0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100, 120, 150, 180]
BERGMAN_TIMES = [5, 10, 15, 20, 30, 45, 60, 90, 120, 180]

PROBLEMS = {
    "p1_oral_12": ("oral", 12, 2024),
    "p1_oral_100": ("oral", 100, 2025),
    "p1_oral_md_12": ("oral", 12, 2124),
    "p1_oral_md_100": ("oral", 100, 2126),
    "b1_bergman_20": ("bergman", 20, 3020),
    "b1_bergman_100": ("bergman", 100, 3100),
    "p1_oral_10": ("oral", 10, 4010),
    "p1_oral_1000": ("oral", 1000, 4999),
    "p1_oral_10000": ("oral", 10000, 5000),
}
MODELS = {"oral": "one_compartment_oral", "bergman": "bergman_minimal"}


def insulin_profile(t):
    """µU/mL: first-phase peak ~100 at 0-2 min, second phase, back to Ib = 10 by ~150 min."""
    t = np.asarray(t, float)
    return 10.0 + 90.0 * np.exp(-t / 8.0) + 20.0 * (t / 30.0) * np.exp(1.0 - t / 30.0)


def make_data(names) -> None:
    import twin_uq as tq

    tq.configure()
    DATA.mkdir(exist_ok=True)
    for name in names:
        kind, n, seed = PROBLEMS[name]
        if kind == "oral" and "_md_" in name:
            design = tq.Design(
                times=ORAL_MD_TIMES, doses=[tq.Bolus(t, 100.0, 1) for t in ORAL_MD_DOSES],
                covariates={"WT": ("lognormal", 70.0, 0.2)},
            )  # fmt: skip
        elif kind == "oral":
            design = tq.Design(
                times=ORAL_TIMES, doses=[tq.Bolus(0.0, 100.0, 1)],
                covariates={"WT": ("lognormal", 70.0, 0.2)},
            )  # fmt: skip
        else:
            design = tq.Design(
                times=BERGMAN_TIMES,
                signals={"insulin": (BERGMAN_KNOTS, insulin_profile(BERGMAN_KNOTS))},
                signal_scale_sd=0.3,
            )
        sim = tq.simulate_cohort(MODELS[kind], n, design, seed=seed)
        table = sim.table.drop(columns=["sampling"])
        table.to_csv(DATA / f"{name}.csv", index=False, float_format="%.10g")
        tr = sim.truth
        truth = dict(
            model=MODELS[kind], n_patients=n, seed=seed, typical=tr.typical, omega=tr.omega,
            sigma_add=tr.sigma_add, sigma_prop=tr.sigma_prop, error=tr.error,
            theta=tr.theta.to_dict(orient="index"),
        )  # fmt: skip
        (DATA / f"{name}_truth.json").write_text(json.dumps(truth, indent=1))
        print(f"wrote {name}: {n} patients, {int((table['evid'] == 0).sum())} observations")


def load_truth(name: str) -> dict:
    """The truth file plus ``omega_realised``: the SD of the simulated patients' own random
    effects (log parameters net of the allometric offsets). With 1000 patients the posterior
    of omega is narrow enough to tell the realised spread from the generative omega (seed
    4999 drew 0.283 / 0.323 / 0.320 for ka / CL / V against 0.3)."""
    import pandas as pd

    truth = json.loads((DATA / f"{name}_truth.json").read_text())
    table = pd.read_csv(DATA / f"{name}.csv")
    table["id"] = table["id"].astype(str)
    ids = list(truth["theta"])
    first = table.groupby("id").first().loc[ids]
    import twin_uq as tq

    model = tq.load_model(truth["model"])
    realised = {}
    for p in model.parameter_names:
        eta = np.log([truth["theta"][i][p] for i in ids])
        for allo in model.allometric:
            if allo.parameter == p and allo.covariate in first:
                eta = eta - allo.exponent * np.log(first[allo.covariate].to_numpy(float) / allo.reference)
        realised[p] = float(np.std(eta, ddof=1))
    truth["omega_realised"] = realised
    return truth


def metrics(typical, omega, theta, diverging, names, truth) -> dict:
    """Arrays are (chain, draw, ...); theta is (chain, draw, patient, parameter)."""
    import arviz_stats as azs
    import xarray as xr

    dims = ("chain", "draw", "parameter")
    ds = xr.Dataset(
        {
            "typical": (dims, typical),
            "omega": (dims, omega),
            "theta": (("chain", "draw", "patient", "parameter"), theta),
        },
        coords={"parameter": list(names)},
    )
    ess = azs.ess(ds, method="bulk")
    rhat = azs.rhat(ds)
    cover, total, missed = 0, 0, []
    for var in ("typical", "omega"):
        for k, p in enumerate(names):
            x = ds[var].values[..., k].ravel()
            lo, hi = np.quantile(x, [0.05, 0.95])
            ok = lo <= truth[var][p] <= hi
            cover += int(ok)
            total += 1
            if not ok:
                missed.append(f"{var}[{p}]")
    realised = []
    for k, p in enumerate(names):
        lo, hi = np.quantile(ds["omega"].values[..., k].ravel(), [0.05, 0.95])
        realised.append(bool(lo <= truth["omega_realised"][p] <= hi))
    return dict(
        omega_realised_coverage=f"{sum(realised)}/{len(realised)}",
        ess_pop_min=float(min(ess["typical"].min(), ess["omega"].min())),
        ess_patient_min=float(ess["theta"].min()),
        rhat_max=float(max(float(rhat[v].max()) for v in rhat.data_vars)),
        rhat_pop_max=float(max(float(rhat["typical"].max()), float(rhat["omega"].max()))),
        rhat_patient_max=float(rhat["theta"].max()),
        divergences=int(np.sum(diverging)),
        ess_pop_by_parameter={
            f"{v}[{p}]": float(ess[v].values[k])
            for v in ("typical", "omega")
            for k, p in enumerate(names)
        },
        coverage=f"{cover}/{total}",
        missed=missed,
    )


def worker_twin(
    name: str, warmup: int, draws: int, method: str, n_fits: int = 2, centering: str = "auto",
    precision: str | None = None, target_accept: float | None = None, save_start: str | None = None,
) -> dict:
    import dataclasses

    import twin_uq as tq

    tq.configure()  # float64 and one CPU device per chain, before JAX starts
    kind = PROBLEMS[name][0]
    truth = load_truth(name)
    cohort = tq.read_cohort(DATA / f"{name}.csv")
    import jax

    import twin_uq.inference.backends as be

    compile_events: dict[str, float] = {}
    in_sampler = {"on": False, "compile_s": 0.0}

    def listen(event, secs, **kw):
        if event.startswith("/jax/core/compile/"):
            compile_events[event] = compile_events.get(event, 0.0) + secs
            if in_sampler["on"]:
                in_sampler["compile_s"] += secs

    jax.monitoring.register_event_duration_secs_listener(listen)
    sample_nuts = be.sample_nuts

    def timed_sample_nuts(*args, **kwargs):  # compile seconds inside the sampler's timer
        in_sampler.update(on=True, compile_s=0.0)
        try:
            return sample_nuts(*args, **kwargs)
        finally:
            in_sampler["on"] = False

    be.sample_nuts = timed_sample_nuts

    model = tq.load_model(MODELS[kind])
    solver = model.solver
    if precision is not None and solver.is_fixed_step:  # the model's default otherwise
        solver = dataclasses.replace(solver, precision=precision)
    fits, walls, comp, sampler_comp = [], [], [], []
    for seed in (1, 2)[:n_fits]:
        compile_events.clear()
        t0 = time.perf_counter()
        tuning = {} if target_accept is None else {"target_accept": target_accept}
        post = tq.fit(model, cohort, method=method, chains=2, warmup=warmup, draws=draws,
                      seed=seed, progress=False, solver=solver, **tuning,
                      centering=centering if centering == "auto" else float(centering))  # fmt: skip
        walls.append(time.perf_counter() - t0)
        comp.append(sum(compile_events.values()))
        sampler_comp.append(in_sampler["compile_s"])
        fits.append(post)
    post = fits[-1]
    info = json.loads(post.idata.attrs["backend_info"])
    pos = post.posterior
    if save_start:
        save_last_draws(pos, save_start)
    names = list(pos["typical"].parameter.values)
    theta = pos["theta"].transpose("chain", "draw", "patient", "parameter").values
    div = post.idata["sample_stats"]["diverging"].values if method == "nuts" else np.zeros(1)
    m = metrics(pos["typical"].transpose("chain", "draw", "parameter").values,
                pos["omega"].transpose("chain", "draw", "parameter").values,
                theta, div, names, truth)  # fmt: skip
    first_info = json.loads(fits[0].idata.attrs["backend_info"])
    inner = info["timings"].get("warmup_and_sampling", info["timings"].get("optimisation"))
    if len(fits) == 1 and method == "nuts":  # take the sampler's own compilation out
        inner = inner - sampler_comp[0]
    return dict(
        m,
        tool="twin_uq",
        first_fit_s=walls[0],
        second_fit_s=walls[-1],
        first_sampler_s=first_info["timings"].get("warmup_and_sampling"),
        warmup_and_sampling_s=inner,
        compile_s=comp[0],
        compile_in_sampler_s=sampler_comp[0],
        compile_second_fit_s=comp[-1],
        chain_method=info.get("chain_method", method),
        device=f"{jax.default_backend()}: {jax.devices()[0].device_kind}",
        mean_n_steps=float(post.idata["sample_stats"]["n_steps"].mean())
        if method == "nuts"
        else None,
        crashes=[],
        solver=json.loads(post.idata.attrs["solver"]),
        fixed_step_check=json.loads(post.idata.attrs.get("fixed_step_check", "null")),
    )


def save_last_draws(pos, path: str) -> None:
    """Each chain's last draw in the peers' natural parameters, for ``--stan-warm-start``."""
    last = pos.isel(draw=-1)
    arrays = dict(
        mu=last["mu"].transpose("chain", "parameter").values,
        omega=last["omega"].transpose("chain", "parameter").values,
        theta=last["theta"].transpose("chain", "patient", "parameter").values,
    )
    for var in ("sigma_prop", "sigma_add"):
        if var in last:
            arrays[var] = last[var].values.reshape(last.sizes["chain"], -1)[:, 0]
    np.savez(path, **arrays)


PEERS = {
    "handwritten": ("handwritten_numpyro", "handwritten NumPyro+diffrax"),
    "stan": ("stan_peer", "Stan (PyStan 3, ode_rk45)"),
    "pymc": ("pymc_peer", "PyMC (RK4 in pytensor.scan, nutpie)"),
}


def worker_peer(
    tool: str, name: str, warmup: int, draws: int, warm_start: str | None = None,
    adapt_windows: list[int] | None = None,
) -> dict:
    import importlib

    module, label = PEERS[tool]
    peer = importlib.import_module(module)
    kind = PROBLEMS[name][0]
    truth = load_truth(name)
    options = {}
    if warm_start is not None:  # Stan only (argument parsing checks it)
        options["warm_start"] = dict(np.load(warm_start))
    if adapt_windows is not None:
        options["adapt_windows"] = adapt_windows
    r = peer.run(kind, DATA / f"{name}.csv", warmup=warmup, draws=draws, **options)
    m = metrics(r["typical"], r["omega"], r["theta"], r["diverging"], r["names"], truth)
    t = r["timings"]
    return dict(
        m,
        tool=label,
        first_fit_s=t["run_total"],
        second_fit_s=None,
        warmup_and_sampling_s=t["warmup_and_sampling"],
        compile_s=t["compile"],
        chain_method=r["chain_method"],
        mean_n_steps=float(np.mean(r["num_steps"])),
        crashes=r["crashes"],
        start=r.get("start", "prior medians"),
        adapt_windows=r.get("adapt_windows"),
    )


def versions() -> dict:
    out = {}
    for p in ("twin-uq", "jax", "jaxlib", "numpyro", "diffrax", "equinox", "arviz-stats",
              "pystan", "httpstan", "pymc", "pytensor", "nutpie"):  # fmt: skip
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = "n/a"
    out["python"] = platform.python_version()
    return out


def spawn(
    tool, name, warmup, draws, timeout, method="nuts", fits=2, centering="auto", precision=None,
    target_accept=None, extra=(),
) -> dict:
    """Run one (tool, problem) in its own process group; on timeout kill the whole group
    (PyStan's httpstan and the PyMC sampler start processes of their own)."""
    import signal

    cmd = [PY, str(Path(__file__)), "--worker", tool, name, "--warmup", str(warmup),
           "--draws", str(draws), "--method", method, "--fits", str(fits),
           "--centering", str(centering)]  # fmt: skip
    if precision is not None:
        cmd += ["--precision", precision]
    if target_accept is not None:
        cmd += ["--target-accept", str(target_accept)]
    cmd += list(extra)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=HERE, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return dict(tool=tool, problem=name, error=f"timed out after {timeout} s",
                    settings=dict(chains=2, warmup=warmup, draws=draws, method=method),
                    load_avg_1min=[load0, os.getloadavg()[0]])  # fmt: skip
    wall = time.perf_counter() - t0
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        return dict(tool=tool, problem=name, error=f"rc={p.returncode}: {stderr[-1500:]}")
    res = json.loads(lines[-1][7:])
    res.update(problem=name, process_wall_s=wall, stderr_tail=stderr[-800:],
               load_avg_1min=[load0, os.getloadavg()[0]])  # fmt: skip
    return res


def fmt(x, f="{:.1f}"):
    return "–" if x is None else f.format(x)


def table(results) -> str:
    head = ("| problem | tool | chains | first fit s (compile incl.) | compile s | 2nd fit s "
            "| warm-up+sampling s | min ESS pop | min ESS patient | ESS/s pop | ESS/s patient "
            "| max R-hat | div. | mean leapfrog/iter | 90% cover (typ+omega) | omega cover (realised) "
            "| peak RSS MiB | crashes |")  # fmt: skip
    rows = [head, "|" + "---|" * 18]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['problem']} | {r['tool']} | | **{r['error'][:120]}** |" + " |" * 14)
            continue
        ws = r["warmup_and_sampling_s"]
        tool = r["tool"]
        if r.get("start", "prior medians") != "prior medians":
            st = r.get("settings", {})
            tool += f" [{r['start']}; {st.get('warmup')}+{st.get('draws')}]"
        rows.append(
            f"| {r['problem']} | {tool} | {r['chain_method']} | {fmt(r['first_fit_s'])} "
            f"| {fmt(r['compile_s'])} | {fmt(r['second_fit_s'])} | {fmt(ws)} "
            f"| {r['ess_pop_min']:.0f} | {r['ess_patient_min']:.0f} | {r['ess_pop_min'] / ws:.3g} "
            f"| {r['ess_patient_min'] / ws:.3g} | {r['rhat_max']:.3f} | {r['divergences']} "
            f"| {fmt(r.get('mean_n_steps'))} | {r['coverage']}{' (missed ' + ', '.join(r['missed']) + ')' if r['missed'] else ''} | {r.get('omega_realised_coverage', '–')} | {r['peak_rss_mib']:.0f} | {'; '.join(r['crashes']) or 'none'} |"
        )
    return "\n".join(rows)


# (problem, method, warmup, draws): one fit each (compile separated by JAX's compile
# events); fewer NUTS iterations for 1000 patients; 10 000 patients by SVI (3000 steps).
SCALING = (
    ("p1_oral_10", "nuts", 500, 500),
    ("p1_oral_100", "nuts", 500, 500),
    ("p1_oral_1000", "nuts", 300, 300),
    ("p1_oral_10000", "svi", 0, 1000),
)


def scaling(timeout: int, only: list[str] | None = None, tag: str = "scaling") -> None:
    """twin_uq cost vs cohort size on the oral model; plot to benchmarks/fit_scaling.png."""
    meta = dict(versions=versions(), machine=f"{platform.platform()}, {platform.processor()}",
                command=" ".join(sys.argv), started=time.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    results = []
    for name, method, warmup, draws in SCALING:
        if only and name not in only:
            continue
        if not (DATA / f"{name}.csv").exists():
            subprocess.run([PY, str(Path(__file__)), "--make-data", "--problems", name], check=True)
        r = spawn("twin_uq", name, warmup, draws, timeout, method, fits=1)
        r.update(n_patients=PROBLEMS[name][1], method=method, warmup=warmup, draws=draws)
        if "error" not in r and method == "nuts":
            iters = 2 * (warmup + draws)  # 2 chains in parallel: per-chain iterations
            r["s_per_iteration"] = r["warmup_and_sampling_s"] / (warmup + draws)
            r["s_per_gradient"] = r["warmup_and_sampling_s"] / (
                (warmup + draws) * r["mean_n_steps"]
            )
            r["iterations_total"] = iters
        results.append(r)
        print(
            json.dumps({k: v for k, v in r.items() if k != "stderr_tail"}, default=str), flush=True
        )
        (OUT / f"fit_benchmark_{tag}.json").write_text(
            json.dumps(dict(meta=meta, results=results), indent=1, default=str)
        )
    if not only:  # a partial series must not replace the plot of the whole one
        plot_scaling(results)


def plot_scaling(results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "error" not in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    nuts = [r for r in ok if r["method"] == "nuts"]
    n = [r["n_patients"] for r in nuts]
    ax[0].loglog(n, [r["s_per_iteration"] for r in nuts], "o-", label="NUTS s / iteration")
    ax[0].loglog(n, [r["s_per_gradient"] * 1e3 for r in nuts], "s-", label="NUTS ms / gradient")
    ref = np.array([min(n), max(n)], float)
    if nuts:
        y0 = nuts[0]["s_per_gradient"] * 1e3
        ax[0].loglog(ref, y0 * ref / ref[0], "k:", label="linear in patients")
    ax[0].set_xlabel("patients")
    ax[0].set_title("twin_uq NUTS (warm-up+sampling, compile excluded)")
    ax[0].legend(fontsize=8)
    allr = sorted(ok, key=lambda r: r["n_patients"])
    ax[1].loglog([r["n_patients"] for r in allr], [r["first_fit_s"] for r in allr], "o-",
                 label="first fit wall s (compile incl.)")  # fmt: skip
    for r in allr:
        ax[1].annotate(f"{r['method']} {r['warmup']}+{r['draws']}",
                       (r["n_patients"], r["first_fit_s"]), fontsize=7)  # fmt: skip
    ax[1].set_xlabel("patients")
    ax[1].set_title("wall time per fit (2 shared cores)")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "fit_scaling.png", dpi=110)


def plot_tags(tags: list[str]) -> None:
    """Plot cost vs cohort size from several runs' JSON (twin_uq NUTS, one series per centring,
    or per ``TAG=LABEL`` label).

    Left: ms per gradient (warm-up+sampling s / (iterations x mean leapfrog steps)) and wall
    seconds of the first fit; right: population ESS per second. Points whose sampling time
    is not positive (one-fit runs before compile-in-sampler accounting) are skipped.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float, float, float]]] = {}
    for item in tags:  # TAG or TAG=LABEL (the label names the series)
        tag, _, label = item.partition("=")
        for r in json.loads((OUT / f"fit_benchmark_{tag}.json").read_text())["results"]:
            st = r.get("settings", {})
            if "error" in r or r.get("tool") != "twin_uq" or st.get("method") != "nuts":
                continue
            ws, iters = r["warmup_and_sampling_s"], st["warmup"] + st["draws"]
            if ws <= 0:
                continue
            key = label or f"centering={st.get('centering', 'auto')}"
            n = PROBLEMS[r["problem"]][1]
            grad_ms = 1e3 * ws / (iters * r["mean_n_steps"])
            series.setdefault(key, []).append((n, grad_ms, r["first_fit_s"], r["ess_pop_min"] / ws))
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for key, pts in series.items():
        pts.sort()
        n = [p[0] for p in pts]
        ax[0].loglog(n, [p[1] for p in pts], "o-", label=f"ms / gradient, {key}")
        ax[0].loglog(n, [p[2] for p in pts], "s--", label=f"first fit wall s, {key}")
        ax[1].loglog(n, [p[3] for p in pts], "o-", label=key)
    ax[0].set_xlabel("patients")
    ax[0].set_title("twin_uq NUTS cost (2 chains; CPU: 2 shared cores)")
    ax[0].legend(fontsize=7)
    ax[1].set_xlabel("patients")
    ax[1].set_title("population ESS per second of sampling")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "fit_scaling.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-data", action="store_true")
    ap.add_argument("--worker", nargs=2)
    ap.add_argument("--problems", nargs="*", default=["p1_oral_12", "p1_oral_100", "b1_bergman_20"])
    ap.add_argument("--tools", nargs="*", default=["twin_uq", "handwritten"])
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--method", default="nuts")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--tag", default="main")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--scaling-problems", nargs="*", help="only these problems of the series")
    ap.add_argument("--plot-tags", nargs="*", help="plot fit_scaling.png from these runs' JSON")
    ap.add_argument("--fits", type=int, default=2)
    ap.add_argument(
        "--centering", default="auto", help="twin_uq only: 'auto' or a weight in [0, 1]"
    )
    ap.add_argument(
        "--precision", choices=["float64", "float32"],
        help="twin_uq, fixed-step models only: the solve's precision (default: the model's)",
    )
    ap.add_argument(
        "--target-accept", type=float,
        help="twin_uq NUTS only: the step-size adaptation's target acceptance (default: tq.fit's)",
    )  # fmt: skip
    ap.add_argument(
        "--stan-warm-start", action="store_true",
        help="start Stan's chains at the last draws of twin_uq's fit of the same problem in this "
        "run (twin_uq must come before stan in --tools); favours Stan, which skips its transient",
    )
    ap.add_argument(
        "--stan-adapt", nargs=3, type=int, metavar=("INIT_BUFFER", "WINDOW", "TERM_BUFFER"),
        help="Stan's warm-up adaptation windows (default 75 25 50), for a short warm-up",
    )
    ap.add_argument(
        "--stan-length", nargs=2, type=int, metavar=("WARMUP", "DRAWS"),
        help="Stan's own warm-up and draws per chain (default --warmup, --draws)",
    )
    ap.add_argument("--save-start", help=argparse.SUPPRESS)  # worker: twin_uq writes its last draws
    ap.add_argument("--warm-start", help=argparse.SUPPRESS)  # worker: Stan reads them
    ap.add_argument("--table", help="print the Markdown table of out/fit_benchmark_<TAG>.json")
    a = ap.parse_args()
    if a.table:
        print(table(json.loads((OUT / f"fit_benchmark_{a.table}.json").read_text())["results"]))
        return
    if a.plot_tags:
        plot_tags(a.plot_tags)
        return
    if a.make_data:
        make_data(a.problems)
        return
    if a.worker:
        tool, name = a.worker
        if tool == "twin_uq":
            res = worker_twin(name, a.warmup, a.draws, a.method, a.fits, a.centering, a.precision,
                              a.target_accept, a.save_start)  # fmt: skip
        else:
            sys.path.insert(0, str(HERE))
            res = worker_peer(tool, name, a.warmup, a.draws, a.warm_start, a.stan_adapt)
        res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["settings"] = dict(chains=2, warmup=a.warmup, draws=a.draws, method=a.method,
                               centering=a.centering, precision=a.precision,
                               target_accept=a.target_accept)  # fmt: skip
        print("RESULT " + json.dumps(res, default=str), flush=True)
        return
    OUT.mkdir(exist_ok=True)
    if a.scaling:
        scaling(a.timeout, a.scaling_problems, a.tag if a.tag != "main" else "scaling")
        return
    if a.stan_warm_start and not (
        "stan" in a.tools and "twin_uq" in a.tools
        and a.tools.index("twin_uq") < a.tools.index("stan")
    ):  # fmt: skip
        ap.error("--stan-warm-start needs --tools with twin_uq before stan")
    results = []
    meta = dict(versions=versions(), machine=f"{platform.platform()}, {platform.processor()}",
                command=" ".join(sys.argv), started=time.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    for name in a.problems:  # interleaved: both tools on one problem, then the next
        start = OUT / f"warm_start_{a.tag}_{name}.npz"
        for tool in a.tools:
            extra = []
            if a.stan_warm_start and tool == "twin_uq":
                extra = ["--save-start", str(start)]
            if tool == "stan":
                if a.stan_warm_start:
                    extra = ["--warm-start", str(start)]
                if a.stan_adapt:
                    extra += ["--stan-adapt", *map(str, a.stan_adapt)]
            warmup, draws = a.warmup, a.draws
            if tool == "stan" and a.stan_length:
                warmup, draws = a.stan_length
            r = spawn(tool, name, warmup, draws, a.timeout, a.method, a.fits, a.centering,
                      a.precision, a.target_accept, extra)
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "stderr_tail"}, default=str),
                  flush=True)  # fmt: skip
            (OUT / f"fit_benchmark_{a.tag}.json").write_text(
                json.dumps(dict(meta=meta, results=results), indent=1, default=str)
            )
    print(table(results))


if __name__ == "__main__":
    main()
