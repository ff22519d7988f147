"""Solver robustness over the prior: every built-in model, many draws, no NaN, no exception.

For each model a small synthetic cohort is simulated and prepared exactly as ``tq.fit``
prepares it. Draws of every latent quantity (population means, between-patient SDs,
patient effects, residual SDs) come from the fit's own NumPyro program, so patients'
parameters are drawn as the population prior implies, including extreme ones. At every
draw the log density NUTS uses (``-potential_energy`` on the unconstrained scale) and its
gradient are evaluated, vectorised over draws. Each value must be

* finite, with a finite gradient, or
* exactly ``-inf`` *and* flagged as a failed solve by the engine's ``ok`` flag (what the
  fit counts as a solver failure),

never NaN, never an exception. The slow test sweeps 1000 draws of every model and prints
the counts (docs/guarantees.md lists them); the fast one 50 draws of two models (one
exact, one ODE).
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import potential_energy, unconstrain_fn

import twin_uq as tq
from twin_uq.inference.likelihood import ResidualParams, cohort_loglik
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prepare import PreparedFit, prepare_fit
from twin_uq.model.scales import latent_typical

N_PATIENTS = 4


def _designs() -> dict[str, tq.Design]:
    """A small, typical sampling design per built-in model (doses, signals, times)."""
    import sys

    pk = [0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0]
    wk = sys.modules[type(tq.load_model("windkessel3")).__module__]
    inflow = wk.half_sine_inflow(stroke_volume=70.0, heart_rate=75.0, n_beats=3, dt=0.02)
    knots = [0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100, 120, 150, 180.0]
    insulin = [10 + 90 * np.exp(-t / 8) + 20 * (t / 30) * np.exp(1 - t / 30) for t in knots]
    return {
        "one_compartment_iv": tq.Design(times=pk, doses=[tq.Bolus(0.0, 100.0, 1)]),
        "one_compartment_oral": tq.Design(times=pk, doses=[tq.Bolus(0.0, 100.0, 1)]),
        "one_compartment_oral_lag": tq.Design(times=pk, doses=[tq.Bolus(0.0, 100.0, 1)]),
        "one_compartment_transit_f": tq.Design(times=[0.25, *pk], doses=[tq.Bolus(0.0, 100.0, 1)]),
        "two_compartment": tq.Design(times=[*pk, 48.0], doses=[tq.Bolus(0.0, 100.0, 1)]),
        "two_compartment_lag": tq.Design(times=[*pk, 48.0], doses=[tq.Bolus(0.0, 100.0, 1)]),
        "one_compartment_transit": tq.Design(times=[0.25, *pk], doses=[tq.Bolus(0.0, 100.0, 1)]),
        "michaelis_menten_iv": tq.Design(times=pk, doses=[tq.Bolus(0.0, 500.0, 1)]),
        "michaelis_menten_oral": tq.Design(
            times=[*pk, 36.0], doses=[tq.Bolus(0.0, 300.0, 1), tq.Bolus(12.0, 300.0, 1)]
        ),
        "three_compartment": tq.Design(
            times=[0.1, 0.25, *pk, 48.0, 72.0], doses=[tq.Infusion(0.0, 100.0, 1.0, 1)]
        ),
        "pkpd_emax": tq.Design(
            times=pk, doses=[tq.Bolus(0.0, 100.0, 1)], outputs=["concentration", "effect"]
        ),
        "bergman_minimal": tq.Design(
            times=[2, 4, 8, 10, 15, 20, 30, 40, 60, 90, 120, 180.0],
            signals={"insulin": (knots, insulin)},
            covariates={"Ib": ("lognormal", 10.0, 0.1)},
        ),
        "glucose_meal": tq.Design(
            times=[0, 30, 60, 90, 120, 150, 180, 240, 300.0],
            doses=[
                tq.Bolus(30.0, 50.0, 1),  # 50 g carbohydrate
                tq.Bolus(30.0, 4.0, 2),  # 4 U rapid insulin
                tq.Infusion(0.0, 1.0 / 60.0, 1000.0, 2),  # basal 1 U/h
            ],
            covariates={"WT": ("lognormal", 70.0, 0.15)},
        ),
        "mitchell_schaeffer": tq.Design(
            times=list(np.arange(20.0, 1200.0, 40.0)),
            doses=[tq.Bolus(10.0 + 400.0 * k, 0.3, 1) for k in range(3)],
        ),
        "mitchell_schaeffer_restitution": tq.Design(  # times: pacing cycle lengths (ms)
            times=[300.0, 400.0, 500.0, 600.0, 800.0, 1000.0]
        ),
        "windkessel3": tq.Design(
            times=list(np.linspace(0.05, 2.35, 24)),
            signals={"inflow": (inflow.times, inflow.values)},
        ),
    }


def prepare(name: str, widen: float = 1.0) -> PreparedFit:
    """The fit's arrays for a small simulated cohort of model ``name``.

    ``widen`` multiplies the prior SDs of the log typical values and the prior scales of
    the between-patient SDs (a stress test beyond the model's own prior).
    """
    model = tq.load_model(name)
    sim = tq.simulate_cohort(model, N_PATIENTS, _designs()[name], seed=3)
    priors: dict[str, object] = {}
    if widen != 1.0:
        for p in model.parameters:
            # Centred on the typical value on the parameter's own scale (log or logit).
            priors[f"mu.{p.name}"] = (latent_typical(p), widen * p.prior_sd)
            if p.bsv:  # a fixed effect has no omega
                priors[f"omega.{p.name}"] = widen * p.bsv_prior_scale
    return prepare_fit(PopulationModel(model, priors=priors, centering=0.0), sim.cohort)


def make_sweep(prep: PreparedFit):
    """A compiled function: PRNG keys -> (log density, gradient, solves ok) per draw."""
    program = partial(cohort_program, prep.structure)
    args = prep.program_args()
    model, settings = prep.structure.model, prep.structure.settings
    n_out = len(model.outputs)
    unit = ResidualParams(add=jnp.ones(n_out), prop=jnp.ones(n_out), nu=jnp.asarray(1e6))

    def one(key):
        trace = handlers.trace(handlers.seed(program, key)).get_trace(*args)
        latent = {
            k: s["value"]
            for k, s in trace.items()
            if s["type"] == "sample" and not s["is_observed"]
        }
        u = unconstrain_fn(program, args, {}, latent)
        pe, grad = jax.value_and_grad(lambda u: potential_energy(program, args, {}, u))(u)
        flat_grad = jnp.concatenate([jnp.ravel(g) for g in jax.tree.leaves(grad)])
        _, ok = cohort_loglik(model, settings, trace["theta"]["value"], prep.data, unit)
        return -pe, flat_grad, jnp.all(ok)

    return jax.jit(jax.vmap(one))


def sweep(name: str, n_draws: int, batch: int, seed: int = 0, widen: float = 1.0) -> dict[str, int]:
    """Counts of finite, flagged -inf and bad (NaN, unflagged -inf, bad gradient) draws."""
    prep = prepare(name, widen)
    fn = make_sweep(prep)
    keys = jax.random.split(jax.random.key(seed), n_draws)
    logp, grad_ok, solve_ok = [], [], []
    for start in range(0, n_draws, batch):
        k = keys[start : start + batch]
        if k.shape[0] < batch:  # keep one shape: pad the last batch, drop the extra
            k = jnp.concatenate([k, keys[: batch - k.shape[0]]])
        lp, g, ok = fn(k)
        n = min(batch, n_draws - start)
        logp.append(np.asarray(lp)[:n])
        grad_ok.append(np.isfinite(np.asarray(g)).all(axis=1)[:n])
        solve_ok.append(np.asarray(ok)[:n])
    lp, gok, sok = (np.concatenate(x) for x in (logp, grad_ok, solve_ok))
    # the draws really differ (one key per draw), so the sweep covers the prior
    assert np.unique(lp[np.isfinite(lp)]).size == np.isfinite(lp).sum()
    return {
        "finite": int(np.sum(np.isfinite(lp) & gok & sok)),
        "-inf (solver failure flagged)": int(np.sum(np.isneginf(lp) & ~sok)),
        "NaN": int(np.sum(np.isnan(lp))),
        "-inf not flagged": int(np.sum(np.isneginf(lp) & sok)),
        "+inf": int(np.sum(np.isposinf(lp))),
        "finite but flagged": int(np.sum(np.isfinite(lp) & ~sok)),
        "non-finite gradient": int(np.sum(~gok)),
    }


def check(name: str, counts: dict[str, int], n_draws: int, usable: float = 0.5) -> None:
    print(f"\n{name}: {counts}")
    assert counts["finite"] + counts["-inf (solver failure flagged)"] == n_draws, counts
    assert counts["non-finite gradient"] == 0, counts  # also where the value is -inf
    if usable:
        # Most prior draws must be usable, or the sweep says little about the model.
        assert counts["finite"] >= usable * n_draws, counts


@pytest.mark.parametrize("name", ["one_compartment_oral", "bergman_minimal"])
def test_prior_draws_give_finite_or_flagged_log_density(name):
    check(name, sweep(name, n_draws=50, batch=50), 50)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(tq.list_models()))
def test_prior_sweep_1000_draws(name):
    start = time.monotonic()
    counts = sweep(name, n_draws=1000, batch=100)
    print(f"\n{name}: 1000 draws in {time.monotonic() - start:.0f} s")
    check(name, counts, 1000)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    sorted(set(tq.list_models()) - {"mitchell_schaeffer"}),  # implicit solver: 10 min
)
def test_three_times_wider_prior_never_gives_nan(name):
    # Far outside the prior, solves may fail: they must still be flagged -inf, never NaN.
    start = time.monotonic()
    counts = sweep(name, n_draws=1000, batch=100, seed=1, widen=3.0)
    print(f"\n{name} (3x wider prior): 1000 draws in {time.monotonic() - start:.0f} s")
    check(name, counts, 1000, usable=0.0)
