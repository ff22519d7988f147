"""The Stan peer: the same hierarchical models in Stan, run through PyStan 3.

What a Stan user would write: one ``ode_rk45_tol`` solve per patient in a loop (one per
dosing interval when there are several doses; the
models are not stiff; Stan's manual recommends ``ode_rk45`` then, ``ode_bdf`` for stiff
systems), non-centred random effects, the same priors as twin_uq's defaults (numbers from
``handwritten_numpyro.py``), tolerances equal to twin_uq's (oral: rtol 1e-6, atol 1e-9;
Bergman: rtol 1e-6, atol 1e-10), ``adapt_delta`` 0.9, chains started at the prior medians
(``init``; twin_uq also starts there). The measured insulin of the Bergman problem is
linearly interpolated inside the right-hand side, as ``jnp.interp`` does in the NumPyro
peer.

PyStan 3 is an optional benchmark dependency: ``uv sync --group bench``. Used by
``fit_benchmark.py --worker stan PROBLEM``; build (C++ compilation) is timed apart from
sampling. Chains run in parallel processes (httpstan).
"""

from __future__ import annotations

import time

import numpy as np
from peer_data import BERGMAN, ORAL, load_bergman, load_oral, log_offsets

ORAL_STAN = """
functions {
  vector rhs(real t, vector y, real ka, real k) {
    vector[2] dy;
    dy[1] = -ka * y[1];
    dy[2] = ka * y[1] - k * y[2];
    return dy;
  }
}
data {
  int<lower=1> P;
  int<lower=1> T;
  array[P] int<lower=1, upper=T> n_obs;
  array[P, T] real times;
  array[P, T] real y;
  vector[P] dose;
  vector[P] wt;
  vector[3] mu_loc;
  vector[3] mu_scale;
  vector[3] omega_scale;
  vector[3] allo_exp;
  real sigma_add_scale;
  real sigma_prop_scale;
}
parameters {
  vector[3] mu;
  vector<lower=0>[3] omega;
  real<lower=0> sigma_add;
  real<lower=0> sigma_prop;
  array[P] vector[3] eta;
}
transformed parameters {
  array[P] vector[3] theta;
  for (i in 1:P) theta[i] = exp(mu + allo_exp * log(wt[i] / 70) + omega .* eta[i]);
}
model {
  mu ~ normal(mu_loc, mu_scale);
  omega ~ normal(0, omega_scale);
  sigma_add ~ normal(0, sigma_add_scale);
  sigma_prop ~ normal(0, sigma_prop_scale);
  for (i in 1:P) {
    eta[i] ~ std_normal();
    array[n_obs[i]] vector[2] s = ode_rk45_tol(rhs, [dose[i], 0]', 0.0, times[i, 1:n_obs[i]],
                                               1e-6, 1e-9, 100000, theta[i][1],
                                               theta[i][2] / theta[i][3]);
    for (j in 1:n_obs[i]) {
      real f = s[j][2] / theta[i][3];
      y[i, j] ~ normal(f, sqrt(square(sigma_add) + square(sigma_prop * f)));
    }
  }
}
"""

# Several oral doses: what a Stan user writes for boluses with an ODE solver: one
# ``ode_rk45_tol`` call per dosing interval, from the dose to the next dose (the state
# there starts the next interval, plus the dose) or to the last observation. The program
# is the single-dose one with dose times and amounts as data and this loop over patients.
_ORAL_SINGLE_LOOP = "  for (i in 1:P) {\n    eta[i] ~ std_normal();\n    array[n_obs[i]]"
_ORAL_MD_LOOP = """  for (i in 1:P) {
    real ka = theta[i][1];
    real k = theta[i][2] / theta[i][3];
    vector[2] state = [0, 0]';
    int j = 1;
    eta[i] ~ std_normal();
    for (d in 1:D) {
      real t_end = d < D ? dose_time[i, d + 1] : positive_infinity();
      int j_end = j;
      while (j_end <= n_obs[i] && times[i, j_end] < t_end) j_end += 1;
      int n_seg = j_end - j;
      state[1] += dose_amt[i, d];
      if (d < D) {
        array[n_seg + 1] real ts;
        for (m in 1:n_seg) ts[m] = times[i, j + m - 1];
        ts[n_seg + 1] = t_end;
        array[n_seg + 1] vector[2] s = ode_rk45_tol(rhs, state, dose_time[i, d], ts, 1e-6,
                                                    1e-9, 100000, ka, k);
        for (m in 1:n_seg) {
          real f = s[m][2] / theta[i][3];
          y[i, j + m - 1] ~ normal(f, sqrt(square(sigma_add) + square(sigma_prop * f)));
        }
        state = s[n_seg + 1];
      } else if (n_seg > 0) {
        array[n_seg] vector[2] s = ode_rk45_tol(rhs, state, dose_time[i, d],
                                                times[i, j:(j_end - 1)], 1e-6, 1e-9, 100000,
                                                ka, k);
        for (m in 1:n_seg) {
          real f = s[m][2] / theta[i][3];
          y[i, j + m - 1] ~ normal(f, sqrt(square(sigma_add) + square(sigma_prop * f)));
        }
      }
      j = j_end;
    }
  }
}
"""
ORAL_MD_STAN = (
    ORAL_STAN.replace("  int<lower=1> T;\n", "  int<lower=1> T;\n  int<lower=1> D;\n")
    .replace("  vector[P] dose;\n", "  array[P, D] real dose_time;\n  array[P, D] real dose_amt;\n")
    .split(_ORAL_SINGLE_LOOP)[0]
    + _ORAL_MD_LOOP
)

