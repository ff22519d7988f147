"""The one NUTS driver: a kernel in init / step form, one compiled loop, chains in parallel.

Used by every NUTS run of the package: the cohort fit (:func:`twin_uq.inference.backends.run_nuts`),
the twin update (:func:`twin_uq.twin.update.run_update`) and stage 2 of two-stage fits
(whose workers call ``run_update``). Three layers, each usable on its own:

* :func:`nuts` — NumPyro's functional NUTS kernel (``numpyro.infer.hmc.hmc``) as an
  ``init(position, key, args) -> state`` / ``step(state, args) -> (state, info)`` pair, in
  the manner of BlackJAX. The random key lives in the state (NumPyro splits it on every
  step), which is why ``step`` takes none: keeping NumPyro's key stream keeps the draws of
  every seed what they were.
* :func:`sample_chain` — warm-up (step size by dual averaging, diagonal or dense mass matrix
  by windowed adaptation, as NumPyro) and sampling of one chain in ONE ``lax.scan``.
  NumPyro's kernel switches adaptation off by the iteration count, so one compiled loop
  body serves both phases (two scans compiled the kernel, and the ODE gradient inside it,
  twice). With a :class:`~twin_uq.inference.progress.ProgressChannel` it reports to a
  progress bar from inside the loop.
* :func:`run_chains` — one compiled function per chain function, structure and shapes, over
  all chains: ``pmap`` over the host devices (one chain per device; more chains than
  devices run in rounds) or ``vmap`` on one device.

Why compiled this way: NumPyro's ``MCMC`` driver re-traces the model to find initial values
and re-initialises its kernels on every ``run``; for ODE likelihoods that cost tens of
seconds per fit. Here the data are arguments of one compiled function, so every later run
with the same structure and array shapes reuses the compiled code (SBC replicates,
simulation studies, test suites, repeated clinical fits and twin updates pay compilation
once).

Chains run in parallel with ``pmap`` over the host devices (see ``twin_uq._config``).
``pmap`` over a solve whose reverse-mode gradient is a ``custom_vjp`` of forward
sensitivities does not hit equinox's closure-conversion crash (see
``twin_uq.simulate.solve``). On a single accelerator (GPU/TPU) the chains are instead
*vectorised* (``vmap`` of the whole chain): the device has the width to evaluate every
chain's gradient at once, and the price of ``vmap`` — each chain's tree takes as many
leapfrog steps as the longest in the batch — is paid in parallel lanes rather than in time.
On CPU, vectorising would make every chain wait for the slowest one, so CPU chains stay one
per device.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float
from numpyro.infer.hmc import hmc

from twin_uq._types import BoolScalar, FloatScalar, IntScalar
from twin_uq.errors import InputError
from twin_uq.inference.progress import ChainProgress, ProgressChannel, report_progress

__all__ = [
    "CHAIN_METHODS",
    "NutsInfo",
    "NutsKernel",
    "NutsSettings",
    "choose_chain_method",
    "nuts",
    "run_chains",
    "sample_chain",
]


@dataclass(frozen=True)
class NutsSettings:
    """Static settings of a NUTS run (hashable: part of the compilation key).

    ``warmup`` and ``draws`` are iteration counts per chain; ``target_accept`` is the
    step-size adaptation's target mean acceptance probability; ``dense_mass`` adapts a
    dense instead of a diagonal mass matrix.
    """

    warmup: int
    draws: int
    target_accept: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False


class NutsInfo(NamedTuple):
    """Per-iteration facts of one NUTS transition (scalars per chain and iteration)."""

    diverging: BoolScalar
    energy: FloatScalar
    num_steps: IntScalar
    accept_prob: FloatScalar
    step_size: FloatScalar
    potential_energy: FloatScalar


class NutsKernel(NamedTuple):
    """``init(position, key, args, inverse_mass=None) -> state``; ``step(state, args) -> (state, info)``.

    ``state`` is NumPyro's ``HMCState`` (position ``state.z``, flat as by ``ravel_pytree``;
    the adaptation state and the chain's random key); ``args`` are the arguments of the
    potential (the data), passed on every step so that they stay arguments of the
    compiled loop rather than constants.
    """

    init: Callable[..., Any]
    step: Callable[..., tuple[Any, NutsInfo]]


def nuts(potential_gen: Callable[..., Callable], settings: NutsSettings) -> NutsKernel:
    """NUTS for the potential ``potential_gen(*args)(z)`` (``-log density``, unconstrained ``z``).

    Call inside the traced function that runs the chain: NumPyro's ``init_kernel`` sets up
    the adaptation schedule that ``sample_kernel`` then reads, so one pair per chain.

    The kernel moves ONE flat vector (``state.z`` is ``ravel_pytree(position)[0]``) and the
    potential unravels it: NumPyro's integrator and U-turn checks otherwise map every
    update over the sites of a pytree position and ravel the momentum at every kinetic
    energy, gradient of it and turning check, a few XLA operations per site and per
    leapfrog step. The numbers are the same either way: the momentum is drawn flat and
    unravelled, every update is elementwise, and energies and turning checks are computed
    on the ravelled vector in both cases (draws compared bitwise, 2026-12-07).
    """
    unravel: list[Callable] = []  # set by ``init``, read when the kernel traces the potential

    def flat_gen(*args):
        potential = potential_gen(*args)
        return lambda flat: potential(unravel[0](flat))

    init_kernel, sample_kernel = hmc(potential_fn_gen=flat_gen, algo="NUTS")

    def init(position, key: jax.Array, args: tuple, inverse_mass: Array | None = None):
        # ``inverse_mass`` (flat, unconstrained order) starts the mass-matrix adaptation;
        # None is NumPyro's identity start.
        flat, unravel_fn = ravel_pytree(position)
        unravel[:] = [unravel_fn]
        return init_kernel(
            flat,
            settings.warmup,
            inverse_mass_matrix=inverse_mass,
            target_accept_prob=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            dense_mass=settings.dense_mass,
            model_args=args,
            rng_key=key,
        )

    def step(state, args: tuple):
        state = sample_kernel(state, model_args=args)
        info = NutsInfo(
            state.diverging,
            state.energy,
            state.num_steps,
            state.accept_prob,
            state.adapt_state.step_size,
            state.potential_energy,
        )
        return state, info

    return NutsKernel(init, step)


def sample_chain(
    kernel: NutsKernel,
    state,
    args: tuple,
    settings: NutsSettings,
    progress: ProgressChannel | None = None,
) -> tuple[Float[Array, "D P"], NutsInfo, IntScalar]:
    """Warm-up and sampling of one chain in one compiled loop.

    Returns the ``draws`` post-warm-up positions, flat (``(draws, P)``, the order of
    ``jax.flatten_util.ravel_pytree`` of the position given to ``kernel.init``), the sampling iterations' :class:`NutsInfo`
    (each field ``(draws,)``) and the number of divergent warm-up transitions.

    Draws are written into a buffer of ``draws`` rows; warm-up iterations write row 0,
    which sampling overwrites (keeping every state would hold ``warmup`` extra rows).
    ``progress`` adds a divergence counter to the loop and a host callback every few
    iterations; it reads the chain's values and changes none of them.
    """
    warmup, draws = settings.warmup, settings.draws
    z_flat = state.z  # flat: see :func:`nuts`
    buffer = jnp.zeros((draws, z_flat.shape[0]), z_flat.dtype)
    # Divergences so far, (warm-up, sampling); only carried when someone is watching, so
    # that the compiled loop without a bar is exactly the loop it always was.
    counts = None if progress is None else jnp.zeros(2, jnp.int32)

    def body(carry, i):
        st, kept, n_div = carry
        st, info = kernel.step(st, args)
        row = jnp.maximum(i - warmup, 0)
        kept = jax.lax.dynamic_update_slice(kept, st.z[None], (row, 0))
        if progress is not None:
            n_div = n_div.at[(i >= warmup).astype(jnp.int32)].add(info.diverging)
            report_progress(progress, i + 1, n_div, warmup + draws)
        return (st, kept, n_div), info

    (_, kept, _), info = jax.lax.scan(body, (state, buffer, counts), jnp.arange(warmup + draws))
    warm_div = jnp.sum(info.diverging[:warmup])
    info = NutsInfo(*(s[warmup:] for s in info))
    return kept, info, warm_div


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


ChainFn = Callable[[Hashable, Any, Any, ProgressChannel | None], Any]


@functools.cache
def _mapped(chain_fn: ChainFn, method: str, progress: bool) -> Callable:
    """``chain_fn`` compiled over a leading chain axis.

    One transform per function, method and progress switch, cached so that its compiled
    code is reused by every later run with the same statics and shapes. Without progress
    the token and chain ids are not arguments at all (``pmap`` misassigns ``in_axes`` when
    an argument is None: seen with the locked jax 0.12).
    """
    if progress:

        def one(statics, shared, per_chain, token, chain_id):
            return chain_fn(statics, shared, per_chain, ProgressChannel(token, chain_id))

        axes = (None, None, 0, None, 0)
    else:

        def one(statics, shared, per_chain):
            return chain_fn(statics, shared, per_chain, None)

        axes = (None, None, 0)
    if method == "vectorized":
        return jax.jit(jax.vmap(one, in_axes=axes), static_argnums=0)
    return jax.pmap(one, in_axes=axes, static_broadcasted_argnums=(0,))


def run_chains(
    chain_fn: ChainFn,
    statics: Hashable,
    shared: Any,
    per_chain: Any,
    *,
    chains: int,
    warmup: int,
    draws: int,
    chain_method: str = "auto",
    progress: bool = False,
    description: str = "NUTS",
) -> tuple[list[Any], str]:
    """Run ``chain_fn`` for every chain; returns the outputs per batch of chains and the method.

    ``chain_fn(statics, shared, per_chain, progress)`` runs one chain (typically
    :func:`nuts` + :func:`sample_chain`): ``statics`` is hashable (structure, settings:
    the compilation key), ``shared`` a pytree given to every chain (the data),
    ``per_chain`` a pytree with a leading axis of ``chains`` (initial positions, keys), and
    ``progress`` a :class:`ProgressChannel` to pass to :func:`sample_chain`, or None.
    ``chain_fn`` must be a module-level function (its compiled form is cached by identity).

    Outputs have the chain axis first and come as one batch (``vectorized``) or one per
    round of ``pmap`` (``parallel``: as many chains per round as host devices). Chain ``c``
    gets ``per_chain[c]`` (its start and key) whichever method runs it.
    With ``progress`` a bar (iterations of all chains, divergences so far, time left) is
    shown while the chains run; the draws are the same with and without it.
    """
    chosen = choose_chain_method(chains, chain_method)
    bar = ChainProgress(chains, warmup, draws, description) if progress else None
    chain_ids = jnp.arange(chains, dtype=jnp.int32) if progress else None
    outs = []
    with bar if bar is not None else contextlib.nullcontext():
        watch = () if bar is None else (bar.token,)
        if chosen == "vectorized":
            ids = () if bar is None else (chain_ids,)
            call = _mapped(chain_fn, "vectorized", bar is not None)
            outs.append(call(statics, shared, per_chain, *watch, *ids))
            label = "vectorized (vmap)"
        else:
            call = _mapped(chain_fn, "parallel", bar is not None)
            per_round = max(1, min(chains, jax.local_device_count()))
            for start in range(0, chains, per_round):
                part = jax.tree.map(lambda v, s=start: v[s : s + per_round], per_chain)
                ids = () if bar is None else (chain_ids[start : start + per_round],)
                outs.append(call(statics, shared, part, *watch, *ids))
            label = "parallel (pmap)" if per_round > 1 else "sequential"
        if bar is not None:
            outs = jax.block_until_ready(outs)
    return outs, label
