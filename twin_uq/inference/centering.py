"""Data-informed parameterisation of the random effects (``centering="auto"``).

A patient's random effect samples best *centred* when their data pin it down and
*non-centred* when the population does (Papaspiliopoulos, Roberts & Sköld 2007). For a
Gaussian random effect with prior variance ``ω²`` and data precision ``I`` the optimal
partial-centring weight is the posterior shrinkage ``w = ω² I / (1 + ω² I)``; with several
parameters, ``w_k = 1 - V_kk / ω_k²`` with ``V = (F + diag(1/ω²))⁻¹`` and ``F`` the
expected Fisher information matrix of the patient's observations about the log
parameters (:func:`shrinkage_weights`, what a fit reports as its centring weights).

Sampling goes one step further and *whitens* each patient's random effects against a
Gaussian approximation of its likelihood, ``exp(-½ θᵀ F θ + hᵀ θ)`` with ``h = F θ̂``
(:class:`AutoCentering`, :func:`latent_prior`, :func:`whitened_log_theta`)::

    I + Ω F Ω = U Uᵀ  (U upper triangular),   loc = U⁻¹ Ω (F mean - h),
    z ~ N(loc, Uᵀ U),   log theta = mean + Ω U⁻ᵀ (z - loc).

For every ``F`` and ``h`` this is exactly ``log theta ~ N(mean, Ω²)``; when the likelihood
is that Gaussian, the posterior of ``z`` is ``N(0, I)`` whatever the population parameters
``(mean, ω)``, so NUTS sees the population posterior beside independent standard normals.
``F`` and ``h`` come from the likelihood linearised once, at each patient's mode, and are
re-evaluated at the sampled residual SDs (:meth:`AutoCentering.canonical`): ``F`` scales
as ``1/σ²``, and with ``F`` fixed a residual SD moving along a ridge (the additive and
proportional parts of a combined error model) changed the posterior scale of every
well-observed latent with it.
A patient without data is non-centred (``F = 0``: ``z = η``); a small sampled ``ω``
makes every patient non-centred, so no funnel is left behind; parameters that trade off
(``p2`` and ``SI`` of the Bergman model) are decorrelated by the whole matrix.

Measured 2026-12-01 (8493aa3): on the 12-patient Bergman recovery fit (4 × (1000+1000), defaults)
partial centring with weights following ``ω`` gave max R-hat 1.014 (``omega[Gb]``, bulk
ESS 313), the whitened latents 1.003 (smallest bulk ESS 920) with a third of the leapfrog
steps (22 against 68 per iteration at 2 × (500+500)); on the 16-patient oral test cohort
(4 × (500+500), seeds 0–3) re-evaluating ``F`` at the sampled residual SDs took the
divergences from 1, 1, 0, 1 to 0 and the smallest bulk ESS from 169–401 to 728–1240; on
the 100-patient oral recovery fit (4 × (1000+1000)) the smallest bulk ESS is 4147
(2284 with 2688af6's partial centring). Measuring the centred part from 0 instead of from the
patient's estimate, as a first version did, had let a change of ``ω`` shift every
patient by ``Δw · mean`` and cut the smallest population ESS of a 100-patient oral fit
from 640 to 120; ``h`` puts that reference where the data are.

``F`` is evaluated before the fit, at each patient's approximate mode under the
population prior (starting between-patient SD, population median of the priors) and at
a residual SD estimated from the residuals there (:func:`centering_point`): ``F`` scales
with ``1/σ²``, so the residual SD must come from the data, not from the prior. It is a
heuristic for the *parameterisation* only; the posterior does not depend on it.

Derivatives are central finite differences of the noise-free predictions (step ``1e-3`` on
the log scale). A forward solve is all the model needs to provide, and the precision is
ample for a parameterisation. Censored observations are left out (their information is
smaller), which errs towards the non-centred form. A patient whose solve fails at the
population median gets ``F = 0, h = 0`` (non-centred).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from twin_uq.data import CohortArrays
from twin_uq.inference.likelihood import FitData, patient_predictions
from twin_uq.inference.residual import _TINY, ERROR_CODES, residual_sd
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate.fixed_step import FixedGrid

__all__ = [
    "AutoCentering",
    "CenteringPoint",
    "centering_point",
    "fisher_information",
    "latent_prior",
    "shrinkage_weights",
    "solve_upper",
    "solve_upper_transposed",
    "upper_cholesky",
    "weights_at",
    "whitened_log_theta",
]

_LOG_STEP = 1e-3
_LOGNORMAL = ERROR_CODES["lognormal"]


@eqx.filter_jit
def _whitened(
    model: Model,
    settings: SolverSettings,
    log_theta: Float[Array, "P K"],
    arrays: CohortArrays,
    error_code: Float[Array, " O"],
    add: Float[Array, " O"],
    prop: Float[Array, " O"],
    grids: FixedGrid | None = None,
) -> tuple[
    Float[Array, "P N"],
    Float[Array, "P K N"],
    Float[Array, " P"],
    Bool[Array, " P"],
    Bool[Array, "P N"],
    Float[Array, "P N"],
    Float[Array, "P N"],
]:
    """Whitened residuals and sensitivities of every patient at ``log_theta``.

    Returns ``r = (y - f) / sd`` and ``S = (df / dlog theta) / sd`` on the error model's own
    scale (log scale for ``lognormal``), both 0 at unused observations (padding, censored,
    failed solve); ``sum(log sd)`` over the used observations; whether the solve at the
    point and at every finite-difference neighbour succeeded; the ``(P, N)`` mask of
    used observations; the predictions ``f`` and the residual SDs ``sd`` at the point.
    ``grids``: the patients' precomputed fixed-step grids (``method="rk4"``), shared by the
    finite-difference neighbours (the grid does not depend on the parameters).
    """
    K = log_theta.shape[1]
    shifts = jnp.concatenate([jnp.zeros((1, K)), _LOG_STEP * jnp.eye(K), -_LOG_STEP * jnp.eye(K)])

    def one_patient(lt, cov, arr, grid):
        def predict(shift):
            return patient_predictions(
                model,
                settings,
                jnp.exp(lt + shift),
                cov,
                arr.schedule,
                arr.obs_time,
                arr.obs_output,
                grid,
            )

        f_all, ok_all = jax.vmap(predict)(shifts)  # (2K+1, N)
        f = f_all[0]
        dfdlog = (f_all[1 : K + 1] - f_all[K + 1 :]) / (2 * _LOG_STEP)  # (K, N)
        code = error_code[arr.obs_output]
        sd = residual_sd(code, f, add[arr.obs_output], prop[arr.obs_output])
        lognormal = code == _LOGNORMAL
        f_pos = jnp.maximum(jnp.abs(f), _TINY)
        scale = jnp.where(lognormal, f_pos, 1.0)
        y = arr.obs_value
        resid = jnp.where(lognormal, jnp.log(jnp.maximum(y, _TINY)) - jnp.log(f_pos), y - f)
        ok = jnp.all(ok_all) & jnp.all(jnp.isfinite(dfdlog)) & jnp.all(jnp.isfinite(f))
        used = arr.obs_mask & ~arr.obs_censored & ok
        r = jnp.where(used, resid / sd, 0.0)
        S = jnp.where(used, dfdlog / (scale * sd), 0.0)
        log_sd = jnp.sum(jnp.where(used, jnp.log(sd), 0.0))
        return r, S, log_sd, ok, used, f, sd

    return jax.vmap(one_patient)(log_theta, arrays.covariates, arrays, grids)


class AutoCentering(eqx.Module):
    """What ``centering="auto"`` needs during sampling.

    Each patient's likelihood linearised at its approximate mode, on the error model's
    own scale (log scale for ``lognormal``).

    At residual SDs ``(add, prop)`` the observation variances are
    ``var = var_add · add² + var_prop · prop²``, and :meth:`canonical` gives the Gaussian
    approximation of the likelihood in canonical form, ``exp(-½ θᵀ F θ + hᵀ θ)`` over
    ``θ = log theta``, with ``F = Σ g gᵀ / var`` and ``h = F θ0 + Σ g e / var``
    (Gauss–Newton). ``F`` and ``h`` therefore follow the sampled residual SDs: in the
    linear-Gaussian case that keeps the whitened latents independent of the residual SD
    as well as of the population parameters.

    Attributes
    ----------
    sensitivity
        ``(P, K, N)`` ``g = d f / d log theta`` at the mode, 0 at unused observations
        (padding, censored, failed solve).
    residual
        ``(P, N)`` ``e = y - f`` at the mode, 0 at unused observations.
    point
        ``(P, K)`` the mode ``θ0``.
    var_add, var_prop
        ``(P, N)`` coefficients of ``add²`` and ``prop²`` in each observation's variance
        (``prop²`` enters as ``f² prop²``, or ``prop²`` for ``lognormal``); 0 where unused.
    unused
        ``(P, N)`` 1.0 at unused observations (keeps their variance away from 0).
    output
        ``(P, N)`` output index of each observation.
    add, prop
        ``(O,)`` the residual SDs estimated at the modes (where the reported centring
        weights are evaluated).
    unit_information, unit_vector, unit_scale
        Optional (:meth:`with_unit_scale`), derived from the fields above: when each
        output's variance has one term (``add`` or ``prop``, not ``combined``), ``F`` and
        the data part of ``h`` are sums over outputs of ``(P, O, K, K)`` and ``(P, O, K)``
        terms at unit SD divided by that output's SD squared; ``unit_scale`` names the
        term of each output (``""`` where an output has no used observation).
    """

    sensitivity: Float[Array, "P K N"]
    residual: Float[Array, "P N"]
    point: Float[Array, "P K"]
    var_add: Float[Array, "P N"]
    var_prop: Float[Array, "P N"]
    unused: Float[Array, "P N"]
    output: Array
    add: Float[Array, " O"]
    prop: Float[Array, " O"]
    unit_information: Float[Array, "P O K K"] | None = None
    unit_vector: Float[Array, "P O K"] | None = None
    unit_scale: tuple[str, ...] = eqx.field(static=True, default=())

    def with_unit_scale(self) -> AutoCentering:
        """These arrays with the unit-SD terms of :meth:`canonical` precomputed, if exact.

        Exact when no output has a combined error model (both variance terms used); the
        canonical form at sampled SDs is then a weighted sum of ``O`` precomputed terms
        instead of a sum over every observation (measured on the 100-patient Bergman
        cohort: about a fifth of the whole NumPyro potential's gradient). Otherwise
        returned unchanged.
        """
        var_add, var_prop = np.asarray(self.var_add), np.asarray(self.var_prop)
        output = np.asarray(self.output)
        n_out = int(np.shape(self.add)[0])
        scale, coefficient = [], np.zeros_like(var_add)
        for o in range(n_out):
            here = output == o
            has_add, has_prop = bool(np.any(var_add[here] > 0)), bool(np.any(var_prop[here] > 0))
            if has_add and has_prop:
                return self
            scale.append("add" if has_add else "prop" if has_prop else "")
            coefficient = np.where(here, var_add if has_add else var_prop, coefficient)
        used = coefficient > 0
        inv = np.where(used, 1.0 / np.where(used, coefficient, 1.0), 0.0)  # (P, N)
        g = np.asarray(self.sensitivity)  # (P, K, N)
        onehot = (output[..., None] == np.arange(n_out)) * inv[..., None]  # (P, N, O)
        information = np.einsum("pkn,pln,pno->pokl", g, g, onehot)
        vector = np.einsum("pkn,pn,pno->pok", g, np.asarray(self.residual), onehot)
        return dataclasses.replace(
            self,
            unit_information=jnp.asarray(information),
            unit_vector=jnp.asarray(vector),
            unit_scale=tuple(scale),
        )

    def canonical(self, add, prop, xp=jnp):
        """``(F, h)``: ``(P, K, K)`` information and ``(P, K)`` vector at residual SDs ``(O,)``."""
        if self.unit_information is not None:
            ones = xp.ones_like(add[0])
            sd = [add[o] if c == "add" else prop[o] if c == "prop" else ones
                  for o, c in enumerate(self.unit_scale)]
            w = xp.stack(sd) ** -2  # (O,)
            F = (self.unit_information * w[:, None, None]).sum(axis=1)
            h = (F * self.point[:, None, :]).sum(axis=-1) + (
                self.unit_vector * w[:, None]
            ).sum(axis=1)
            return F, h
        a = add[self.output]
        b = prop[self.output]
        inv_sd = (self.var_add * a**2 + self.var_prop * b**2 + self.unused) ** -0.5
        S = self.sensitivity * inv_sd[:, None, :]
        F = (S[:, :, None, :] * S[:, None, :, :]).sum(axis=-1)
        h = (F * self.point[:, None, :]).sum(axis=-1) + (
            S * (self.residual * inv_sd)[:, None, :]
        ).sum(axis=-1)
        return F, h

    def as_numpy(self) -> AutoCentering:
        """The same arrays as NumPy arrays, for evaluating outside ``jit`` with ``xp=np``.

        Run op by op in JAX, the unrolled algebra would compile every small operation.
        """
        return jax.tree.map(np.asarray, self)

    def latent_prior(self, mean, omega, add, prop, xp=jnp):
        """:func:`latent_prior` at the residual SDs ``(add, prop)``: ``(loc, U)``."""
        F, h = self.canonical(add, prop, xp)
        return latent_prior(F, h, mean, omega, xp)


def weights_at(data: FitData, omega: Float[Array, " K"]) -> Float[Array, "P K"]:
    """The partial-centring weights of a fit at the between-patient SD ``omega``.

    Fixed weights (``centering`` a number, or a fit saved before the random effects were
    whitened) are returned as they are; with ``"auto"`` they are the shrinkage weights at
    ``omega`` (``diag`` of ``1 - V Ω⁻²``), reported to say how centred each patient's
    latent is; sampling uses :func:`latent_prior`.
    """
    if data.auto_centering is None:
        return data.centering
    auto = data.auto_centering
    information, _ = auto.canonical(auto.add, auto.prop)
    return shrinkage_weights(information, omega, xp=jnp)


# The factorisation and solves below are unrolled over the K (3-6) parameters and
# vectorised over patients: XLA's batched LAPACK calls for P tiny matrices cost about
# 1 ms per gradient on CPU at 100 patients (2.4x the whole oral model's gradient), the
# unrolled element-wise form a few microseconds, and it differentiates as plain
# arithmetic. The same code runs on NumPy, JAX and PyTensor arrays.


def _order(matrix) -> int:
    """The (static) size of the last axis, also for PyTensor variables."""
    static = getattr(getattr(matrix, "type", None), "shape", None)
    if static is not None and static[-1] is not None:
        return int(static[-1])
    return int(matrix.shape[-1])


def upper_cholesky(matrix, xp=jnp):
    """``(..., K, K)`` upper-triangular ``U`` with ``matrix = U Uᵀ`` (Cholesky in reverse order)."""
    K = _order(matrix)
    U = [[None] * K for _ in range(K)]
    for j in reversed(range(K)):
        d = matrix[..., j, j] - sum((U[j][k] ** 2 for k in range(j + 1, K)), 0.0)
        U[j][j] = xp.sqrt(d)
        for i in range(j):
            off = matrix[..., i, j] - sum((U[i][k] * U[j][k] for k in range(j + 1, K)), 0.0)
            U[i][j] = off / U[j][j]
    zero = xp.zeros_like(matrix[..., 0, 0])
    rows = [xp.stack([U[i][j] if j >= i else zero for j in range(K)], axis=-1) for i in range(K)]
    return xp.stack(rows, axis=-2)


def solve_upper(upper, b, xp=jnp):
    """``x`` with ``U x = b`` (back substitution); ``upper`` ``(..., K, K)``, ``b`` ``(..., K)``."""
    K = _order(upper)
    x = [None] * K
    for i in reversed(range(K)):
        rest = sum((upper[..., i, k] * x[k] for k in range(i + 1, K)), 0.0)
        x[i] = (b[..., i] - rest) / upper[..., i, i]
    return xp.stack(x, axis=-1)


def solve_upper_transposed(upper, c, xp=jnp):
    """``y`` with ``Uᵀ y = c`` (forward substitution); shapes as in :func:`solve_upper`."""
    K = _order(upper)
    y = [None] * K
    for i in range(K):
        rest = sum((upper[..., k, i] * y[k] for k in range(i)), 0.0)
        y[i] = (c[..., i] - rest) / upper[..., i, i]
    return xp.stack(y, axis=-1)


def latent_prior(
    information: Float[Array, "P K K"],
    information_vector: Float[Array, "P K"],
    mean: Float[Array, "P K"],
    omega: Float[Array, " K"],
    xp=jnp,
) -> tuple[Float[Array, "P K"], Float[Array, "P K K"]]:
    """Prior of the whitened random effects: ``z ~ N(loc, Uᵀ U)``, per patient.

    With ``B = I + Ω F Ω = U Uᵀ`` (``U`` upper triangular), ``loc = U⁻¹ Ω (F mean - h)``
    and :func:`whitened_log_theta` mapping ``z`` to ``log theta = mean + Ω U⁻ᵀ (z - loc)``,
    ``log theta ~ N(mean, Ω²)`` exactly for any ``F, h``: the model is unchanged. When the
    likelihood is the Gaussian ``exp(-½ θᵀ F θ + hᵀ θ)`` the posterior of ``z`` is
    ``N(0, I)`` whatever the population parameters. Returns ``(loc, U)``; ``Uᵀ`` is the
    ``scale_tril`` of ``z``.

    ``xp`` is the array namespace (``jax.numpy``; ``numpy``; ``pytensor.tensor`` for the
    PyMC backend). ``B`` has every eigenvalue ``>= 1``, so the factorisation stays well
    conditioned as ``ω`` goes to 0.
    """
    F, h = information, information_vector
    K = _order(F)
    B = xp.eye(K) + omega[:, None] * F * omega[None, :]
    upper = upper_cholesky(B, xp)
    rhs = omega * ((F * mean[..., None, :]).sum(axis=-1) - h)
    return solve_upper(upper, rhs, xp), upper


def whitened_log_theta(
    mean: Float[Array, "P K"],
    omega: Float[Array, " K"],
    z: Float[Array, "P K"],
    loc: Float[Array, "P K"],
    upper: Float[Array, "P K K"],
    xp=jnp,
) -> Float[Array, "P K"]:
    """``log theta = mean + Ω U⁻ᵀ (z - loc)`` for the whitened latents of :func:`latent_prior`."""
    return mean + omega * solve_upper_transposed(upper, z - loc, xp)


def fisher_information(
    model: Model,
    settings: SolverSettings,
    log_theta: Float[Array, "P K"],
    arrays: CohortArrays,
    error_code: Float[Array, " O"],
    add: Float[Array, " O"],
    prop: Float[Array, " O"],
) -> np.ndarray:
    """Expected Fisher information matrix of each patient's data about ``log theta``.

    Parameters
    ----------
    log_theta
        ``(P, K)`` log parameters at which to evaluate it.
    arrays
        The cohort's padded observations.
    error_code, add, prop
        ``(O,)`` residual error model per output and its additive SD (output units) and
        proportional SD (fraction; log-scale SD for ``lognormal``).

    Returns
    -------
    ``(P, K, K)`` information, in 1 / (log-parameter units)²; 0 for a patient whose solve
    failed or who has no uncensored observation.
    """
    S = _whitened(model, settings, log_theta, arrays, error_code, add, prop)[1]
    return _information(np.asarray(S))


def _information(S: np.ndarray) -> np.ndarray:
    """``(P, K, K)`` information ``S Sᵀ`` from ``(P, K, N)`` whitened sensitivities."""
    return S @ np.swapaxes(S, 1, 2)


@dataclass(frozen=True)
class CenteringPoint:
    """Where the centring weights were evaluated (the result of :func:`centering_point`).

    Attributes
    ----------
    log_theta
        ``(P, K)`` each patient's approximate posterior mode under the population prior.
    add, prop
        ``(O,)`` residual SDs re-estimated from the residuals at those modes.
    information
        ``(P, K, K)`` Fisher information there.
    information_vector
        ``(P, K)`` ``F θ̂``: the linearised likelihood there peaks at ``θ̂`` (Gauss–Newton:
        ``F θ̂ = F log_theta + S r`` with ``S`` the whitened sensitivities and ``r`` the
        whitened residuals); with ``information`` the canonical form of that Gaussian.
    linearisation
        The likelihood linearised at the modes, from which ``F`` and ``h`` follow at any
        residual SD (what sampling uses).
    """

    log_theta: np.ndarray
    add: np.ndarray
    prop: np.ndarray
    information: np.ndarray
    information_vector: np.ndarray
    linearisation: AutoCentering


def centering_point(
    model: Model,
    settings: SolverSettings,
    mean: np.ndarray,
    omega: np.ndarray,
    arrays: CohortArrays,
    error_code: Array,
    add: np.ndarray,
    prop: np.ndarray,
    *,
    grids: FixedGrid | None = None,
    rounds: int = 3,
    iterations: int = 6,
) -> CenteringPoint:
    """Patients' modes and a data-informed residual SD, for evaluating the weights.

    The information ``F`` scales with ``1 / σ²``: evaluated at a starting residual SD four
    times too small (half a prior scale of 0.05 against a true proportional error of 0.1),
    it overstates ``F`` sixteen-fold and centres patients whose data cannot carry it (seen
    on the Bergman model: 22 divergent transitions of 600). So the residual SD is
    estimated from the data first, by alternating

    1. each patient's mode of ``log theta`` under the population prior ``N(mean, ω²)`` at
       the current SDs (``iterations`` Levenberg–Marquardt steps on the whitened
       residuals, a step kept only if the penalised objective falls), and
    2. one scale factor per output, ``c² = Σ r² / (n - p)``, applied to both its additive
       and proportional SD; ``p`` is the number of parameters the patients' data
       determine (the sum of their shrinkage weights).

    Parameters
    ----------
    mean
        ``(P, K)`` population mean of ``log theta`` for each patient (covariates applied).
    omega
        ``(K,)`` between-patient SD (log scale).
    add, prop
        ``(O,)`` starting residual SDs.
    grids
        The patients' fixed-step grids (``method="rk4"``; built from the schedules when
        omitted).

    Returns
    -------
    CenteringPoint
    """
    mean = np.asarray(mean, dtype=float)
    omega = np.asarray(omega, dtype=float)
    add = np.asarray(add, dtype=float).copy()
    prop = np.asarray(prop, dtype=float).copy()
    P, K = mean.shape
    prior_precision = np.diag(1.0 / omega**2)
    output = np.asarray(arrays.obs_output)
    n_out = add.shape[0]

    def evaluate(eta):
        out = _whitened(
            model,
            settings,
            jnp.asarray(mean + eta),
            arrays,
            error_code,
            jnp.asarray(add),
            jnp.asarray(prop),
            grids,
        )
        r, S, log_sd, ok, used, f, sd = map(np.asarray, out)
        objective = 0.5 * np.sum(r**2, 1) + log_sd + 0.5 * np.sum((eta / omega) ** 2, 1)
        return r, S, used, np.where(ok, objective, np.inf), f, sd

    eta = np.zeros((P, K))
    for round_ in range(rounds + 1):
        r, S, used, objective, f, sd = evaluate(eta)
        if round_ == rounds:
            break
        damping = np.full(P, 1e-2)
        for _ in range(iterations):
            H = _information(S) + prior_precision
            g = np.einsum("pkn,pn->pk", S, r) - eta / omega**2
            diag = np.einsum("pkk->pk", H)
            lhs = H + damping[:, None, None] * np.eye(K) * diag[:, :, None]
            step = np.linalg.solve(lhs, g[:, :, None])[:, :, 0]
            trial = np.clip(eta + step, -4.0 * omega, 4.0 * omega)
            r_t, S_t, used_t, obj_t, _, _ = evaluate(trial)
            better = obj_t < objective
            eta = np.where(better[:, None], trial, eta)
            r = np.where(better[:, None], r_t, r)
            S = np.where(better[:, None, None], S_t, S)
            used = np.where(better[:, None], used_t, used)
            objective = np.where(better, obj_t, objective)
            damping = np.where(better, damping / 3.0, damping * 4.0)
        # Residual scale per output at the modes, net of the parameters fitted.
        fitted = shrinkage_weights(_information(S), omega).sum(1)  # (P,)
        n_used = used.sum(1)
        for o in range(n_out):
            in_o = used & (output == o)
            n_o = in_o.sum()
            if n_o == 0:
                continue
            share = np.divide(in_o.sum(1), n_used, out=np.zeros(P), where=n_used > 0)
            dof = max(n_o - float(np.sum(fitted * share)), 1.0)
            c = float(np.sqrt(np.sum(np.where(in_o, r**2, 0.0)) / dof))
            c = min(max(c, 0.2), 5.0)  # one round moves the SD at most five-fold
            add[o] *= c
            prop[o] *= c
    log_theta = mean + eta
    code = np.asarray(error_code)[output]
    additive = np.isin(code, [ERROR_CODES[k] for k in ("additive", "combined", "student_t")])
    lognormal = code == _LOGNORMAL
    linear = AutoCentering(
        sensitivity=jnp.asarray(S * sd[:, None, :]),
        residual=jnp.asarray(r * sd),
        point=jnp.asarray(log_theta),
        var_add=jnp.asarray(np.where(used, additive, 0.0)),
        var_prop=jnp.asarray(np.where(used, np.where(lognormal, 1.0, (code != 0) * f**2), 0.0)),
        unused=jnp.asarray(1.0 - used),
        output=jnp.asarray(output),
        add=jnp.asarray(add),
        prop=jnp.asarray(prop),
    )
    information, vector = linear.as_numpy().canonical(add, prop, xp=np)
    return CenteringPoint(
        log_theta=log_theta,
        add=add,
        prop=prop,
        information=information,
        information_vector=vector,
        linearisation=linear,
    )


def shrinkage_weights(information, omega, xp=np):
    """``(P, K)`` centring weights from ``(P, K, K)`` information matrices.

    ``w_k = 1 - V_kk / ω_k²`` with ``V = (F + diag(1/ω²))⁻¹``; for a diagonal ``F`` this is
    ``ω² F_kk / (1 + ω² F_kk)``. Computed as ``1 - diag((I + Ω F Ω)⁻¹)`` with
    ``Ω = diag(ω)``, whose matrix has every eigenvalue ``>= 1``, so it stays well
    conditioned as ``ω`` goes to 0 (where every weight goes to 0: non-centred).

    ``xp`` is the array namespace: ``numpy``, ``jax.numpy`` inside a sampler (the weights
    then follow the sampled ``ω``), or ``pytensor.tensor`` for the PyMC backend.
    """
    K = information.shape[-1]
    scaled = omega[..., :, None] * information * omega[..., None, :]
    inverse = xp.linalg.inv(xp.eye(K) + scaled)
    return xp.clip(1.0 - xp.diagonal(inverse, axis1=-2, axis2=-1), 0.0, 1.0)
