"""Cost of one log-density gradient: twin_uq's program vs the hand-written NumPyro+diffrax model.

NUTS time = (leapfrog steps) x (cost of one gradient). This times the jitted
``value_and_grad`` of each tool's potential at its starting point, interleaved in one
process (same load), median of repeats, compile timed separately.

Run: .venv/bin/python benchmarks/gradient_cost.py [problem ...]
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

import handwritten_numpyro as hw  # sets 2 host devices and x64 before jax starts
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import init_to_median
from numpyro.infer.util import initialize_model

import twin_uq as tq
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prepare import prepare_fit

# float64; the 2 host devices handwritten_numpyro asked for (XLA_FLAGS) are kept
tq.configure()

HERE = Path(__file__).resolve().parent
MODELS = {"oral": "one_compartment_oral", "bergman": "bergman_minimal"}


def potentials(name):
    kind = "oral" if "oral" in name else "bergman"
    csv = HERE / "data" / f"{name}.csv"
    model = tq.load_model(MODELS[kind])
    prep = prepare_fit(PopulationModel(model=model, centering="auto"), tq.read_cohort(csv))
    prog = partial(cohort_program, prep.structure)
    out = {}
    key = jax.random.key(0)
    info = initialize_model(
        key, prog, model_args=prep.program_args(), init_strategy=init_to_median(num_samples=15)
    )
    out["twin_uq"] = (info.potential_fn, info.param_info.z)
    data = (hw.load_oral if kind == "oral" else hw.load_bergman)(csv)
    data_j = {k: jnp.asarray(v) for k, v in data.items() if k != "ids"}
    m = hw.oral_model if kind == "oral" else hw.bergman_model
    info = initialize_model(
        key, m, model_args=(data_j,), init_strategy=init_to_median(num_samples=15)
    )
    out["handwritten"] = (info.potential_fn, info.param_info.z)
    return out


def main(names):
    res = {}
    for name in names:
        pots = potentials(name)
        fns, comp = {}, {}
        for tool, (pf, z) in pots.items():
            f = jax.jit(jax.value_and_grad(pf))
            t0 = time.perf_counter()
            jax.block_until_ready(f(z))
            comp[tool] = time.perf_counter() - t0
            fns[tool] = (f, z)
        times = {t: [] for t in fns}
        for _ in range(30):  # interleaved repeats
            for tool, (f, z) in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f(z))
                times[tool].append(time.perf_counter() - t0)
        res[name] = {
            t: dict(
                compile_s=comp[t],
                grad_ms_median=1e3 * float(np.median(v)),
                grad_ms_min=1e3 * float(np.min(v)),
            )
            for t, v in times.items()
        }
        print(json.dumps({name: res[name]}), flush=True)
    (HERE / "out").mkdir(exist_ok=True)  # benchmarks/out is not in a fresh clone
    (HERE / "out" / "gradient_cost.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:] or ["p1_oral_12", "b1_bergman_20", "p1_oral_100"])
