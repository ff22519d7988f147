"""A quick pooled fit before sampling, to see where the data put the typical values.

A model's default typical values suit its own synthetic cohorts; a real drug may clear 40
times faster, a neonate weigh 1 kg. NUTS started at the priors' medians then spends its
warm-up (or its whole run) crossing many prior standard deviations, and the prior pulls
sparse patients towards a wrong value without a word. This module answers, in a few
hundred optimiser steps, how far the data's typical values lie from the priors':

* :func:`pooled_fit` — naive pooled maximum likelihood: every patient at the same log
  typical values (plus the model's fixed allometric terms), residual SDs free, no
  between-patient variability. Biased towards a compromise when patients differ, but on
  the right order of magnitude, which is all a start and a prior check need.
* :func:`check_typical_values` — each parameter's distance from its prior median in
  prior standard deviations, and the verdict: a conflict only where the data determine
  the typical value (the distance counts the pooled estimate's own standard error, so a
  parameter the design cannot pin down is never "in conflict" wherever the optimiser
  happened to stop on a flat likelihood).
* :func:`data_informed_priors` — prior overrides (``"mu.CL": (loc, sd)``) re-centred on
  the pooled estimate for the parameters in conflict, with a scale that covers both the
  model's default and the estimate; the fit records them and says so.

What the pooled fit says about the model itself (a lag it lacks, a time unit that is not
the data's) is :mod:`twin_uq.inference.data_checks`; its findings ride along in the
review (:attr:`PriorReview.findings`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from twin_uq.inference.likelihood import (
    FitData,
    cohort_loglik,
    likelihood_theta,
    patient_predictions,
    score_predictions,
)
from twin_uq.inference.numpyro_model import ProgramStructure
from twin_uq.inference.postprocess import residual_from_draw
from twin_uq.inference.prepare import PreparedFit
from twin_uq.model.scales import to_natural

__all__ = [
    "DataFinding",
    "PooledFit",
    "PriorDataConflict",
    "PriorReview",
    "TypicalValueCheck",
    "check_typical_values",
    "data_informed_priors",
    "pooled_fit",
    "pooled_theta",
    "review_typical_values",
]

#: Distance (prior SDs of log typical value) beyond which a default prior is in conflict
#: with the data. 3 SDs: a prior that is right puts less than 0.3 % of its mass there.
CONFLICT_Z = 3.0


@dataclass(frozen=True)
class PooledFit:
    """Result of :func:`pooled_fit`.

    Attributes
    ----------
    log_typical
        ``(K,)`` pooled estimate of the typical values on the latent scale (``mu``: log, or
        logit for a fraction), model parameter order.
    sigma_add, sigma_prop
        Pooled residual SDs of the additive / proportional sites (their structure order).
    loglik
        Log-likelihood of the cohort at the estimate (sum over usable observations).
    converged
        Whether the relative change of the objective over the last 50 steps fell below
        1e-6 and the estimate is finite.
    steps
        Optimiser steps taken.
    standard_error
        ``(K,)`` standard error of ``log_typical`` from the curvature of the pooled
        log-likelihood at the estimate (residual SDs profiled out); ``inf`` along
        directions the data do not determine (flat or negative curvature).
    predictions
        ``(P, N)`` prediction of every observation at the estimate (NaN where the solve
        failed), for the data-driven model checks.
    """

    log_typical: np.ndarray
    sigma_add: np.ndarray
    sigma_prop: np.ndarray
    loglik: float
    converged: bool
    steps: int
    predictions: np.ndarray | None = None
    standard_error: np.ndarray | None = None


@dataclass(frozen=True)
class TypicalValueCheck:
    """One parameter's pooled estimate against its prior.

    ``z`` is ``(estimate - prior mean) / prior SD`` on the parameter's latent scale (log,
    or logit for a fraction). ``standard_error`` is the pooled estimate's own standard
    error on that scale (``inf``: the data do not determine it). ``conflict`` is
    ``|estimate - prior mean| > threshold * sqrt(prior SD² + standard_error²)``: the prior
    median is implausible given both the prior and what the data say, so an estimate the
    design leaves undetermined (a flat direction, where the optimiser stops anywhere) is
    never a conflict. ``prior_median`` and ``estimate`` are natural-scale values,
    ``prior_loc`` the prior mean on the latent scale.
    """

    parameter: str
    unit: str
    prior_loc: float
    prior_median: float
    prior_sd: float
    estimate: float
    z: float
    conflict: bool
    standard_error: float = 0.0

    def describe(self) -> str:
        """One line for a warning or a report."""
        ratio = self.estimate / self.prior_median
        return (
            f"{self.parameter}: the data put the typical value near {self.estimate:.4g} "
            f"{self.unit}, {ratio:.3g}x the prior median {self.prior_median:.4g} "
            f"({self.z:+.1f} prior SDs; pooled standard error {self.standard_error:.2g} "
            "on the log scale)"
        )


def pooled_fit(prepared: PreparedFit, *, steps: int = 600, learning_rate: float = 0.1) -> PooledFit:
    """Naive pooled maximum-likelihood estimate of the log typical values (see module doc).

    Starts at the priors' medians and the fit's starting residual SDs; Adam on
    ``(mu, log sigma)``. Patients whose solve fails at a point contribute a large constant
    penalty there, so the search leaves such regions instead of stopping on NaN.

    Parameters
    ----------
    prepared
        The prepared fit (its arrays, structure and priors are used, not changed).
    steps
        Optimiser steps (each one cohort log-likelihood gradient).
    learning_rate
        Adam step size on the log scale (0.1: a factor e in about ten steps).
    """
    s, data = prepared.structure, prepared.data
    init = prepared.init_values()
    start = {
        "mu": jnp.asarray(prepared.priors.mu_loc, float),
        "log_add": jnp.log(jnp.asarray(init.get("sigma_add", np.zeros(0)), float)),
        "log_prop": jnp.log(jnp.asarray(init.get("sigma_prop", np.zeros(0)), float)),
    }
    fixed = {k: jnp.asarray(v) for k, v in init.items() if k == "nu"}
    params, values, final, predictions, hessian = _optimise(
        s, int(steps), float(learning_rate), data, start, fixed
    )
    values = np.asarray(values)
    tail = values[-50:] if values.size >= 50 else values
    finite = bool(np.all(np.isfinite(np.asarray(params["mu"]))) and np.isfinite(values[-1]))
    # Adam oscillates around the optimum: "converged" means the mean objective of the last
    # 50 steps no longer improves on the 50 before by more than 1e-4 (relative).
    previous = values[-100:-50] if values.size >= 100 else values[: max(values.size // 2, 1)]
    gain = float(np.mean(previous) - np.mean(tail))
    converged = finite and gain <= 1e-4 * max(1.0, abs(float(np.mean(tail))))
    return PooledFit(
        log_typical=np.asarray(params["mu"]),
        sigma_add=np.exp(np.asarray(params["log_add"])),
        sigma_prop=np.exp(np.asarray(params["log_prop"])),
        loglik=float(final),
        converged=converged,
        steps=steps,
        predictions=np.asarray(predictions),
        standard_error=_standard_errors(np.asarray(hessian), n_mu=int(start["mu"].shape[0])),
    )


#: Relative size (against the largest) below which a curvature eigenvalue counts as flat.
FLAT_CURVATURE = 1e-8
#: Share of a coordinate's weight on flat directions above which it counts as undetermined
#: (an eigenvector component above ~0.3).
FLAT_WEIGHT = 0.1
#: Step (latent scale) of the central differences of the gradient that give the Hessian.
HESSIAN_STEP = 1e-2


def _standard_errors(hessian: np.ndarray, n_mu: int) -> np.ndarray:
    """``(n_mu,)`` standard errors of the first ``n_mu`` coordinates from a Hessian.

    ``hessian`` is the ``(D, D)`` curvature of the negative log-likelihood over all the
    pooled fit's coordinates (``mu`` first, then the log residual SDs), so the result is
    the marginal standard error with the residual SDs estimated alongside. Eigen-directions
    with curvature at most ``FLAT_CURVATURE`` x the largest, or negative (a saddle, or an
    optimiser that stopped short), carry no information: a coordinate with more than
    ``FLAT_WEIGHT`` of its weight on them gets ``inf``; below that, the small mixing of
    eigenvectors is rounding-level and the coordinate's own curvature decides.
    """
    h = 0.5 * (hessian + hessian.T)
    if not np.all(np.isfinite(h)):
        return np.full(n_mu, np.inf)
    lam, vec = np.linalg.eigh(h)
    informative = lam > FLAT_CURVATURE * max(float(np.max(np.abs(lam))), 1e-300)
    weight = vec[:n_mu] ** 2
    var = weight[:, informative] @ (1.0 / lam[informative])
    undetermined = np.sum(weight[:, ~informative], axis=1) > FLAT_WEIGHT
    return np.where(undetermined, np.inf, np.sqrt(var))


def pooled_theta(model, data: FitData, mu):
    """``(P, K)`` natural-scale parameters of every patient at the pooled latent ``mu``.

    Every patient at the same typical values plus the model's fixed allometric terms;
    ``(P, S, K)`` with time-varying covariates (:func:`likelihood_theta`, no covariate
    effects estimated yet).
    """
    latent = jnp.asarray(data.allometric) + jnp.asarray(mu)
    return likelihood_theta(model, latent, jnp.zeros(data.effect_param.shape), data)


def _residual(structure: ProgramStructure, data: FitData, params: dict, fixed: dict):
    draw = dict(fixed)
    if structure.add_outputs:
        draw["sigma_add"] = jnp.exp(params["log_add"])
    if structure.prop_outputs:
        draw["sigma_prop"] = jnp.exp(params["log_prop"])
    return residual_from_draw(structure, draw, int(data.error_code.shape[0]))


def _pooled_loglik(structure: ProgramStructure, data: FitData, params: dict, fixed: dict):
    """Cohort log-likelihood with every patient at ``to_natural(allometric + mu)``."""
    residual = _residual(structure, data, params, fixed)
    theta = pooled_theta(structure.model, data, params["mu"])
    ll, ok = cohort_loglik(structure.model, structure.settings, theta, data, residual)
    return _penalised_sum(ll, ok)


def _penalised_sum(ll, ok):
    per_patient = jnp.sum(jnp.where(jnp.isfinite(ll), ll, 0.0), axis=1)
    # A failed solve counts as a large finite penalty, so the search leaves it (not NaN).
    return jnp.sum(jnp.where(ok, per_patient, -1e6))


def _pooled_final(structure: ProgramStructure, data: FitData, params: dict, fixed: dict):
    """Log-likelihood and ``(P, N)`` predictions (NaN: failed solve) at the estimate.

    Scores the predictions as ``cohort_loglik`` does (``score_predictions``), so that the
    data-driven checks get them without a second compiled solve.
    """
    model, settings, arrays = structure.model, structure.settings, data.arrays
    residual = _residual(structure, data, params, fixed)
    theta = pooled_theta(model, data, params["mu"])

    def one(th, cov, schedule, times, output, grid, change_time):
        return patient_predictions(
            model, settings, th, cov, schedule, times, output, grid, change_time
        )

    f, ok = jax.vmap(one)(
        theta,
        arrays.covariates,
        arrays.schedule,
        arrays.obs_time,
        arrays.obs_output,
        data.grids,
        arrays.change_time,
    )
    ll, ok = jax.vmap(lambda a, f_, ok_: score_predictions(a, data.error_code, residual, f_, ok_))(
        arrays, f, ok
    )
    return _penalised_sum(ll, ok), jnp.where(ok[:, None], f, jnp.nan)


# Compiled once per (structure, steps, rate) and array shapes: fits of one model to
# cohorts of one size share it.
@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _optimise(structure: ProgramStructure, steps: int, learning_rate: float, data, start, fixed):
    """Adam for ``steps`` steps, then ``2 D`` gradient probes at the estimate (the Hessian).

    The probes run as further iterations of the same scan, so the one compiled gradient
    serves both (a second gradient graph would add its whole compile time to every fit).
    """
    n_obs = jnp.maximum(jnp.sum(jnp.asarray(data.arrays.obs_mask)), 1)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(learning_rate))
    flat_start, unravel = jax.flatten_util.ravel_pytree(start)
    dim = flat_start.shape[0]
    # Probe 2k + 0 / 2k + 1: the estimate plus / minus HESSIAN_STEP along coordinate k.
    eye = jnp.eye(dim, dtype=flat_start.dtype) * HESSIAN_STEP
    shifts = jnp.concatenate([jnp.zeros((steps, dim), flat_start.dtype), jnp.repeat(eye, 2, 0)])
    shifts = shifts * jnp.where(jnp.arange(steps + 2 * dim) % 2 == 0, 1.0, -1.0)[:, None]

    def objective(x):
        return -_pooled_loglik(structure, data, unravel(x), fixed) / n_obs

    def step(carry, shift):
        x, state = carry
        probing = jnp.any(shift != 0.0)
        value, grad = jax.value_and_grad(objective)(x + shift)
        updates, new_state = opt.update(grad, state, x)
        moved = optax.apply_updates(x, updates)
        keep = lambda old, new: jnp.where(probing, old, new)  # noqa: E731
        return (keep(x, moved), jax.tree.map(keep, state, new_state)), (value, grad)

    (flat, _), (values, grads) = jax.lax.scan(step, (flat_start, opt.init(flat_start)), shifts)
    params = unravel(flat)
    probes = grads[steps:].reshape(dim, 2, dim) * n_obs
    hessian = (probes[:, 0] - probes[:, 1]) / (2.0 * HESSIAN_STEP)
    return params, values[:steps], *_pooled_final(structure, data, params, fixed), hessian


def check_typical_values(
    prepared: PreparedFit, pooled: PooledFit, *, threshold: float = CONFLICT_Z
) -> list[TypicalValueCheck]:
    """Each parameter's pooled estimate against its prior, in model parameter order."""
    model = prepared.spec.model
    loc = np.asarray(prepared.priors.mu_loc, float)
    scale = np.asarray(prepared.priors.mu_scale, float)
    median = np.asarray(to_natural(model, loc))
    estimate = np.asarray(to_natural(model, np.asarray(pooled.log_typical, float)))
    out = []
    se = (
        np.zeros(len(model.parameters))
        if pooled.standard_error is None
        else np.asarray(pooled.standard_error, float)
    )
    for k, p in enumerate(model.parameters):
        distance = float(pooled.log_typical[k] - loc[k])
        z = distance / float(scale[k])
        allowed = threshold * float(np.sqrt(scale[k] ** 2 + se[k] ** 2))
        out.append(
            TypicalValueCheck(
                parameter=p.name,
                unit=p.unit,
                prior_loc=float(loc[k]),
                prior_median=float(median[k]),
                prior_sd=float(scale[k]),
                estimate=float(estimate[k]),
                z=z,
                conflict=bool(np.isfinite(z) and abs(distance) > allowed),
                standard_error=float(se[k]),
            )
        )
    return out


