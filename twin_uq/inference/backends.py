"""Inference backends for the NumPyro population program: NUTS, SVI and Laplace.

Each backend takes the program and its arguments and returns posterior draws of the
latent sites with a leading ``(chain, draw)`` shape, plus sample statistics. They share
one contract so that :func:`twin_uq.fit` can post-process all of them the same way.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from numpyro.infer import SVI, Trace_ELBO, init_to_value
from numpyro.infer.autoguide import (
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
)
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

from twin_uq.errors import InputError, UnavailableError
from twin_uq.inference.numpyro_model import ProgramStructure, cohort_program
from twin_uq.inference.nuts_kernel import NutsSettings, nuts, run_chains, sample_chain
from twin_uq.inference.progress import ProgressChannel


class OptimisationSettings(Protocol):
    """What the optimisers read of an ``SVI`` / ``Laplace`` method object.

    (A protocol: the method objects sit above this module, in ``inference/methods.py``.)
    """

    steps: int
    learning_rate: float
    draws: int


class GuideSettings(OptimisationSettings, Protocol):
    """An ``SVI`` method object: the optimiser's settings and the guide's family."""

    guide: str


__all__ = ["BackendResult", "run_laplace", "run_nuts", "run_svi", "sample_nuts"]


@dataclass
class BackendResult:
    """Draws of the latent sites and what the backend knows about how they were made.

    Attributes
    ----------
    samples
        Site name → array of shape ``(chains, draws, ...)``.
    sample_stats
        Statistic name → ``(chains, draws)`` array (NUTS only).
    timings
        ``{"compile_and_warmup": s, "sampling": s}`` or ``{"optimisation": s, "draws": s}``.
    info
        Backend-specific facts (e.g. final ELBO, chain method), stored as attributes.
    """

    samples: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _cohort_chain(statics, shared, per_chain, progress: ProgressChannel | None):
    """One NUTS chain of the cohort program: unconstrain, warm up and sample, constrain."""
    structure, settings = statics
    args, mass = shared
    init_values, key = per_chain
    program = partial(cohort_program, structure)

    def potential_gen(*program_args):
        return lambda z: potential_energy(program, program_args, {}, z)

    supports_only = partial(cohort_program, structure.prior_only())  # no ODE solve traced
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
    kernel = nuts(potential_gen, settings)
    state = kernel.init(z0, key, args, inverse_mass)
    kept, info, warm_div = sample_chain(kernel, state, args, settings, progress)
    unravel = ravel_pytree(z0)[1]
    samples = jax.vmap(lambda flat: constrain_fn(supports_only, args, {}, unravel(flat)))(kept)
    return samples, info, warm_div


def sample_nuts(
    structure: ProgramStructure,
    settings: NutsSettings,
    args: tuple,
    init_values: dict,
    key: jax.Array,
    chains: int,
    chain_method: str = "auto",
    mass: dict | None = None,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int, str]:
    """Run ``chains`` NUTS chains; returns samples, sample stats, warm-up divergences, method.

    Samples have shape ``(chains, draws, ...)``. ``chain_method`` is ``"auto"``,
    ``"parallel"`` or ``"vectorized"`` (see
    :func:`~twin_uq.inference.nuts_kernel.choose_chain_method`); chain ``c`` uses the
    ``c``-th of ``jax.random.split(key, chains)`` whichever is chosen.
    """
    keys = jax.random.split(key, chains)
    mass = {k: jnp.asarray(v, dtype=float) for k, v in (mass or {}).items()}
    init = {k: jnp.asarray(v) for k, v in init_values.items()}
    batch_init = jax.tree.map(lambda v: jnp.broadcast_to(v, (chains, *v.shape)), init)
    outs, method = run_chains(
        _cohort_chain, (structure, settings), (args, mass), (batch_init, keys),
        chains=chains, warmup=settings.warmup, draws=settings.draws,
        chain_method=chain_method, progress=progress,
    )  # fmt: skip
    return (*_collect(outs), method)


def _collect(outs: list) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Concatenate the chain batches' samples, stats and warm-up divergence counts."""
    samples = {k: np.concatenate([np.asarray(o[0][k]) for o in outs]) for k in outs[0][0]}
    names = ("diverging", "energy", "n_steps", "acceptance_rate", "step_size", "potential_energy")
    stats = {n: np.concatenate([np.asarray(o[1][i]) for o in outs]) for i, n in enumerate(names)}
    warm_div = int(sum(int(np.asarray(o[2]).sum()) for o in outs))
    return samples, stats, warm_div


