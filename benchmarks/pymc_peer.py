"""The PyMC peer: the same hierarchical models in PyMC with a hand-written fixed-step solver.

PyMC's own ODE support, ``pm.ode.DifferentialEquation`` (SciPy ``odeint`` with forward
sensitivities, one patient at a time), did not finish 1 chain x (100 + 100) iterations of
the 12-patient oral problem in 420 s here (``RESULTS_pymc.md``), so for cohorts a PyMC
user writes the solver in PyTensor: classical Runge-Kutta 4 with a fixed step inside
``pytensor.scan``, vectorised over patients (state ``(P, 2)``), observations picked from
the step grid. Steps: oral 0.05 h (ka·dt <= 0.15 over the prior's bulk: RK4 local error
< 1e-6 relative), Bergman 0.5 min (measured insulin pre-interpolated at the step and
half-step times). The sampling times of both problems are multiples of the step.

Priors, likelihood and non-centred random effects as in ``handwritten_numpyro.py``; PyMC's
default sampler (``pm.sample``: in PyMC 6 that is nutpie's NUTS on a numba-compiled model,
``target_accept`` 0.9, chains in parallel threads). Build time = model construction,
compiling the log-density and its gradient, and the part of ``pm.sample`` outside
nutpie's own sampling timer (its numba compilation); sampling time = that timer.
"""

from __future__ import annotations

import time

import numpy as np
from peer_data import BERGMAN, ORAL, load_bergman, load_oral

ORAL_DT = 0.05
BERGMAN_DT = 0.5


def _grid_index(times: np.ndarray, mask: np.ndarray, dt: float) -> np.ndarray:
    idx = np.rint(times / dt).astype(int)
    if np.any(np.abs(idx * dt - times)[mask] > 1e-9):
        raise ValueError(f"sampling times must be multiples of the step {dt}")
    return idx


def _rk4(f, y0, n_steps, dt, sequences=(), non_sequences=(), jump=False):
    """Fixed-step RK4 in pytensor.scan; returns the states at steps 1..n_steps, (n, P, S).

    ``jump``: the first sequence is added to the state at the start of each step (doses).
    """
    import pytensor

    def step(*args):
        n_seq = len(sequences)
        seq, y, rest = args[:n_seq], args[n_seq], args[n_seq + 1 :]
        if jump:
            y = y + seq[0]
        k1 = f(y, 0, seq, rest)
        k2 = f(y + 0.5 * dt * k1, 1, seq, rest)
        k3 = f(y + 0.5 * dt * k2, 1, seq, rest)
        k4 = f(y + dt * k3, 2, seq, rest)
        return y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    ys, _ = pytensor.scan(step, sequences=list(sequences), outputs_info=[y0],
                          non_sequences=list(non_sequences), n_steps=n_steps)  # fmt: skip
    return ys


def oral_model(d):
    import pymc as pm
    import pytensor.tensor as pt

    p = ORAL
    n_pat = d["y"].shape[0]
    idx = _grid_index(d["times"], d["mask"], ORAL_DT)
    n_steps = int(idx.max())
    with pm.Model() as model:
        mu = pm.Normal("mu", p["mu_loc"], p["mu_scale"], shape=3)
        omega = pm.HalfNormal("omega", p["omega_scale"], shape=3)
        s_add = pm.HalfNormal("sigma_add", p["sigma_add_scale"])
        s_prop = pm.HalfNormal("sigma_prop", p["sigma_prop_scale"])
        eta = pm.Normal("eta", 0.0, 1.0, shape=(n_pat, 3))
        allo = p["allo_exp"] * np.log(d["wt"] / 70.0)[:, None]
        theta = pm.Deterministic("theta", pt.exp(mu + allo + omega * eta))
        ka, k = theta[:, 0], theta[:, 1] / theta[:, 2]

        def f(y, _stage, _seq, rest):
            ka_, k_ = rest
            return pt.stack([-ka_ * y[:, 0], ka_ * y[:, 0] - k_ * y[:, 1]], axis=1)

        if d["dose_times"].shape[1] == 1:  # one dose at time 0: the initial depot
            y0 = pt.as_tensor(np.stack([d["dose"], np.zeros(n_pat)], 1))
            ys = _rk4(f, y0, n_steps, ORAL_DT, non_sequences=(ka, k))  # (n_steps, P, 2)
        else:  # several doses: added to the depot at the start of their grid step
            jumps = np.zeros((n_steps, n_pat, 2))
            dose_idx = _grid_index(d["dose_times"], np.ones_like(d["dose_times"], bool), ORAL_DT)
            rows = np.broadcast_to(np.arange(n_pat)[:, None], dose_idx.shape)
            given = dose_idx < n_steps  # a dose after the last sample changes nothing
            np.add.at(jumps, (dose_idx[given], rows[given], 0), d["dose_amts"][given])
            ys = _rk4(f, pt.zeros((n_pat, 2)), n_steps, ORAL_DT, sequences=(pt.as_tensor(jumps),),
                      non_sequences=(ka, k), jump=True)  # fmt: skip
        rows = np.broadcast_to(np.arange(n_pat)[:, None], idx.shape)
        conc = ys[idx - 1, rows, 1] / theta[:, 2][:, None]
        sd = pt.sqrt(s_add**2 + (s_prop * conc) ** 2)
        m = d["mask"]
        pm.Normal("y", conc[m], sd[m], observed=d["y"][m])
    return model


