"""Cost of NONMEM dosing features: one log-density gradient with and without lag, F and SS.

Issue #26 asks that a 100-patient oral fit with lag time, bioavailability and steady-state
dosing cost at most 2x the gradient of the same fit without them. Two synthetic cohorts
of the same design (8 samples per patient over one dosing interval, 100 mg every 12 h):

* ``plain``: ``one_compartment_oral``, one bolus at time 0;
* ``lag_f_ss``: ``one_compartment_oral_lag`` (ALAG1, logit-normal F1), the same bolus
  given at steady state (``SS=1, II=12``), so every solve computes the closed-form
  steady state of the dosing-interval map, the lagged dose and its tails.

Both are fitted by the same program (``centering="auto"``); the jitted ``value_and_grad``
of each potential is timed at its starting point, interleaved in one process (same load),
median of 30 repeats, compile timed separately.

Run: .venv/bin/python benchmarks/dosing_cost.py [--patients 100]
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import jax
import numpy as np
from numpyro.infer import init_to_median
from numpyro.infer.util import initialize_model

import twin_uq as tq
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prepare import prepare_fit

tq.configure()

TIMES = [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 11.5]
CASES = {
    "plain": ("one_compartment_oral", tq.Bolus(0.0, 100.0, 1)),
    "lag_f_ss": ("one_compartment_oral_lag", tq.Bolus(0.0, 100.0, 1, ss=1, ii=12.0)),
}


def potential(model_name, dose, n_patients=100):
    design = tq.Design(times=TIMES, doses=[dose], covariates={"WT": ("lognormal", 70.0, 0.2)})
    sim = tq.simulate_cohort(model_name, n_patients, design, seed=7)
    model = tq.load_model(model_name)
    prep = prepare_fit(PopulationModel(model=model, centering="auto"), sim.cohort)
    info = initialize_model(
        jax.random.key(0),
        partial(cohort_program, prep.structure),
        model_args=prep.program_args(),
        init_strategy=init_to_median(num_samples=15),
    )
    return info.potential_fn, info.param_info.z


def main(n_patients: int):
    fns, compile_s = {}, {}
    for case, (name, dose) in CASES.items():
        pf, z = potential(name, dose, n_patients)
        f = jax.jit(jax.value_and_grad(pf))
        t0 = time.perf_counter()
        jax.block_until_ready(f(z))
        compile_s[case] = time.perf_counter() - t0
        fns[case] = (f, z)
    times = {c: [] for c in fns}
    for _ in range(30):
        for case, (f, z) in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(z))
            times[case].append(time.perf_counter() - t0)
    out = {
        c: {
            "compile_s": round(compile_s[c], 2),
            "grad_ms_median": round(1e3 * float(np.median(v)), 3),
            "grad_ms_min": round(1e3 * float(np.min(v)), 3),
        }
        for c, v in times.items()
    }
    out["ratio_median"] = round(
        out["lag_f_ss"]["grad_ms_median"] / out["plain"]["grad_ms_median"], 2
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    main(parser.parse_args().patients)