def data_informed_priors(
    checks: list[TypicalValueCheck], pooled: PooledFit, parameter_names: tuple[str, ...]
) -> dict[str, tuple[float, float]]:
    """Prior overrides for the parameters in conflict: ``{"mu.CL": (loc, sd)}``.

    The new prior is centred on the pooled estimate; its SD is the larger of the old SD
    and half the log-distance between the estimate and the old median, so that the
    model's default stays within two SDs: the data-informed prior does not exclude what
    the model's author believed, it only stops the prior from pulling towards it.
    """
    out = {}
    for k, c in enumerate(checks):
        if not c.conflict:
            continue
        loc = float(pooled.log_typical[k])
        distance = abs(loc - c.prior_loc)
        out[f"mu.{parameter_names[k]}"] = (loc, max(c.prior_sd, 0.5 * distance))
    return out


@dataclass(frozen=True)
class DataFinding:
    """Something the data show that the model does not describe (see ``data_checks``).

    Attributes
    ----------
    kind
        ``"missing_lag"`` or ``"time_unit"``.
    message
        What was seen, where (patients, doses, parameters) and what to do.
    details
        JSON-ready numbers behind the finding (recorded with the fit).
    """

    kind: str
    message: str
    details: dict

    def record(self) -> dict:
        """JSON-ready provenance."""
        return {"kind": self.kind, "message": self.message, **self.details}


