"""The peer: the same hierarchical models written by hand in NumPyro + diffrax.

This is what a user would write from the NumPyro and diffrax documentation, without
twin_uq: read the cohort CSV with pandas, put ``diffrax.diffeqsolve`` (Tsit5,
``PIDController``, default adjoint ``RecursiveCheckpointAdjoint``) inside a NumPyro model
vmapped over patients, and run ``numpyro.infer.MCMC(NUTS(model))``.

The priors are twin_uq's defaults for the same models (``PopulationModel``: ``mu ~
Normal(log typical, prior_sd)``, ``omega ~ HalfNormal(bsv_prior_scale)``, residual SDs
``HalfNormal(sigma_prior_scale)``, allometric weight scaling for the oral model), copied
here as numbers so that this file does not import twin_uq. Random effects are
non-centred (``eta ~ Normal(0, 1)``); twin_uq's default ``centering="auto"`` differs.

Deliberate choices a careful user would make (stated in the results):

* float64 (``jax_enable_x64``), like twin_uq;
* ``throw=False`` in ``diffeqsolve`` with failed solves mapped to ``-inf`` log density,
  so that an extreme warm-up proposal is rejected instead of crashing the run;
* chains: first ``chain_method="parallel"`` on 2 host devices
  (``numpyro.set_host_device_count(2)``); if that raises, the error is recorded and the
  run falls back to ``chain_method="sequential"``.

Used by ``fit_benchmark.py`` (``--worker handwritten PROBLEM``), which runs it in its own
process. Not importable together with twin_uq in one process (device count, x64 set here).
"""

from __future__ import annotations

import time
import traceback

import numpyro

numpyro.set_host_device_count(2)
numpyro.enable_x64()

import diffrax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_median  # noqa: E402

# Seconds JAX spends tracing, lowering and compiling (JAX's own monitoring events).
COMPILE: dict[str, float] = {}
jax.monitoring.register_event_duration_secs_listener(
    lambda event, secs, **kw: (
        COMPILE.__setitem__(event, COMPILE.get(event, 0.0) + secs)
        if event.startswith("/jax/core/compile/")
        else None
    )
)


def compile_seconds() -> float:
    return float(sum(COMPILE.values()))


from peer_data import BERGMAN, ORAL, load_bergman, load_oral  # noqa: E402


def _tsit5(rhs, y0, t0, t1, saveat, args, dt0, rtol, atol):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(rhs), diffrax.Tsit5(), t0=t0, t1=t1, dt0=dt0, y0=y0, args=args,
        saveat=saveat, stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=4096, throw=False,
    )  # fmt: skip


def _solve(rhs, y0, ts, args, dt0, rtol, atol):
    sol = _tsit5(rhs, y0, 0.0, ts[-1], diffrax.SaveAt(ts=ts), args, dt0, rtol, atol)
    return sol.ys, sol.result == diffrax.RESULTS.successful


def _oral_rhs(t, y, th):
    ka, cl, v = th
    return jnp.stack([-ka * y[0], ka * y[0] - cl / v * y[1]])


def _oral_patient(th, dose, ts):
    ys, ok = _solve(_oral_rhs, jnp.stack([dose, 0.0]), ts, th, 0.05, 1e-6, 1e-9)
    return ys[:, 1] / th[2], ok


def _solve_segment(rhs, y0, t0, t1, ts, args, dt0, rtol, atol):
    """States at ``ts`` (clipped into [t0, t1]) and at ``t1``, from ``y0`` at ``t0``."""
    saveat = diffrax.SaveAt(ts=jnp.clip(ts, t0, t1), t1=True)
    sol = _tsit5(rhs, y0, t0, t1, saveat, args, dt0, rtol, atol)
    return sol.ys[:-1], sol.ys[-1], sol.result == diffrax.RESULTS.successful


def _oral_patient_doses(th, dose_times, dose_amts, ts):
    """Several oral doses: one solve per dosing interval (the last ends at the last sample)."""
    y = jnp.zeros(2)
    conc = jnp.zeros_like(ts)
    ok = jnp.array(True)
    n_doses = dose_times.shape[0]
    for m in range(n_doses):  # static: every patient has the same number of doses
        t0 = dose_times[m]
        t1 = dose_times[m + 1] if m + 1 < n_doses else ts[-1]
        y = y.at[0].add(dose_amts[m])
        ys, y, ok_m = _solve_segment(_oral_rhs, y, t0, t1, ts, th, 0.05, 1e-6, 1e-9)
        inside = (ts > t0) & ((ts < t1) if m + 1 < n_doses else (ts <= t1))
        conc = jnp.where(inside, ys[:, 1] / th[2], conc)
        ok = ok & ok_m
    return conc, ok


