"""Shape buckets (``tq.fit(..., shape_buckets=True)``): what padding costs and what it samples.

Two measurements, written into benchmarks/RESULTS.md and docs/performance.md:

``gradient``: the cost of one log-density gradient of the cohort program at the cohort's
own shapes and padded to its buckets (e.g. 100 -> 112 patients), interleaved in one
process (same load), median of repeats.

``equivalence``: the same cohort fitted by NUTS with and without buckets (same seed, so
different random streams: the bucketed sampler also moves the ghosts' latents). Every
population quantity's posterior mean must agree within Monte Carlo error:
``|mean_a - mean_b| / sqrt(mcse_a² + mcse_b²)``, a standard normal if both sample the
same posterior; the largest of them over the population quantities is reported.

    python shape_buckets_check.py gradient [p1_oral_100 p1_oral_1000]
    python shape_buckets_check.py equivalence [--problem p1_oral_100 --patients 70]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial
from pathlib import Path

import jax
import numpy as np
from numpyro.infer.util import potential_energy, unconstrain_fn

import twin_uq as tq
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.prepare import prepare_fit

HERE = Path(__file__).resolve().parent
POPULATION = ("mu", "omega", "sigma_add", "sigma_prop")


def _cohort(problem: str, patients: int | None):
    cohort = tq.read_cohort(HERE / "data" / f"{problem}.csv", time_unit="h")
    return cohort.select(list(cohort.ids)[:patients]) if patients else cohort


def gradient(problems: list[str], repeats: int = 40) -> dict:
    """Median ms of one value-and-gradient, unpadded against bucketed, per problem."""
    out = {}
    model = tq.load_model("one_compartment_oral")
    for problem in problems:
        cohort = _cohort(problem, None)
        spec = tq.PopulationModel(model, centering="auto")
        fns = {}
        for name, buckets in (("own", False), ("bucketed", True)):
            prep = prepare_fit(spec, cohort, shape_buckets=buckets)
            z = unconstrain_fn(
                partial(cohort_program, prep.structure.prior_only()),
                prep.program_args(),
                {},
                prep.init_values(),
            )
            program = partial(cohort_program, prep.structure)
            f = jax.jit(jax.value_and_grad(lambda z, a, p=program: potential_energy(p, a, {}, z)))
            jax.block_until_ready(f(z, prep.program_args()))
            fns[name] = (f, z, prep.program_args(), prep.data.n_patients)
        times: dict = {k: [] for k in fns}
        for _ in range(repeats):  # interleaved: the same load for both
            for k, (f, z, args, _) in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f(z, args))
                times[k].append(time.perf_counter() - t0)
        ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        out[problem] = {
            "patients": {k: v[3] for k, v in fns.items()},
            "grad_ms_median": {k: round(v, 4) for k, v in ms.items()},
            "ratio": round(ms["bucketed"] / ms["own"], 3),
            "load_average": os.getloadavg()[0],
        }
        print(json.dumps({problem: out[problem]}), flush=True)
    return out


def equivalence(problem: str, patients: int, warmup: int, draws: int, seed: int) -> dict:
    """NUTS with and without buckets on one cohort: population means within MCSE."""
    cohort = _cohort(problem, patients)
    model = tq.load_model("one_compartment_oral")
    posts, seconds = {}, {}
    for name, buckets in (("own", False), ("bucketed", True)):
        t0 = time.perf_counter()
        posts[name] = tq.fit(
            model, cohort, chains=2, warmup=warmup, draws=draws, seed=seed, progress=False,
            shape_buckets=buckets,
        )  # fmt: skip
        seconds[name] = round(time.perf_counter() - t0, 1)
    rows = {}
    for var in POPULATION:
        if var not in posts["own"].posterior:
            continue
        a, b = posts["own"].posterior[var], posts["bucketed"].posterior[var]
        dims = [d for d in a.dims if d not in ("chain", "draw")]
        for index in np.ndindex(*[a.sizes[d] for d in dims]):
            sel = dict(zip(dims, index, strict=True))
            xa, xb = a.isel(sel).values, b.isel(sel).values
            if np.ptp(xa) == 0:  # a fixed effect's omega is 0
                continue
            mcse = [_mcse_mean(x) for x in (xa, xb)]
            z = (xa.mean() - xb.mean()) / np.hypot(*mcse)
            label = f"{var}[{','.join(str(a[d].values[i]) for d, i in sel.items())}]"
            rows[label] = {
                "own": round(float(xa.mean()), 5),
                "bucketed": round(float(xb.mean()), 5),
                "z": round(float(z), 2),
            }
    worst = max(abs(r["z"]) for r in rows.values())
    result = {
        "problem": problem,
        "patients": patients,
        "padded_to": json.loads(posts["bucketed"].idata.attrs["shape_buckets"])["to_patients"],
        "chains_warmup_draws": [2, warmup, draws],
        "seed": seed,
        "fit_seconds": seconds,
        "max_abs_z": worst,
        "quantities": len(rows),
        "rows": rows,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=1), flush=True)
    return result


def _mcse_mean(x: np.ndarray) -> float:
    """Monte Carlo SE of the mean of ``(chain, draw)`` draws (arviz_stats)."""
    from arviz_stats import mcse

    return float(mcse(x, method="mean"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("gradient", "equivalence"))
    ap.add_argument("problems", nargs="*", default=["p1_oral_100", "p1_oral_1000"])
    ap.add_argument("--problem", default="p1_oral_100")
    ap.add_argument("--patients", type=int, default=70)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tq.configure(host_devices=2, compilation_cache=False)
    if args.what == "gradient":
        gradient(args.problems)
    else:
        equivalence(args.problem, args.patients, args.warmup, args.draws, args.seed)


if __name__ == "__main__":
    main()