def bergman_model(d):
    import pymc as pm
    import pytensor.tensor as pt

    p = BERGMAN
    n_pat = d["y"].shape[0]
    idx = _grid_index(d["times"], d["mask"], BERGMAN_DT)
    n_steps = int(idx.max())
    half = np.arange(2 * n_steps + 1) * BERGMAN_DT / 2
    ins = np.stack([np.interp(half, k, v) for k, v in zip(d["knots"], d["insulin"], strict=True)])
    dev = (ins - d["ib"][:, None]).T  # (2 n_steps + 1, P): I(t) - Ib on the half-step grid
    i_start, i_mid, i_end = dev[0:-1:2], dev[1::2], dev[2::2]
    with pm.Model() as model:
        mu = pm.Normal("mu", p["mu_loc"], p["mu_scale"], shape=5)
        omega = pm.HalfNormal("omega", p["omega_scale"], shape=5)
        s_prop = pm.HalfNormal("sigma_prop", p["sigma_prop_scale"])
        eta = pm.Normal("eta", 0.0, 1.0, shape=(n_pat, 5))
        theta = pm.Deterministic("theta", pt.exp(mu + omega * eta))
        sg, p2, si, gb = theta[:, 0], theta[:, 1], theta[:, 2], theta[:, 3]

        def f(y, stage, seq, rest):
            sg_, p2_, si_, gb_ = rest
            insulin = seq[stage]
            g, x = y[:, 0], y[:, 1]
            return pt.stack([-(sg_ + x) * g + sg_ * gb_, -p2_ * x + p2_ * si_ * insulin], axis=1)

        y0 = pt.stack([theta[:, 4], pt.zeros(n_pat)], axis=1)
        ys = _rk4(f, y0, n_steps, BERGMAN_DT, sequences=tuple(pt.as_tensor(s) for s in (i_start, i_mid, i_end)),
                  non_sequences=(sg, p2, si, gb))  # fmt: skip
        rows = np.broadcast_to(np.arange(n_pat)[:, None], idx.shape)
        glucose = ys[idx - 1, rows, 0]
        m = d["mask"]
        pm.Normal("y", glucose[m], s_prop * pt.abs(glucose[m]), observed=d["y"][m])
    return model


def run(kind: str, csv, *, chains=2, warmup=1000, draws=1000, seed=1) -> dict:
    """Build and sample; returns draws (chain, draw, ...) of typical/omega/theta, stats, timings."""
    import pymc as pm

    t0 = time.perf_counter()
    if kind == "oral":
        model, names = oral_model(load_oral(csv)), ORAL["names"]
    else:
        model, names = bergman_model(load_bergman(csv)), BERGMAN["names"]
    model.compile_logp()
    model.compile_dlogp()
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    idata = pm.sample(draws=draws, tune=warmup, chains=chains, cores=chains, target_accept=0.9,
                      random_seed=seed, progressbar=False, compute_convergence_checks=False, model=model)  # fmt: skip
    t_wall = time.perf_counter() - t0
    pos, st = idata["posterior"], idata["sample_stats"]
    # PyMC 6 samples with nutpie by default and compiles its (numba) model inside
    # pm.sample; its own timer covers warm-up + sampling only.
    t_sample = float(st.attrs.get("sampling_time", pos.attrs.get("sampling_time", t_wall)))
    t_build += t_wall - t_sample
    return dict(
        names=names,
        typical=np.exp(pos["mu"].transpose("chain", "draw", ...).values),
        omega=pos["omega"].transpose("chain", "draw", ...).values,
        theta=pos["theta"].transpose("chain", "draw", ...).values,
        diverging=st["diverging"].values,
        num_steps=st["n_steps"].values,
        timings=dict(compile=t_build, run_total=t_build + t_sample, warmup_and_sampling=t_sample),
        chain_method="parallel (nutpie)",
        crashes=[],
    )