BERGMAN_STAN = """
functions {
  real interp(real t, vector knots, vector v) {
    int n = rows(knots);
    if (t <= knots[1]) return v[1];
    for (j in 2:n) {
      if (t <= knots[j]) {
        real w = (t - knots[j - 1]) / (knots[j] - knots[j - 1]);
        return v[j - 1] + w * (v[j] - v[j - 1]);
      }
    }
    return v[n];
  }
  vector rhs(real t, vector y, vector th, vector knots, vector ins, real ib) {
    vector[2] dy;
    real insulin = interp(t, knots, ins);
    dy[1] = -(th[1] + y[2]) * y[1] + th[1] * th[4];
    dy[2] = -th[2] * y[2] + th[2] * th[3] * (insulin - ib);
    return dy;
  }
}
data {
  int<lower=1> P;
  int<lower=1> T;
  int<lower=2> K;
  array[P] int<lower=1, upper=T> n_obs;
  array[P, T] real times;
  array[P, T] real y;
  array[P] vector[K] knots;
  array[P] vector[K] insulin;
  vector[P] ib;
  vector[5] mu_loc;
  vector[5] mu_scale;
  vector[5] omega_scale;
  real sigma_prop_scale;
}
parameters {
  vector[5] mu;
  vector<lower=0>[5] omega;
  real<lower=0> sigma_prop;
  array[P] vector[5] eta;
}
transformed parameters {
  array[P] vector[5] theta;
  for (i in 1:P) theta[i] = exp(mu + omega .* eta[i]);
}
model {
  mu ~ normal(mu_loc, mu_scale);
  omega ~ normal(0, omega_scale);
  sigma_prop ~ normal(0, sigma_prop_scale);
  for (i in 1:P) {
    eta[i] ~ std_normal();
    array[n_obs[i]] vector[2] s = ode_rk45_tol(rhs, [theta[i][5], 0]', 0.0,
                                               times[i, 1:n_obs[i]], 1e-6, 1e-10, 100000,
                                               theta[i], knots[i], insulin[i], ib[i]);
    for (j in 1:n_obs[i]) y[i, j] ~ normal(s[j][1], sigma_prop * abs(s[j][1]));
  }
}
"""


def _halfnormal_median(scale):
    return 0.6745 * np.asarray(scale, float)


def _data_and_init(kind: str, csv):
    if kind == "oral":
        d, p = load_oral(csv), ORAL
        data = dict(dose=d["dose"], wt=d["wt"], allo_exp=p["allo_exp"],
                    sigma_add_scale=p["sigma_add_scale"], sigma_prop_scale=p["sigma_prop_scale"])  # fmt: skip
        init = dict(sigma_add=float(_halfnormal_median(p["sigma_add_scale"])),
                    sigma_prop=float(_halfnormal_median(p["sigma_prop_scale"])))  # fmt: skip
        code, k = ORAL_STAN, 3
        if d["dose_times"].shape[1] > 1:  # several doses: one ODE solve per dosing interval
            data.update(D=d["dose_times"].shape[1], dose_time=d["dose_times"],
                        dose_amt=d["dose_amts"])  # fmt: skip
            del data["dose"]
            code = ORAL_MD_STAN
    else:
        d, p = load_bergman(csv), BERGMAN
        data = dict(K=d["knots"].shape[1], knots=d["knots"], insulin=d["insulin"], ib=d["ib"],
                    sigma_prop_scale=p["sigma_prop_scale"])  # fmt: skip
        init = dict(sigma_prop=float(_halfnormal_median(p["sigma_prop_scale"])))
        code, k = BERGMAN_STAN, 5
    n_pat, n_t = d["y"].shape
    data.update(P=n_pat, T=n_t, n_obs=d["mask"].sum(1).astype(int), times=d["times"],
                y=np.where(d["mask"], d["y"], 0.0), mu_loc=p["mu_loc"], mu_scale=p["mu_scale"],
                omega_scale=p["omega_scale"])  # fmt: skip
    init.update(mu=p["mu_loc"], omega=_halfnormal_median(p["omega_scale"]),
                eta=np.zeros((n_pat, k)))  # fmt: skip
    jsonable = {key: (v.tolist() if isinstance(v, np.ndarray) else v) for key, v in data.items()}
    init = {key: (v.tolist() if isinstance(v, np.ndarray) else v) for key, v in init.items()}
    return code, jsonable, init, p["names"]


