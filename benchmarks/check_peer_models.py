"""Do the peers compute the same posterior as the model they stand for? A check, not a timing.

For an oral problem (single or multiple dosing), each peer's log density (Stan through
PyStan, PyMC, NumPyro + diffrax by hand) is evaluated at two points of the unconstrained
space: the simulation's truth and a perturbation of it. The *difference* between the two
(normalising constants of the half-normal priors cancel) is compared with an independent
reference: the analytic one-compartment solution, summed over doses (superposition), with
the same priors and the log-Jacobians of the log-transformed scale parameters.

    .venv/bin/python benchmarks/check_peer_models.py p1_oral_md_12 [--peers stan pymc handwritten]

Each peer runs in its own process (the hand-written peer sets JAX flags at import).
Prints one line per peer; exits non-zero if a difference is off by more than ``--tol``
(default 1e-3 in log density: the peers' ODE tolerances, rtol 1e-6 for the adaptive
solvers and RK4 with a 0.05 h step, give errors of that order summed over the data).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peer_data import ORAL, load_oral, log_offsets  # noqa: E402


def points(name: str) -> tuple[dict, dict]:
    """Truth and a perturbed point, in natural parameters (mu, omega, sigmas, eta)."""
    truth = json.loads((HERE / "data" / f"{name}_truth.json").read_text())
    d = load_oral(HERE / "data" / f"{name}.csv")
    names = ORAL["names"]
    mu = np.log([truth["typical"][p] for p in names])
    omega = np.array([truth["omega"][p] for p in names])
    theta = np.array([[truth["theta"][i][p] for p in names] for i in d["ids"]])
    eta = (np.log(theta) - mu - log_offsets("oral", d)) / omega
    a = dict(mu=mu, omega=omega, sigma_add=float(truth["sigma_add"]["concentration"]),
             sigma_prop=float(truth["sigma_prop"]["concentration"]), eta=eta)  # fmt: skip
    b = dict(mu=mu + np.array([0.1, -0.05, 0.08]), omega=omega * 1.2,
             sigma_add=a["sigma_add"] * 1.3, sigma_prop=a["sigma_prop"] * 0.9, eta=eta * 0.9)  # fmt: skip
    return a, b


def concentration(theta: np.ndarray, d: dict) -> np.ndarray:
    """Analytic one-compartment oral concentrations (P, T), superposed over doses."""
    ka, cl, v = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    k = cl / v
    conc = np.zeros_like(d["times"])
    for m in range(d["dose_times"].shape[1]):
        dt = d["times"] - d["dose_times"][:, m : m + 1]
        after = dt > 0
        dt = np.where(after, dt, 0.0)
        c = d["dose_amts"][:, m : m + 1] * ka / (v * (ka - k)) * (np.exp(-k * dt) - np.exp(-ka * dt))
        conc += np.where(after, c, 0.0)
    return conc


def reference_logp(x: dict, d: dict) -> float:
    """Log density in the unconstrained space (log omega, log sigmas), up to a constant."""
    p = ORAL
    theta = np.exp(x["mu"] + log_offsets("oral", d) + x["omega"] * x["eta"])
    f = concentration(theta, d)
    sd = np.sqrt(x["sigma_add"] ** 2 + (x["sigma_prop"] * f) ** 2)
    lp = stats.norm.logpdf(x["mu"], p["mu_loc"], p["mu_scale"]).sum()
    lp += stats.halfnorm.logpdf(x["omega"], scale=p["omega_scale"]).sum() + np.log(x["omega"]).sum()
    for s, scale in ((x["sigma_add"], p["sigma_add_scale"]), (x["sigma_prop"], p["sigma_prop_scale"])):
        lp += stats.halfnorm.logpdf(s, scale=scale) + np.log(s)
    lp += stats.norm.logpdf(x["eta"]).sum()
    lp += stats.norm.logpdf(d["y"], f, sd)[d["mask"]].sum()
    return float(lp)


def peer_logp(peer: str, name: str, x: dict) -> float:
    csv = HERE / "data" / f"{name}.csv"
    if peer == "stan":
        import stan
        import stan_peer

        code, data, _, _ = stan_peer._data_and_init("oral", csv)
        post = stan.build(code, data=data, random_seed=1)
        init = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in x.items()}
        return float(post.log_prob(post.unconstrain_pars(init)))
    if peer == "pymc":
        import pymc_peer

        model = pymc_peer.oral_model(load_oral(csv))
        point = dict(mu=x["mu"], omega_log__=np.log(x["omega"]), eta=x["eta"],
                     sigma_add_log__=np.log(x["sigma_add"]),
                     sigma_prop_log__=np.log(x["sigma_prop"]))  # fmt: skip
        return float(model.compile_logp()(point))
    if peer == "handwritten":
        import handwritten_numpyro as hw
        import jax.numpy as jnp
        from numpyro.infer.util import potential_energy

        data = {k: jnp.asarray(v) for k, v in load_oral(csv).items() if k != "ids"}
        params = dict(mu=x["mu"], omega=np.log(x["omega"]), eta=x["eta"],
                      sigma_add=np.log(x["sigma_add"]), sigma_prop=np.log(x["sigma_prop"]))  # fmt: skip
        params = {k: jnp.asarray(v) for k, v in params.items()}
        return -float(potential_energy(hw.oral_model, (data,), {}, params))
    raise ValueError(f"unknown peer {peer!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("problem")
    ap.add_argument("--peers", nargs="*", default=["stan", "pymc", "handwritten"])
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    xa, xb = points(a.problem)
    if a.worker:
        diff = peer_logp(a.worker, a.problem, xa) - peer_logp(a.worker, a.problem, xb)
        print("RESULT", diff, flush=True)
        return
    d = load_oral(HERE / "data" / f"{a.problem}.csv")
    ref = reference_logp(xa, d) - reference_logp(xb, d)
    print(f"{a.problem}: reference log p(truth) - log p(perturbed) = {ref:.6f}")
    failed = False
    for peer in a.peers:
        out = subprocess.run([sys.executable, __file__, a.problem, "--worker", peer],
                             capture_output=True, text=True, cwd=HERE)  # fmt: skip
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not lines:
            print(f"  {peer}: failed: {out.stderr[-800:]}")
            failed = True
            continue
        diff = float(lines[-1].split()[1])
        ok = abs(diff - ref) <= a.tol
        failed |= not ok
        print(f"  {peer}: {diff:.6f} (error {diff - ref:+.2e}) {'ok' if ok else 'WRONG'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
