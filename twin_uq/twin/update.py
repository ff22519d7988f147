"""Condition one patient's twin on new observations without refitting the cohort.

Target (``x = log theta``, or ``logit theta`` for a logit-normal parameter;
``s = 1..S`` population posterior draws)::

    log p(x | y) = logsumexp_s [ log N(x; m_s, L_s L_s^T) + log p(y | theta(x), sigma_s) ] - log S

the patient's conditional posterior given the data, integrated over the population and
residual-error posterior. It is sampled with NUTS on the K log parameters (one ODE solve
per gradient; the S residual draws are vectorised arithmetic). Each retained draw is then
paired with a population draw ``s`` sampled from ``p(s | x, y)``, which makes
``(x, s)`` an exact draw of the joint posterior and gives every theta draw its own
residual error parameters for predictions. The population posterior is represented by an
evenly thinned subset of its draws (256 by default; cost is linear in their number).

Approximation: the population posterior was fitted with this patient's earlier data, so
those rows inform both the mixing distribution and the likelihood (counted twice in the
population part). With more than a handful of patients the effect is far below Monte Carlo
error; the refit comparison in tests/twin bounds it.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import arviz_stats as azs
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
from jaxtyping import Array, Float, Int

from twin_uq.data import CohortArrays
from twin_uq.errors import InputError
from twin_uq.inference.likelihood import ResidualParams, patient_loglik, patient_predictions
from twin_uq.inference.nuts_kernel import NutsSettings, nuts, run_chains, sample_chain
from twin_uq.inference.residual import ERROR_CODES, observation_loglik
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.scales import to_natural
from twin_uq.posterior.failure import FitFailedError, SamplerFailure, draws_failure
from twin_uq.twin.engine import _bucket

__all__ = [
    "UpdateData",
    "UpdateFailedError",
    "UpdateResult",
    "log_target",
    "observed",
    "patient_arrays",
    "run_update",
]


class UpdateData(eqx.Module):
    """Everything numeric the update needs (a pytree; shapes fix the compiled sampler)."""

    arrays: CohortArrays  # one patient, no leading patient axis
    error_code: Int[Array, " O"]
    mean: Float[Array, "S K"]
    chol_inv: Float[Array, "S K K"]
    logdet: Float[Array, " S"]
    add: Float[Array, "S O"]
    prop: Float[Array, "S O"]
    nu: Float[Array, " S"]
    tau: Float[Array, "S O"] | None = None  # OU residual correlation times (None: independent)


def patient_arrays(
    model: Model,
    obs: dict[str, np.ndarray],
    schedule,
    covariates: np.ndarray,
    length: int | None = None,
) -> CohortArrays:
    """One patient's observation arrays, padded to ``length`` or a bucketed length (compile reuse).

    ``obs`` holds ``time``, ``value``, ``output``, ``censored``, ``lloq`` (``(n,)`` each)
    and, for upper-limit (``CENS=-1``) or interval (``LIMIT``) censoring, ``cens`` (1
    below ``lloq``, -1 above, 0 none) and ``limit`` (the other bound, NaN where none):
    the likelihood then scores them through the residual contract's ``limit=``.
    """
    n = int(obs["time"].size)
    N = _bucket(n, 16) if length is None else length
    last = float(obs["time"][-1]) if n else 0.0

    def pad(x, fill, dtype):
        out = np.full(N, fill, dtype=dtype)
        out[:n] = x
        return jnp.asarray(out)

    return CohortArrays(
        obs_time=pad(obs["time"], last, np.float64),
        obs_value=pad(obs["value"], 0.0, np.float64),
        obs_output=pad(obs["output"], 0, np.int32),
        obs_mask=pad(np.ones(n, bool), False, bool),
        obs_censored=pad(obs["censored"], False, bool),
        obs_lloq=pad(obs["lloq"], -np.inf, np.float64),
        obs_cens=pad(obs["cens"], 0, np.int32) if "cens" in obs else None,
        obs_limit=pad(obs["limit"], np.nan, np.float64) if "cens" in obs else None,
        schedule=schedule,
        covariates=jnp.asarray(covariates, dtype=jnp.float64),
        output_names=model.output_names,
        covariate_names=tuple(model.covariates),
    )


def observed(arrays: CohortArrays, k: int) -> dict[str, np.ndarray]:
    """Patient ``k``'s real observations of cohort arrays, as :func:`patient_arrays` takes them.

    With upper-limit or interval censoring in the cohort (``arrays.obs_cens`` present) the
    censoring direction and the interval's other bound come along (``cens``, ``limit``).
    """
    m = np.asarray(arrays.obs_mask[k])
    obs = {
        "time": np.asarray(arrays.obs_time[k])[m],
        "value": np.asarray(arrays.obs_value[k])[m],
        "output": np.asarray(arrays.obs_output[k])[m],
        "censored": np.asarray(arrays.obs_censored[k])[m],
        "lloq": np.asarray(arrays.obs_lloq[k])[m],
    }
    if arrays.obs_cens is not None:
        obs["cens"] = np.asarray(arrays.obs_cens[k])[m]
        obs["limit"] = np.asarray(arrays.obs_limit[k])[m]
    return obs


def _mixture_terms(
    model: Model, settings: SolverSettings, x: Float[Array, " K"], data: UpdateData, student: bool
) -> Float[Array, " S"]:
    """``log N(x; m_s, Sigma_s) + log p(y | theta(x), sigma_s)`` for every draw ``s``.

    ``x`` is the patient's parameters on their latent scale (``log``, or ``logit`` for a
    logit-normal parameter; :func:`twin_uq.model.scales.to_natural`).
    """
    theta = to_natural(model, x)
    arr = data.arrays
    # Upper-limit and interval censoring go through the one residual contract
    # (observation_loglik with limit=, in patient_loglik); the fast Gaussian path is M3 only.
    # So do autocorrelated residuals (the contract's sequential conditional densities).
    if student or arr.obs_cens is not None or data.tau is not None:
        residual = ResidualParams(add=data.add, prop=data.prop, nu=data.nu, tau=data.tau)
        # theta and the data are not batched: vmap keeps a single ODE solve for all S draws.
        ll, ok = jax.vmap(
            lambda r: patient_loglik(
                model, settings, theta, arr.covariates, arr, data.error_code, r
            )
        )(residual)
        ok = ok[0]
    else:
        f, ok = patient_predictions(
            model, settings, theta, arr.covariates, arr.schedule, arr.obs_time, arr.obs_output
        )
        out = arr.obs_output
        ll = observation_loglik(
            data.error_code[out],
            arr.obs_value,
            f,
            data.add[:, out],
            data.prop[:, out],
            0.0,  # nu: unused without Student-t
            arr.obs_censored,
            arr.obs_lloq,
            student_t=False,
        )
        ll = jnp.where(arr.obs_mask[None, :], ll, 0.0)
    ll = jnp.sum(ll, axis=1)
    z = jnp.einsum("skl,sl->sk", data.chol_inv, x[None, :] - data.mean)
    K = x.shape[0]
    prior = -0.5 * jnp.sum(z**2, axis=1) - data.logdet - 0.5 * K * jnp.log(2 * jnp.pi)
    return jnp.where(ok, prior + ll, -jnp.inf)


def log_target(
    model: Model,
    settings: SolverSettings,
    x: Float[Array, " K"],
    data: UpdateData,
    student: bool = True,
) -> Float[Array, ""]:
    """Log posterior density of the latent ``x``, up to a constant.

    ``x`` is ``log theta``, or ``logit theta`` for a logit-normal parameter.
    """
    terms = _mixture_terms(model, settings, x, data, student)
    return jax.scipy.special.logsumexp(terms) - jnp.log(terms.shape[0])


#: Target acceptance of the update's step-size adaptation (NumPyro's default is 0.8); the
#: mass-matrix adaptation starts at the identity.
TARGET_ACCEPT = 0.85


def _update_chain(statics, data: UpdateData, per_chain, progress):
    """One chain of the update (the shared NUTS driver) and its population-draw assignment.

    ``per_chain`` is ``(x0, key)``: starting log parameters ``(K,)`` and the chain's key,
    split into the kernel's key and the key of the assignment ``s ~ p(s | x, y)``.
    Returns the draws ``(D, K)``, their divergence flags ``(D,)`` and assignments ``(D,)``.
    """
    model, settings, student, nuts_settings = statics
    x0, key = per_chain
    k_init, k_assign = jax.random.split(key)

    def potential_gen(d):
        return lambda x: -log_target(model, settings, x, d, student)

    kernel = nuts(potential_gen, nuts_settings)
    state = kernel.init(x0, k_init, (data,))
    z, info, _ = sample_chain(kernel, state, (data,), nuts_settings, progress)
    # Pair each draw with a population draw s ~ p(s | x, y).
    terms = jax.vmap(lambda x: _mixture_terms(model, settings, x, data, student))(z)
    s = jax.random.categorical(k_assign, terms, axis=1)
    return z, info.diverging, s


class UpdateFailedError(FitFailedError):
    """The NUTS update of one patient did not sample: no twin or stage-2 draws from it.

    The rule is the cohort fit's (:mod:`twin_uq.posterior.failure`).

    Attributes
    ----------
    failure
        The :class:`~twin_uq.posterior.failure.SamplerFailure` found (chains are the
        update's).
    patient
        The patient's id (``None`` where the caller did not name one).
    posterior
        Always ``None``: the update has no cohort posterior of its own.
    """

    def __init__(self, failure: SamplerFailure, patient: str | None = None):
        super().__init__(failure)
        who = "this patient" if patient is None else f"patient {patient!r}"
        self.args = (
            f"The NUTS update of {who} (twin.update, or stage 2 of a two-stage fit) did not "
            "sample the patient's posterior: " + "; ".join(failure.reasons()) + ". No twin "
            "or patient draws are made from it. Usual causes: a log density or gradient that "
            "is NaN or infinite at the patient's current parameters (an observation of 0 or "
            "below under a proportional or lognormal error, a row in the wrong unit, time or "
            "output, the model's solver failing there). What to do: check the patient's rows "
            "(tq.check_data(model, cohort) on the table with the new rows), compare them with "
            "twin.predict at their times, and if they are right refit the cohort with them "
            "(tq.fit), whose own failure report says more.",
        )
        self.patient = patient


@dataclass(frozen=True)
class UpdateResult:
    """Draws of the updated patient and how the sampler did."""

    theta: np.ndarray  # (D, K)
    draw_index: np.ndarray  # (D,) population draw paired with each theta draw
    n_chains: int
    r_hat: float
    ess_bulk: float
    divergences: int
    seconds: float
    pareto_k: float = float("nan")
    method: str = "nuts-conditional"


def run_update(
    model: Model,
    settings: SolverSettings,
    data: UpdateData,
    init: np.ndarray,
    *,
    chains: int,
    warmup: int,
    draws: int,
    seed: int,
    progress: bool = False,
    patient: str | None = None,
) -> UpdateResult:
    """NUTS on the patient's log parameters; compiled once per (model, settings, shapes).

    The sampler is the package's one NUTS driver (:mod:`twin_uq.inference.nuts_kernel`),
    as for the cohort fit; ``progress`` shows its bar (the draws are the same either way).
    A sampler that did not sample (a chain that never moved, every transition divergent,
    non-finite draws: :func:`twin_uq.posterior.failure.draws_failure`) raises
    :class:`UpdateFailedError` naming ``patient``, instead of returning its draws.
    """
    if chains < 1 or warmup < 1 or draws < 1:
        raise InputError(f"chains, warmup and draws must be >= 1, got {chains}, {warmup}, {draws}.")
    student = bool(np.any(np.asarray(data.error_code) == ERROR_CODES["student_t"]))
    rng = np.random.default_rng(seed)
    x0 = np.asarray(init)[None, :] + 0.05 * rng.standard_normal((chains, init.shape[0]))
    nuts_settings = NutsSettings(warmup, draws, target_accept=TARGET_ACCEPT)
    t0 = time.perf_counter()
    # Vectorised chains (vmap), as the update has always run them: one compiled function
    # for all chains, the same in a notebook and inside a single-threaded Dask worker.
    (out,), _ = run_chains(
        _update_chain, (model, settings, student, nuts_settings), data,
        (jnp.asarray(x0), jax.random.split(jax.random.key(seed), chains)),
        chains=chains, warmup=warmup, draws=draws, chain_method="vectorized",
        progress=progress, description="NUTS update",
    )  # fmt: skip
    z, div, s = out
    x = np.asarray(z)  # (chains, draws, K)
    s = np.asarray(s).reshape(-1)
    seconds = time.perf_counter() - t0
    failure = draws_failure({"theta": x}, np.asarray(div), "nuts-conditional")
    if failure is not None:
        raise UpdateFailedError(failure, patient)
    if chains > 1:
        r_hat = float(max(azs.rhat(x[:, :, k]) for k in range(x.shape[-1])))
    else:
        r_hat = float("nan")
    ess = float(min(azs.ess(x[:, :, k]) for k in range(x.shape[-1])))
    return UpdateResult(
        theta=to_natural(model, x.reshape(-1, x.shape[-1])),
        draw_index=s,
        n_chains=chains,
        r_hat=r_hat,
        ess_bulk=ess,
        divergences=int(np.asarray(div).sum()),
        seconds=seconds,
    )


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _log_target_batch(
    model: Model, settings: SolverSettings, student: bool, xs: Float[Array, "M K"], data: UpdateData
) -> tuple[Float[Array, " M"], Float[Array, "M S"]]:
    """Log target at many points at once (one vmapped solve each) and the mixture terms."""
    terms = jax.vmap(lambda x: _mixture_terms(model, settings, x, data, student))(xs)
    return jsp.logsumexp(terms, axis=1) - jnp.log(terms.shape[1]), terms


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _laplace(
    model: Model, settings: SolverSettings, student: bool, x0: Float[Array, " K"], data: UpdateData
) -> tuple[Float[Array, " K"], Float[Array, "K K"], Float[Array, ""]]:
    """Mode of the update target (BFGS) and the Hessian of -log p there.

    The Hessian comes from central differences of the gradient (forward-over-reverse is not
    available through the ODE path's custom VJP); K is small, so it is one batch of 2K
    gradients.
    """

    def neg(x):
        return -log_target(model, settings, x, data, student)

    opt = jax.scipy.optimize.minimize(neg, x0, method="BFGS", options={"maxiter": 200})
    x = opt.x
    K = x.shape[0]
    h = 1e-4 * jnp.maximum(1.0, jnp.abs(x))
    steps = jnp.eye(K) * h[:, None]
    grad = jax.grad(neg)
    gp = jax.vmap(lambda d: grad(x + d))(steps)
    gm = jax.vmap(lambda d: grad(x - d))(steps)
    H = (gp - gm) / (2 * h[:, None])
    return x, 0.5 * (H + H.T), opt.fun


def _t_proposal(rng: np.random.Generator, loc: np.ndarray, cov: np.ndarray, n: int, nu: float):
    """Draws and log densities of a multivariate Student-t proposal."""
    K = loc.size
    L = np.linalg.cholesky(cov + 1e-10 * np.eye(K))
    z = rng.standard_normal((n, K))
    g = rng.chisquare(nu, n) / nu
    x = loc + (z @ L.T) / np.sqrt(g)[:, None]
    u = np.linalg.solve(L, (x - loc).T).T
    from scipy.special import gammaln

    logq = (
        gammaln((nu + K) / 2)
        - gammaln(nu / 2)
        - 0.5 * K * np.log(nu * np.pi)
        - np.log(np.diag(L)).sum()
        - 0.5 * (nu + K) * np.log1p((u**2).sum(axis=1) / nu)
    )
    return x, logq


def run_importance(
    model: Model,
    settings: SolverSettings,
    data: UpdateData,
    loc: np.ndarray,
    *,
    draws: int,
    proposals: int = 2048,
    seed: int = 0,
    k_max: float = 0.7,
    ess_min: float = 400.0,
) -> UpdateResult | None:
    """Adaptive importance sampling of the update target; ``None`` when unreliable.

    Proposal: a Student-t (5 d.o.f.) on log theta centred at the target's mode (BFGS from
    ``loc``, the current posterior) with the inverse Hessian there, inflated 1.2².
    Pareto-smoothed weights (PSIS, Vehtari et al. 2024)
    give the diagnostic k-hat; above ``k_max`` or below ``ess_min`` effective draws the
    caller falls back to NUTS. Accepted weights are resampled (systematic) to ``draws``
    equally weighted draws, each paired with a population draw as in NUTS.
    """
    from arviz_stats.base.array import array_stats

    student = bool(np.any(np.asarray(data.error_code) == ERROR_CODES["student_t"]))
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    mode, H, _ = _laplace(model, settings, student, jnp.asarray(loc, dtype=float), data)
    mode, H = np.asarray(mode), np.asarray(H)
    if not (np.all(np.isfinite(mode)) and np.all(np.isfinite(H))):
        return None
    evals, evecs = np.linalg.eigh(H)
    if np.any(evals <= 0):  # not a proper maximum: let NUTS handle it
        return None
    cov = (evecs / evals) @ evecs.T * 1.2**2
    x, logq = _t_proposal(rng, mode, cov, proposals, 5.0)
    lp, terms = _log_target_batch(model, settings, student, jnp.asarray(x), data)
    logw = np.asarray(lp) - logq
    if not np.isfinite(logw).any():
        return None
    finite = np.isfinite(logw)
    # arviz-stats takes log-likelihood-like input: the log weights are its negative.
    lw, khat = array_stats.psislw(-(logw[finite] - logw[finite].max()))
    lw = np.asarray(lw)
    khat = float(khat)
    w_f = np.exp(lw - lw.max())
    w_f /= w_f.sum()
    ess = float(1.0 / np.sum(w_f**2))
    if not (khat < k_max and ess >= ess_min):
        return None
    xs, terms = x[finite], np.asarray(terms)[finite]
    # Systematic resampling: every draw kept floor/ceil(draws * w) times.
    u = (rng.uniform() + np.arange(draws)) / draws
    pick = np.minimum(np.searchsorted(np.cumsum(w_f), u), w_f.size - 1)
    logits = terms[pick]
    g = rng.gumbel(size=logits.shape)
    s = np.argmax(np.where(np.isfinite(logits), logits + g, -np.inf), axis=1)
    return UpdateResult(
        theta=to_natural(model, xs[pick]),
        draw_index=s,
        n_chains=1,
        r_hat=float("nan"),
        ess_bulk=ess,
        divergences=0,
        seconds=time.perf_counter() - t0,
        pareto_k=khat,
        method="importance",
    )