def run_nuts(
    structure,
    args: tuple,
    init_values: dict[str, Any],
    *,
    key: jax.Array,
    chains: int,
    warmup: int,
    draws: int,
    target_accept: float,
    max_tree_depth: int,
    dense_mass: bool,
    chain_method: str = "auto",
    mass: dict[str, Any] | None = None,
    progress: bool = False,
) -> BackendResult:
    """Run NUTS chains in parallel on the available devices (see :mod:`nuts_kernel`).

    ``mass`` holds guesses of the posterior variances of unconstrained sites, the start of
    the diagonal mass-matrix adaptation (identity where absent). ``progress`` shows a bar
    (iterations, divergences, time left) while the compiled loop runs; draws are the same
    either way.

    Starting values are ``init_values`` (population medians, patients at their modes for
    ``centering="auto"``; see :meth:`PreparedFit.init_values`): random initial values
    sent ODE solvers into their step limit in early tests. Compiled code is reused by every
    later fit with the same structure, settings and shapes.
    """
    settings = NutsSettings(warmup, draws, target_accept, max_tree_depth, dense_mass)
    t0 = time.perf_counter()
    samples, stats, warm_div, method = sample_nuts(
        structure, settings, args, init_values, key, chains, chain_method, mass, progress
    )
    t1 = time.perf_counter()
    n_steps = stats["n_steps"]
    sample_stats = {
        "diverging": stats["diverging"].astype(bool),
        "energy": stats["energy"],
        "n_steps": n_steps,
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(int),
        "acceptance_rate": stats["acceptance_rate"],
        "step_size": stats["step_size"],
        "lp": -stats["potential_energy"],
    }
    return BackendResult(
        samples=samples,
        sample_stats=sample_stats,
        timings={"warmup_and_sampling": t1 - t0},
        info={"chain_method": method, "warmup_divergences": warm_div},
    )


SVI_MAX_RANK = 10
"""Largest rank of the low-rank guide's covariance factor (NumPyro's default: √dim).

Measured on the 1000-patient oral cohort (3008 latent dimensions, 5000 Adam steps; commit
f3a0e6c): rank 55 (the default) reached a loss of -3324, rank 20 -3554, rank 10 -3618 (lower is
better; 500-particle estimates) with the same population posterior means, in 88, 38 and
37 s. The extra columns are more parameters to fit, not a better fit, at the step budgets
used; at 10 000 patients the default rank 173 made each step 4x dearer (253 vs 63 ms).
Correlations that a low-rank factor can carry are those through the few population sites.
"""


