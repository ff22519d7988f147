"""Cost of one NUTS leapfrog step against one log-density gradient evaluated alone.

NUTS time = (leapfrog steps) x (cost of one step), and one step should cost about one
gradient of the potential. This times, in ONE process and interleaved (same load), on one
chain and one CPU device:

* ``grad``: the jitted ``value_and_grad`` of the cohort potential (``-log density`` in the
  unconstrained space, transforms and Jacobians included, the data as arguments: exactly
  the function twin_uq's sampler differentiates), one call from Python (median of 200
  calls per repeat: it includes Python's dispatch of the call);
* ``grad_loop``: the same gradient ``--steps`` times inside one compiled ``lax.fori_loop``
  (no dispatch per call: the floor of any compiled sampler);
* ``leapfrog_loop``: NumPyro's velocity-Verlet leapfrog (the integrator NUTS uses)
  ``--steps`` times in one compiled loop;
* ``twin_uq``: twin_uq's compiled sampler (``sample_nuts``: ``nuts`` + ``sample_chain``,
  constrained draws and the copy to NumPy included), sampler wall time / total leapfrog
  steps;
* ``numpyro``: NumPyro's own NUTS kernel (``numpyro.infer.hmc.hmc``, what ``MCMC(NUTS(...))``
  runs) in a compiled ``fori_loop`` on the same potential, start, step size and inverse mass;
* ``numpyro_pytree``: the same with the position a pytree of sites (dict), as twin_uq's
  kernel moved it before 2026-12-07 (the draws are the same; the cost per step is not);
BlackJAX's NUTS is not compared: it is not a dependency of twin_uq nor installed in its
environment (the output records whether it is importable).

Both samplers run ``warmup=0`` at the step size twin_uq's start finds (NumPyro's
``find_reasonable_step_size``) and the inverse mass of the fit's start
(``posterior_variance_guess``): no adaptation, so their trees are comparable and every
leapfrog step is counted (the sampler returns the steps of kept iterations only).

Every row is reported as the minimum and the median over ``--repeats`` of the cost per step
(on a shared machine the minimum is the uncontended cost; medians are mostly queueing).

Run: .venv/bin/python benchmarks/leapfrog_overhead.py --problem p1_oral_100 --draws 100
--steps 1000 --repeats 15
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from functools import partial
from pathlib import Path

import twin_uq as tq

tq.configure(host_devices=1)  # float64; one chain on one CPU device

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
from numpyro.infer.hmc import hmc  # noqa: E402
from numpyro.infer.hmc_util import euclidean_kinetic_energy, velocity_verlet  # noqa: E402
from numpyro.infer.util import potential_energy, unconstrain_fn  # noqa: E402

from twin_uq.inference.backends import sample_nuts  # noqa: E402
from twin_uq.inference.numpyro_model import cohort_program  # noqa: E402
from twin_uq.inference.nuts_kernel import NutsSettings  # noqa: E402
from twin_uq.inference.population import PopulationModel  # noqa: E402
from twin_uq.inference.prepare import prepare_fit  # noqa: E402

HERE = Path(__file__).resolve().parent
MODELS = {"oral": "one_compartment_oral", "bergman": "bergman_minimal"}


def setup(name: str):
    """Prepared fit, flat start, flat potential (data as argument) and start inverse mass."""
    kind = "oral" if "oral" in name else "bergman"
    model = tq.load_model(MODELS[kind])
    prep = prepare_fit(
        PopulationModel(model=model, centering="auto"),
        tq.read_cohort(HERE / "data" / f"{name}.csv"),
    )
    args = prep.program_args()
    init = {k: jnp.asarray(v) for k, v in prep.init_values().items()}
    supports_only = partial(cohort_program, prep.structure.prior_only())
    z0 = unconstrain_fn(supports_only, args, {}, init)
    flat0, unravel = ravel_pytree(z0)
    program = partial(cohort_program, prep.structure)

    def potential(flat, program_args):
        return potential_energy(program, program_args, {}, unravel(flat))

    mass = prep.posterior_variance_guess()
    inv_mass = ravel_pytree(
        {k: jnp.broadcast_to(mass.get(k, 1.0), v.shape) for k, v in z0.items()}
    )[0]
    return prep, args, init, flat0, unravel, potential, inv_mass, mass


def timed(fn, *a):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*a))
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="p1_oral_100")
    ap.add_argument("--draws", type=int, default=200, help="NUTS iterations per sampler run")
    ap.add_argument("--steps", type=int, default=2000, help="gradients / leapfrogs per loop")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats")
    ap.add_argument("--max-tree-depth", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "out" / "leapfrog_overhead.json"))
    opts = ap.parse_args()

    prep, args, init, flat0, unravel, potential, inv_mass, mass = setup(opts.problem)
    n_dim = int(flat0.shape[0])
    key = jax.random.key(0)

    # (a) the gradient alone, one call from Python; and in one compiled loop
    grad = jax.jit(jax.value_and_grad(potential))

    @jax.jit
    def grad_loop(flat, program_args):
        def body(_, carry):  # feed the gradient back so that no step can be hoisted
            x, acc = carry
            v, g = jax.value_and_grad(potential)(x, program_args)
            return x + 1e-12 * g, acc + v

        return jax.lax.fori_loop(0, opts.steps, body, (flat, 0.0))

    @jax.jit
    def leapfrog_loop(flat, program_args, step_size):
        init_fn, update_fn = velocity_verlet(
            lambda x: potential(x, program_args), euclidean_kinetic_energy
        )
        state = init_fn(flat, jnp.zeros_like(flat))
        return jax.lax.fori_loop(
            0, opts.steps, lambda _, s: update_fn(step_size, inv_mass, s), state
        )

    settings = NutsSettings(0, opts.draws, max_tree_depth=opts.max_tree_depth)

    def run_twin():
        return sample_nuts(prep.structure, settings, args, init, key, 1, "parallel", mass)

    compile_s = {}
    compile_s["grad"], _ = timed(grad, flat0, args)
    compile_s["grad_loop"], _ = timed(grad_loop, flat0, args)
    compile_s["twin_uq"], (_, stats, _, _) = timed(run_twin)
    step_size = float(stats["step_size"][0, 0])
    compile_s["leapfrog_loop"], _ = timed(leapfrog_loop, flat0, args, step_size)

    # NumPyro's own NUTS kernel (the one ``MCMC(NUTS(...))`` runs) in a compiled loop.
    # ``MCMC.run`` itself is not timed: its ``fori_collect`` jits a new closure, so every
    # run compiles again.
    def numpyro_loop(potential_gen, start):
        """NumPyro's NUTS kernel from ``start`` (a flat vector or a pytree), ``draws`` times."""
        init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen)

        @jax.jit
        def run(start, program_args, rng_key):
            state = init_kernel(
                start, 0, step_size=step_size, adapt_step_size=False, adapt_mass_matrix=False,
                inverse_mass_matrix=inv_mass, max_tree_depth=opts.max_tree_depth,
                model_args=(program_args,), rng_key=rng_key,
            )  # fmt: skip

            def body(_, carry):
                st, n = carry
                st = sample_kernel(st, model_args=(program_args,))
                return st, n + st.num_steps

            return jax.lax.fori_loop(0, opts.draws, body, (state, 0))[1]

        return lambda: run(start, args, jax.random.key(1))

    # the flat position (twin_uq's kernel since 2026-12-07) and the pytree one (before)
    run_numpyro = numpyro_loop(lambda a: partial(potential, program_args=a), flat0)
    program = partial(cohort_program, prep.structure)
    z0 = unravel(flat0)
    run_pytree = numpyro_loop(lambda a: lambda z: potential_energy(program, a, {}, z), z0)

    compile_s["numpyro"], _ = timed(run_numpyro)
    compile_s["numpyro_pytree"], _ = timed(run_pytree)
    try:
        import blackjax  # noqa: F401

        have_blackjax = True
    except ImportError:
        have_blackjax = False

    per_step: dict[str, list[float]] = {
        k: []
        for k in ("grad", "grad_loop", "leapfrog_loop", "twin_uq", "numpyro", "numpyro_pytree")
    }
    steps_per_iter: dict[str, list[float]] = {"twin_uq": [], "numpyro": [], "numpyro_pytree": []}
    for _ in range(opts.repeats):
        calls = []
        for _ in range(200):
            t, _ = timed(grad, flat0, args)
            calls.append(t)
        per_step["grad"].append(float(np.median(calls)))
        t, _ = timed(grad_loop, flat0, args)
        per_step["grad_loop"].append(t / opts.steps)
        t, _ = timed(leapfrog_loop, flat0, args, step_size)
        per_step["leapfrog_loop"].append(t / opts.steps)
        t, (_, stats, _, _) = timed(run_twin)
        n = float(np.sum(stats["n_steps"]))
        per_step["twin_uq"].append(t / n)
        steps_per_iter["twin_uq"].append(n / opts.draws)
        for name, fn in (("numpyro", run_numpyro), ("numpyro_pytree", run_pytree)):
            t, n_steps = timed(fn)
            n = float(np.sum(n_steps))
            per_step[name].append(t / n)
            steps_per_iter[name].append(n / opts.draws)

    grad_ms = 1e3 * float(np.min(per_step["grad"]))
    rows = {
        k: dict(
            ms_min=1e3 * float(np.min(v)),
            ms_median=1e3 * float(np.median(v)),
            ratio_to_grad_min=1e3 * float(np.min(v)) / grad_ms,
        )
        for k, v in per_step.items()
    }
    for k, v in steps_per_iter.items():
        rows[k]["leapfrog_per_iter"] = float(np.mean(v))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    result = dict(
        problem=opts.problem, n_dim=n_dim, draws=opts.draws, steps=opts.steps,
        repeats=opts.repeats, step_size=step_size, commit=commit,
        device=f"{jax.default_backend()}: {jax.devices()[0].device_kind}",
        blackjax="not installed" if not have_blackjax else "installed, not yet compared",
        compile_s=compile_s, per_step=rows,
    )  # fmt: skip
    print(json.dumps(result, indent=1), flush=True)
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