class PriorDataConflict(UserWarning):
    """The data put a typical value many prior SDs from its prior median."""


@dataclass(frozen=True)
class PriorReview:
    """What the pre-fit check found and did (recorded in the fit as ``attrs["prior_check"]``).

    Attributes
    ----------
    mode
        ``PopulationModel.prior_check`` of the fit (``"adapt"`` or ``"warn"``).
    pooled
        The pooled fit.
    checks
        One :class:`TypicalValueCheck` per parameter.
    adjusted
        The prior overrides applied (``"adapt"`` only; empty when nothing was in conflict,
        the pooled fit did not converge, or every conflicting parameter had a user prior).
    findings
        What the data-driven model checks found (a missing lag, a time-unit mismatch).
    """

    mode: str
    pooled: PooledFit
    checks: tuple[TypicalValueCheck, ...]
    adjusted: dict[str, tuple[float, float]]
    findings: tuple[DataFinding, ...] = ()

    @property
    def conflicts(self) -> tuple[TypicalValueCheck, ...]:
        """The checks beyond the threshold."""
        return tuple(c for c in self.checks if c.conflict)

    def message(self) -> str | None:
        """The warning text, or ``None`` when there is nothing to say."""
        if not self.pooled.converged:
            return (
                "The pre-fit check of typical values was inconclusive: the pooled fit did not "
                "converge in its steps; priors left as given (set prior_check='off' to skip it)."
            )
        if not self.conflicts:
            return None
        lines = "; ".join(c.describe() for c in self.conflicts)
        if self.adjusted:
            done = (
                "priors re-centred on these estimates and widened to keep the model's "
                f"default within two SDs ({', '.join(self.adjusted)}); the fit starts there. "
                "Give explicit priors (priors={'mu.<name>': (log_median, sd)}) or "
                "prior_check='warn' to keep the model's"
            )
        else:
            done = (
                "priors left as given; with sparse data they pull the twins towards the "
                "default. Check the model, the units and the doses, or give explicit priors"
            )
        return f"Prior-data conflict: {lines}. {done}."

    def record(self) -> dict:
        """JSON-ready provenance."""
        return {
            "mode": self.mode,
            "pooled_converged": self.pooled.converged,
            "pooled_typical": {c.parameter: c.estimate for c in self.checks},
            "z": {c.parameter: round(c.z, 3) for c in self.checks},
            "pooled_standard_error": {
                c.parameter: (round(c.standard_error, 4) if np.isfinite(c.standard_error) else None)
                for c in self.checks
            },
            "adjusted_priors": {k: list(v) for k, v in self.adjusted.items()},
            "data_checks": [f.record() for f in self.findings],
        }


def review_typical_values(prepared: PreparedFit) -> PriorReview:
    """Run the pooled fit and the checks; the prior overrides ``"adapt"`` would apply.

    Parameters the user gave a ``mu`` prior for are never adjusted: an explicit prior is
    a decision, not a default.
    """
    spec = prepared.spec
    pooled = pooled_fit(prepared)
    padding = getattr(prepared, "padding", None)
    if padding is not None and pooled.predictions is not None:  # the cohort's shapes
        cut = pooled.predictions[: padding.n_patients, : padding.n_obs]
        pooled = replace(pooled, predictions=cut)
    checks = check_typical_values(prepared, pooled)
    adjusted: dict[str, tuple[float, float]] = {}
    if spec.prior_check == "adapt" and pooled.converged:
        proposed = data_informed_priors(checks, pooled, spec.model.parameter_names)
        adjusted = {k: v for k, v in proposed.items() if k not in spec.priors}
    return PriorReview(spec.prior_check, pooled, tuple(checks), adjusted)
