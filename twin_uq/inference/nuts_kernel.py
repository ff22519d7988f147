"""NUTS for the population program as one compiled function per structure and shape.

NumPyro's ``MCMC`` driver re-traces the model to find initial values and re-initialises its
kernels on every ``run``; for ODE likelihoods that tracing cost tens of seconds per fit. Here
the whole chain — unconstraining the initial values, warm-up, sampling, constraining the
draws — is one ``jit``-compiled function of the data (NumPyro's functional ``hmc`` kernel),
so every later fit with the same structure and array shapes reuses the compiled code: SBC
replicates, simulation studies, test suites and repeated clinical fits pay compilation once.

Chains run in parallel with ``pmap`` over the host devices (see ``twin_uq._config``), one
chain per device; more chains than devices run in rounds. ``pmap`` over a solve whose
reverse-mode gradient is a ``custom_vjp`` of forward sensitivities does not hit equinox's
closure-conversion crash (see ``twin_uq.simulate.solve``).

On a single accelerator (GPU/TPU) the chains are instead *vectorised* (``vmap`` of the
whole chain): the device has the width to evaluate every chain's gradient at once, and
the price of ``vmap`` — each chain's tree takes as many leapfrog steps as the longest in
the batch — is paid in parallel lanes rather than in time. On CPU, vectorising would make
every chain wait for the slowest one, so CPU chains stay one per device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

from twin_uq.errors import InputError
from twin_uq.inference.numpyro_model import ProgramStructure, cohort_program

__all__ = ["NutsSettings", "sample_nuts"]


@dataclass(frozen=True)
class NutsSettings:
    """Static settings of a NUTS run (hashable: part of the compilation key)."""

    warmup: int
    draws: int
    target_accept: float
    max_tree_depth: int
    dense_mass: bool


def _program(structure: ProgramStructure):
    return partial(cohort_program, structure)


def _one_chain(statics, data, priors, init_values, mass, key):
    structure, settings = statics
    program = _program(structure)
    args = (data, priors)

    def potential_gen(d, p):
        return lambda z: potential_energy(program, (d, p), {}, z)

    supports_only = _program(structure.prior_only())  # no ODE solve traced for the maps
    z0 = unconstrain_fn(supports_only, args, {}, init_values)
    # The diagonal mass-matrix adaptation starts at the expected posterior variances of
    # the unconstrained sites (``mass``; 1 for sites it does not name), not the identity.
    # (A dense block over the population sites was tried on the 20-patient Bergman
    # benchmark: no gain in ESS, measured 2026-12-01 at commit 8493aa3.)
    if settings.dense_mass:
        inverse_mass = None
    else:
        start = {k: jnp.broadcast_to(mass.get(k, 1.0), v.shape) for k, v in z0.items()}
        inverse_mass = ravel_pytree(start)[0]
    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
    state = init_kernel(
        z0,
        settings.warmup,
        inverse_mass_matrix=inverse_mass,
        target_accept_prob=settings.target_accept,
        max_tree_depth=settings.max_tree_depth,
        dense_mass=settings.dense_mass,
        model_args=args,
        rng_key=key,
    )

    # One scan over warm-up and sampling: NumPyro's kernel switches adaptation off by the
    # iteration count, so one compiled loop body serves both phases (two scans compiled
    # the NUTS kernel, and the ODE gradient inside it, twice). Draws are written into a
    # buffer of ``draws`` rows; warm-up iterations write row 0, which sampling overwrites.
    warmup, draws = settings.warmup, settings.draws
    z_flat, unravel = ravel_pytree(z0)
    buffer = jnp.zeros((draws, z_flat.shape[0]), z_flat.dtype)

    def step(carry, i):
        st, kept = carry
        st = sample_kernel(st, model_args=args)
        row = jnp.maximum(i - warmup, 0)
        kept = jax.lax.dynamic_update_slice(kept, ravel_pytree(st.z)[0][None], (row, 0))
        stats = (
            st.diverging,
            st.energy,
            st.num_steps,
            st.accept_prob,
            st.adapt_state.step_size,
            st.potential_energy,
        )
        return (st, kept), stats

    (_, kept), stats = jax.lax.scan(step, (state, buffer), jnp.arange(warmup + draws))
    warm_div = jnp.sum(stats[0][:warmup])
    stats = tuple(s[warmup:] for s in stats)
    samples = jax.vmap(lambda flat: constrain_fn(supports_only, args, {}, unravel(flat)))(kept)
    return samples, stats, warm_div


_pmapped_chain = jax.pmap(
    _one_chain, in_axes=(None, None, None, 0, None, 0), static_broadcasted_argnums=(0,)
)
_vmapped_chain = jax.jit(
    jax.vmap(_one_chain, in_axes=(None, None, None, 0, None, 0)), static_argnums=(0,)
)

CHAIN_METHODS = ("auto", "parallel", "vectorized")


def choose_chain_method(chains: int, requested: str = "auto") -> str:
    """``"parallel"`` (pmap, one chain per device) or ``"vectorized"`` (vmap on one device).

    ``"auto"`` vectorises only when there is a single accelerator device; see the module
    docstring for why CPU chains are not vectorised.
    """
    if requested not in CHAIN_METHODS:
        raise InputError(f"chain_method must be one of {CHAIN_METHODS}, got {requested!r}.")
    if requested != "auto":
        return requested
    single_accelerator = jax.local_device_count() == 1 and jax.default_backend() != "cpu"
    return "vectorized" if single_accelerator and chains > 1 else "parallel"


def sample_nuts(
    structure: ProgramStructure,
    settings: NutsSettings,
    data,
    priors,
    init_values: dict,
    key: jax.Array,
    chains: int,
    chain_method: str = "auto",
    mass: dict | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int, str]:
    """Run ``chains`` NUTS chains; returns samples, sample stats, warm-up divergences, method.

    Samples have shape ``(chains, draws, ...)``. ``chain_method`` is ``"auto"``,
    ``"parallel"`` or ``"vectorized"`` (see :func:`choose_chain_method`); chain ``c`` uses
    the same random key whichever is chosen.
    """
    chosen = choose_chain_method(chains, chain_method)
    keys = jax.random.split(key, chains)
    mass = {k: jnp.asarray(v, dtype=float) for k, v in (mass or {}).items()}
    init = {k: jnp.asarray(v) for k, v in init_values.items()}
    if chosen == "vectorized":
        batch_init = jax.tree.map(lambda v: jnp.broadcast_to(v, (chains, *v.shape)), init)
        out = _vmapped_chain((structure, settings), data, priors, batch_init, mass, keys)
        return (*_collect([out]), "vectorized (vmap)")
    n_dev = jax.local_device_count()
    per_round = max(1, min(chains, n_dev))
    outs = []
    for start in range(0, chains, per_round):
        n = min(per_round, chains - start)
        batch_init = jax.tree.map(lambda v, n=n: jnp.broadcast_to(v, (n, *v.shape)), init)
        outs.append(
            _pmapped_chain(
                (structure, settings), data, priors, batch_init, mass, keys[start : start + n]
            )
        )
    method = "parallel (pmap)" if per_round > 1 else "sequential"
    return (*_collect(outs), method)


def _collect(outs: list) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Concatenate the chain batches' samples, stats and warm-up divergence counts."""
    samples = {k: np.concatenate([np.asarray(o[0][k]) for o in outs]) for k in outs[0][0]}
    names = ("diverging", "energy", "n_steps", "acceptance_rate", "step_size", "potential_energy")
    stats = {n: np.concatenate([np.asarray(o[1][i]) for o in outs]) for i, n in enumerate(names)}
    warm_div = int(sum(int(np.asarray(o[2]).sum()) for o in outs))
    return samples, stats, warm_div