def _by_chain(fit, name: str, chains: int) -> np.ndarray:
    """PyStan's ``fit[name]`` is (*dims, draw*chains) chain-fastest; return (chain, draw, *dims)."""
    x = np.asarray(fit[name])
    dims = x.shape[:-1]
    x = x.reshape(*dims, -1, chains)
    return np.moveaxis(x, (-1, -2), (0, 1))


def warm_start_inits(kind: str, csv, start: dict, chains: int) -> list[dict]:
    """Stan initial values, one per chain, from another sampler's posterior draws.

    ``start`` holds draws of the same model in its natural parameters: ``mu`` (chain,
    parameter; log typical values), ``omega`` (chain, parameter), ``theta`` (chain, patient,
    parameter) and the residual SDs (``sigma_prop``, and ``sigma_add`` for the oral model),
    one draw per chain. They are mapped to this program's non-centred parameters:
    ``eta = (log theta - mu - allometric offset) / omega``. Chain ``c`` starts at draw ``c``,
    so the chains start apart, as R-hat needs.
    """
    offset = log_offsets(kind, load_oral(csv) if kind == "oral" else load_bergman(csv))
    if np.shape(start["theta"])[0] < chains:
        raise ValueError(f"warm start has {np.shape(start['theta'])[0]} draws, {chains} chains")
    inits = []
    for c in range(chains):
        mu, omega = np.asarray(start["mu"][c]), np.asarray(start["omega"][c])
        eta = (np.log(start["theta"][c]) - mu - offset) / omega
        init = dict(mu=mu.tolist(), omega=omega.tolist(), eta=eta.tolist(),
                    sigma_prop=float(start["sigma_prop"][c]))  # fmt: skip
        if kind == "oral":
            init["sigma_add"] = float(start["sigma_add"][c])
        inits.append(init)
    return inits


def run(
    kind: str, csv, *, chains=2, warmup=1000, draws=1000, seed=1, warm_start=None,
    adapt_windows=None,
) -> dict:
    """Build and sample; returns draws (chain, draw, ...) of typical/omega/theta, stats, timings.

    ``warm_start``: draws of another fit (see ``warm_start_inits``) to start each chain at
    instead of the prior medians; ``adapt_windows``: Stan's ``(init_buffer, window,
    term_buffer)`` for a short warm-up from such a start (Stan's defaults 75 / 25 / 50
    assume a start far from the typical set).
    """
    import stan

    code, data, init, names = _data_and_init(kind, csv)
    inits = [init] * chains if warm_start is None else warm_start_inits(kind, csv, warm_start, chains)
    extra = {}
    if adapt_windows is not None:
        extra = dict(zip(("init_buffer", "window", "term_buffer"), map(int, adapt_windows), strict=True))
    t0 = time.perf_counter()
    posterior = stan.build(code, data=data, random_seed=seed)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = posterior.sample(num_chains=chains, num_warmup=warmup, num_samples=draws,
                           delta=0.9, init=inits, **extra)  # fmt: skip
    t_sample = time.perf_counter() - t0
    theta = _by_chain(fit, "theta", chains)  # (chain, draw, patient, parameter)
    return dict(
        names=names,
        typical=np.exp(_by_chain(fit, "mu", chains)),
        omega=_by_chain(fit, "omega", chains),
        theta=theta,
        diverging=_by_chain(fit, "divergent__", chains),
        num_steps=_by_chain(fit, "n_leapfrog__", chains),
        timings=dict(compile=t_build, run_total=t_build + t_sample, warmup_and_sampling=t_sample),
        chain_method="parallel (httpstan processes)",
        crashes=[],
        start="warm (another fit's draws)" if warm_start is not None else "prior medians",
        adapt_windows=extra or None,
    )


def gradient_seconds(kind: str, csv, *, repeats: int = 20) -> dict:
    """Seconds of one log-density gradient of the Stan model at its starting point.

    Through PyStan 3 every ``grad_log_prob`` call is an HTTP request to httpstan; its
    overhead is measured on ``log_prob`` of the same point and reported beside it, so the
    gradient's own cost is ``grad - overhead`` at most. Median of ``repeats``.
    """
    import stan

    code, data, init, _ = _data_and_init(kind, csv)
    t0 = time.perf_counter()
    posterior = stan.build(code, data=data, random_seed=1)
    build = time.perf_counter() - t0
    x = posterior.unconstrain_pars(init)

    def median_seconds(fn):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    posterior.grad_log_prob(x)
    return dict(
        build_s=build,
        grad_log_prob_s=median_seconds(posterior.grad_log_prob),
        log_prob_s=median_seconds(posterior.log_prob),
        n_unconstrained=len(x),
    )


if __name__ == "__main__":  # .venv/bin/python benchmarks/stan_peer.py p1_oral_100
    import json
    import sys
    from pathlib import Path

    name = sys.argv[1]
    kind = "oral" if "oral" in name else "bergman"
    csv = Path(__file__).resolve().parent / "data" / f"{name}.csv"
    print(json.dumps(dict(problem=name, **gradient_seconds(kind, csv))))