def oral_model(d):
    p = ORAL
    n_pat = d["y"].shape[0]
    mu = numpyro.sample("mu", dist.Normal(p["mu_loc"], p["mu_scale"]).to_event(1))
    omega = numpyro.sample("omega", dist.HalfNormal(p["omega_scale"]).to_event(1))
    s_add = numpyro.sample("sigma_add", dist.HalfNormal(p["sigma_add_scale"]))
    s_prop = numpyro.sample("sigma_prop", dist.HalfNormal(p["sigma_prop_scale"]))
    with numpyro.plate("patient", n_pat):
        eta = numpyro.sample("eta", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    allo = p["allo_exp"] * jnp.log(d["wt"] / 70.0)[:, None]
    theta = numpyro.deterministic("theta", jnp.exp(mu + allo + omega * eta))
    if d["dose_times"].shape[1] == 1:  # one dose at time 0: the initial depot
        f, ok = jax.vmap(_oral_patient)(theta, d["dose"], d["times"])
    else:
        f, ok = jax.vmap(_oral_patient_doses)(theta, d["dose_times"], d["dose_amts"], d["times"])
    sd = jnp.sqrt(s_add**2 + (s_prop * f) ** 2)
    numpyro.factor("solver_ok", jnp.where(jnp.all(ok), 0.0, -jnp.inf))
    f = jnp.where(jnp.isfinite(f), f, 0.0)
    with numpyro.handlers.mask(mask=d["mask"]):
        numpyro.sample("y", dist.Normal(f, sd), obs=d["y"])


def _bergman_rhs(t, y, args):
    th, knots, ins, ib = args
    sg, p2, si, gb, _ = th
    g, x = y
    insulin = jnp.interp(t, knots, ins)
    return jnp.stack([-(sg + x) * g + sg * gb, -p2 * x + p2 * si * (insulin - ib)])


def _bergman_patient(th, knots, ins, ib, ts):
    ys, ok = _solve(
        _bergman_rhs, jnp.stack([th[4], 0.0]), ts, (th, knots, ins, ib), 0.5, 1e-6, 1e-10
    )
    return ys[:, 0], ok


def bergman_model(d):
    p = BERGMAN
    n_pat = d["y"].shape[0]
    mu = numpyro.sample("mu", dist.Normal(p["mu_loc"], p["mu_scale"]).to_event(1))
    omega = numpyro.sample("omega", dist.HalfNormal(p["omega_scale"]).to_event(1))
    s_prop = numpyro.sample("sigma_prop", dist.HalfNormal(p["sigma_prop_scale"]))
    with numpyro.plate("patient", n_pat):
        eta = numpyro.sample("eta", dist.Normal(0.0, 1.0).expand([5]).to_event(1))
    theta = numpyro.deterministic("theta", jnp.exp(mu + omega * eta))
    f, ok = jax.vmap(_bergman_patient)(theta, d["knots"], d["insulin"], d["ib"], d["times"])
    numpyro.factor("solver_ok", jnp.where(jnp.all(ok), 0.0, -jnp.inf))
    f = jnp.where(jnp.isfinite(f), f, 1.0)
    with numpyro.handlers.mask(mask=d["mask"]):
        numpyro.sample("y", dist.Normal(f, jnp.maximum(s_prop * jnp.abs(f), 1e-12)), obs=d["y"])


def run(kind: str, csv, *, chains=2, warmup=1000, draws=1000, seed=1) -> dict:
    """Fit one cohort; returns draws (chain, draw, ...) of mu/omega/theta, stats, timings."""
    model, data, names = (
        (oral_model, load_oral(csv), ORAL["names"])
        if kind == "oral"
        else (bergman_model, load_bergman(csv), BERGMAN["names"])
    )
    data_j = {k: jnp.asarray(v) for k, v in data.items() if k != "ids"}
    crashes = []

    def make(method, nw, ns):
        # init_to_median: the NumPyro default init_to_uniform(-2, 2) on log scale sends the
        # ODE into its step limit in early warm-up; twin_uq also starts at prior medians.
        kern = NUTS(model, target_accept_prob=0.9, init_strategy=init_to_median(num_samples=15))
        return MCMC(kern, num_warmup=nw, num_samples=ns, num_chains=chains,
                    chain_method=method, progress_bar=False)  # fmt: skip

    method = "parallel"
    try:  # a 2+2-iteration run: does the parallel chain method work at all?
        tiny = make(method, 2, 2)
        tiny.run(jax.random.key(seed + 100), data_j)
        jax.block_until_ready(tiny.get_samples())
    except Exception as e:  # record whatever the user would hit
        crashes.append(
            f"chain_method='parallel': {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        )
        traceback.print_exc()
        method = "sequential"
    mcmc = make(method, warmup, draws)
    COMPILE.clear()
    t0 = time.perf_counter()
    mcmc.run(jax.random.key(seed), data_j, extra_fields=("diverging", "num_steps"))
    s = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(s)
    t_total = time.perf_counter() - t0
    t_compile = compile_seconds()
    extra = mcmc.get_extra_fields(group_by_chain=True)
    return dict(
        names=names,
        ids=data["ids"],
        typical=np.exp(np.asarray(s["mu"])),
        omega=np.asarray(s["omega"]),
        theta=np.asarray(s["theta"]),
        diverging=np.asarray(extra["diverging"]),
        num_steps=np.asarray(extra["num_steps"]),
        timings=dict(compile=t_compile, run_total=t_total, warmup_and_sampling=t_total - t_compile),
        chain_method=method,
        crashes=crashes,
    )
