"""The one NUTS driver: the compiled loop keeps exactly the post-warm-up states of NumPyro's
own kernel, and its progress bar reports from inside the loop without changing a draw."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

import twin_uq as tq
from twin_uq.inference import nuts_kernel
from twin_uq.inference.backends import sample_nuts
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.nuts_kernel import NutsSettings, nuts, run_chains, sample_chain
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prepare import prepare_fit

DESIGN = tq.Design(times=[0.25, 1.0, 3.0, 8.0, 24.0], doses=[tq.Bolus(0.0, 100.0, 1)])
WARMUP, DRAWS = 25, 15


def _reference_chain(prepared, key):
    """The same kernel driven one iteration at a time from Python (no scan, no buffer)."""
    program = partial(cohort_program, prepared.structure)
    args = prepared.program_args()
    z0 = unconstrain_fn(program, args, {}, prepared.init_values())
    mass = prepared.posterior_variance_guess()
    start = {
        k: jnp.broadcast_to(jnp.asarray(mass.get(k, 1.0), float), v.shape) for k, v in z0.items()
    }
    init_kernel, sample_kernel = hmc(
        potential_fn_gen=lambda *a: lambda z: potential_energy(program, a, {}, z),
        algo="NUTS",
    )
    state = init_kernel(z0, WARMUP, inverse_mass_matrix=ravel_pytree(start)[0],
                        target_accept_prob=0.9, max_tree_depth=10, model_args=args,
                        rng_key=key)  # fmt: skip
    step = jax.jit(lambda st: sample_kernel(st, model_args=args))
    kept, steps, warm_div = [], [], 0
    for i in range(WARMUP + DRAWS):
        state = step(state)
        if i < WARMUP:
            warm_div += int(state.diverging)
        else:
            kept.append(constrain_fn(program, args, {}, state.z))
            steps.append(int(state.num_steps))
    stacked = {k: np.stack([np.asarray(d[k]) for d in kept]) for k in kept[0]}
    return stacked, np.asarray(steps), warm_div


def test_compiled_loop_keeps_the_post_warmup_states_in_order():
    cohort = tq.simulate_cohort("one_compartment_iv", 4, DESIGN, seed=5).cohort
    prepared = prepare_fit(
        PopulationModel(model=tq.load_model("one_compartment_iv"), centering=0.0), cohort
    )
    key = jax.random.key(11)
    samples, stats, warm_div, _ = sample_nuts(
        prepared.structure, NutsSettings(WARMUP, DRAWS, 0.9, 10, False),
        prepared.program_args(), prepared.init_values(), key, chains=1,
        mass=prepared.posterior_variance_guess(),
    )  # fmt: skip
    ref, ref_steps, ref_warm_div = _reference_chain(prepared, jax.random.split(key, 1)[0])
    assert set(samples) == set(ref)
    np.testing.assert_array_equal(stats["n_steps"][0], ref_steps)
    assert warm_div == ref_warm_div
    for name, value in ref.items():
        assert samples[name].shape == (1, *value.shape)
        # Same kernel, same keys: the same trajectory up to reassociation between the two
        # compilations, which HMC's dynamics amplify (seen: up to 6e-7 on these O(1)
        # quantities after 26-40 iterations). A kept row off by one iteration differs by
        # a whole transition, O(0.1):
        np.testing.assert_allclose(samples[name][0], value, rtol=1e-5, atol=1e-5, err_msg=name)
    for name in ("mu", "z"):  # the tolerance above tells neighbouring draws apart
        assert np.abs(samples[name][0][1:] - ref[name][:-1]).max() > 1e-2


def _funnel_chain(statics, shared, per_chain, progress):
    """Neal's funnel (v ~ N(0, 3), x_i ~ N(0, exp(v / 2))): a target that diverges."""
    settings = statics
    z0, key = per_chain

    def potential_gen(scale):
        def potential(z):
            v, x = z["v"], z["x"]
            return 0.5 * (v / scale) ** 2 + 0.5 * jnp.sum(x**2) * jnp.exp(-v) + 0.5 * x.size * v

        return potential

    kernel = nuts(potential_gen, settings)
    state = kernel.init(z0, key, (shared,))
    return sample_chain(kernel, state, (shared,), settings, progress)


@pytest.mark.parametrize("method", ["parallel", "vectorized"])
def test_progress_bar_counts_every_iteration_and_divergence_and_changes_no_draw(
    monkeypatch, method
):
    opened = []

    class RecordedBar(nuts_kernel.ChainProgress):
        def __enter__(self):
            opened.append(self)
            return super().__enter__()

    monkeypatch.setattr(nuts_kernel, "ChainProgress", RecordedBar)
    settings = NutsSettings(warmup=60, draws=90)
    chains = 3  # more chains than one pmap round when the host has 2 devices
    z0 = {"v": jnp.zeros(chains), "x": jnp.ones((chains, 9))}
    keys = jax.random.split(jax.random.key(3), chains)

    def run(progress):
        outs, _ = run_chains(
            _funnel_chain, settings, jnp.asarray(3.0), (z0, keys), chains=chains,
            warmup=settings.warmup, draws=settings.draws, chain_method=method,
            progress=progress,
        )  # fmt: skip
        return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)

    quiet, shown = run(False), run(True)
    for a, b in zip(jax.tree.leaves(quiet), jax.tree.leaves(shown), strict=True):
        assert np.array_equal(a, b)
    (bar,) = opened
    kept, info, warm_div = shown
    assert kept.shape == (chains, settings.draws, 10)
    np.testing.assert_array_equal(bar.done, settings.warmup + settings.draws)
    # The funnel's neck makes NUTS diverge: the counts compared below are not all zero.
    assert info.diverging.sum() > 0
    np.testing.assert_array_equal(bar.divergences[:, 1], info.diverging.sum(axis=1))
    np.testing.assert_array_equal(bar.divergences[:, 0], warm_div)
    assert bar._bar.n == chains * (settings.warmup + settings.draws)


def test_fit_draws_are_the_same_with_the_progress_bar():
    cohort = tq.simulate_cohort("one_compartment_iv", 4, DESIGN, seed=5).cohort
    prepared = prepare_fit(
        PopulationModel(model=tq.load_model("one_compartment_iv"), centering=0.0), cohort
    )
    args = (prepared.structure, NutsSettings(WARMUP, DRAWS, 0.9, 10, False),
            prepared.program_args(), prepared.init_values(), jax.random.key(11))  # fmt: skip
    runs = [
        sample_nuts(*args, chains=1, mass=prepared.posterior_variance_guess(), progress=p)
        for p in (False, True)
    ]
    quiet, shown = (jax.tree.leaves(r[:3]) for r in runs)
    for a, b in zip(quiet, shown, strict=True):
        assert np.array_equal(a, b)