def run_svi(
    structure: ProgramStructure,
    args: tuple,
    init_values: dict[str, Any],
    method: GuideSettings,
    *,
    key: jax.Array,
    progress: bool,
) -> BackendResult:
    """Stochastic variational inference with a (low-rank) multivariate normal guide.

    ``method`` gives the guide, the Adam steps and learning rate and the number of draws.

    Approximate: the Gaussian guide on the unconstrained space cannot represent funnels or
    skewed posteriors; intervals are typically too narrow for weakly identified parameters.
    """
    program = partial(cohort_program, structure)
    init = init_to_value(values=init_values)
    if method.guide == "mvn":
        g = AutoMultivariateNormal(program, init_loc_fn=init, init_scale=0.05)
    elif method.guide == "lowrank":
        rank = min(round(_latent_dim(structure, args, init_values) ** 0.5), SVI_MAX_RANK)
        g = AutoLowRankMultivariateNormal(program, init_loc_fn=init, init_scale=0.05, rank=rank)
    else:
        raise InputError(f"Unknown SVI guide {method.guide!r}: use 'lowrank' or 'mvn'.")
    result, samples, timings = _fit_guide(program, g, args, key, method, progress)
    losses = np.asarray(result.losses)
    tail = losses[-max(method.steps // 10, 1) :]
    return BackendResult(
        samples=samples,
        timings=timings,
        info={
            "guide_rank": getattr(g, "rank", None),
            "final_elbo": float(-tail.mean()),
            "elbo_tail_sd": float(tail.std()),
            "guide": method.guide,
            "steps": method.steps,
        },
    )


def _latent_dim(structure: ProgramStructure, args: tuple, init_values: dict[str, Any]) -> int:
    """Size of the unconstrained latent vector (the program without its likelihood)."""
    supports_only = partial(cohort_program, structure.prior_only())
    return int(ravel_pytree(unconstrain_fn(supports_only, args, {}, init_values))[0].size)


@dataclass
class _Optimised:
    params: dict
    losses: jax.Array


def _optimise(svi: SVI, key: jax.Array, steps: int, args: tuple, progress: bool) -> _Optimised:
    """``steps`` stable Adam updates of ``svi``, compiled with the data as an argument.

    NumPyro's ``SVI.run`` closes over the model arguments, so the cohort's arrays were
    compiled in as constants: at 1000 patients 58 s of XLA compilation against 18.5 s
    with the data passed as an argument (same losses to the last digit; commit 08cc75e). With
    ``progress`` the updates run in 20 chunks with a bar between them.
    """
    state = svi.init(key, *args)

    def chunk(st, a, n):
        return jax.lax.scan(lambda s_, _: svi.stable_update(s_, *a), st, None, length=n)

    compiled = jax.jit(chunk, static_argnums=2)
    sizes = [steps] if not progress else [steps // 20] * 20 + [steps % 20]
    losses = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="SVI")
    for n in (k for k in sizes if k):
        state, part = compiled(state, args, n)
        losses.append(part)
        if bar is not None:
            bar.update(n)
            bar.set_postfix_str(f"loss {float(part[-1]):.4f}", refresh=False)
    if bar is not None:
        bar.close()
    # Dispatch is asynchronous: without waiting, "optimisation" timed only the compile and
    # the work landed in whatever touched the parameters next (before f3a0e6c: 23 s reported of
    # ~90 s at 1000 patients).
    state = jax.block_until_ready(state)
    return _Optimised(params=svi.get_params(state), losses=jnp.concatenate(losses))


def _fit_guide(
    program,
    guide,
    args: tuple,
    key: jax.Array,
    method: OptimisationSettings,
    progress: bool,
) -> tuple[_Optimised, dict[str, np.ndarray], dict[str, float]]:
    """Fit ``guide`` to ``program`` by ``method.steps`` clipped Adam updates, then draw from it.

    The one optimise-then-draw of SVI and Laplace: the key splits into the optimisation's
    and the draws'. Returns the optimisation result, ``method.draws`` latent draws per site with a
    leading chain axis of 1, and the seconds spent optimising and drawing.
    """
    optimiser = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(method.learning_rate))
    svi = SVI(program, guide, optimiser, loss=Trace_ELBO())
    k_fit, k_draw = jax.random.split(key)
    t0 = time.perf_counter()
    result = _optimise(svi, k_fit, method.steps, args, progress)
    t1 = time.perf_counter()
    latent = guide.sample_posterior(k_draw, result.params, *args, sample_shape=(method.draws,))
    samples = {k: np.asarray(v)[None] for k, v in latent.items()}
    t2 = time.perf_counter()
    return result, samples, {"optimisation": t1 - t0, "draws": t2 - t1}


def _fd_hessian(f, x: jax.Array, rel_step: float = 1e-5) -> jax.Array:
    # Central differences of the exact gradient: the ODE gradient is a custom VJP built on
    # forward sensitivities, which JAX cannot differentiate a second time in reverse mode.
    grad = jax.grad(f)
    h = rel_step * jnp.maximum(1.0, jnp.abs(x))

    def column(i):
        e = jnp.zeros_like(x).at[i].set(h[i])
        return (grad(x + e) - grad(x - e)) / (2.0 * h[i])

    H = jax.lax.map(column, jnp.arange(x.shape[0]))
    return 0.5 * (H + H.T)


def _not_positive_definite(why: str) -> UnavailableError:
    return UnavailableError(
        "Laplace approximation failed: the Hessian of the log posterior at the MAP is not "
        f"positive definite ({why}), so no Gaussian approximation exists there (a parameter "
        "the data and priors leave flat, or an optimisation that has not reached a maximum). "
        "Use method='nuts', or 'svi', or more optimisation steps."
    )


def _constant_sites(samples: dict[str, np.ndarray]) -> list[str]:
    """``site[index]`` of every latent dimension whose draws are all equal (zero spread)."""
    out = []
    for name, v in samples.items():
        flat = v.reshape(-1, *v.shape[2:]) if v.ndim > 2 else v.reshape(-1)
        if flat.shape[0] < 2:
            continue
        flat = flat.reshape(flat.shape[0], -1)
        for j in np.flatnonzero(np.ptp(flat, axis=0) == 0):
            out.append(f"{name}[{j}]" if flat.shape[1] > 1 else name)
    return out


def run_laplace(
    structure: ProgramStructure,
    args: tuple,
    init_values: dict[str, Any],
    method: OptimisationSettings,
    *,
    key: jax.Array,
    progress: bool,
) -> BackendResult:
    """MAP estimate by optimisation, then a Gaussian with the inverse Hessian as covariance.

    ``method`` gives the Adam steps and learning rate of the MAP search and the draws.

    Approximate: exact only for Gaussian posteriors; the Hessian is taken on the
    unconstrained scale (log of positive parameters) where posteriors are closer to normal.
    """
    program = partial(cohort_program, structure)
    g = AutoLaplaceApproximation(
        program, init_loc_fn=init_to_value(values=init_values), hessian_fn=_fd_hessian
    )
    with warnings.catch_warnings():
        # NumPyro answers a Hessian that is not positive definite with a warning and
        # constant draws (every draw the MAP): zero-width intervals that look like
        # certainty. Made an error here, and checked below whatever NumPyro says.
        warnings.filterwarnings("error", message=".*Hessian of log posterior.*singular")
        try:
            result, samples, timings = _fit_guide(program, g, args, key, method, progress)
        except UserWarning as err:
            raise _not_positive_definite("NumPyro: " + str(err).split(".")[0]) from None
    bad = [k for k, v in samples.items() if not np.all(np.isfinite(v))]
    if bad:
        raise _not_positive_definite(f"non-finite draws of {', '.join(bad)}")
    constant = _constant_sites(samples)
    if constant:
        raise _not_positive_definite(f"draws without spread: {', '.join(constant)}")
    return BackendResult(
        samples=samples,
        timings=timings,
        info={"final_loss": float(np.asarray(result.losses)[-1]), "steps": method.steps},
    )
