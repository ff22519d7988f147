"""The centring point: each patient's mode and a data-informed residual SD, before the fit.

:func:`centering_point` alternates patient modes (Levenberg–Marquardt on the whitened
residuals under the population prior) and a residual scale per output, and linearises the
likelihood there (:class:`~twin_uq.inference.linearisation.AutoCentering`);
:func:`fisher_information` is the expected information at given log parameters. Both use
central finite differences of the noise-free predictions. Why: see
:mod:`twin_uq.inference.centering`.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from twin_uq._types import CohortParams, ErrorCodes, PerObservation, PerOutput
from twin_uq.data import CohortArrays
from twin_uq.inference.likelihood import patient_predictions
from twin_uq.inference.linearisation import AutoCentering
from twin_uq.inference.residual import _TINY, ERROR_CODES, residual_sd
from twin_uq.inference.whitening import shrinkage_weights
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.scales import to_natural
from twin_uq.simulate.fixed_step import FixedGrid

__all__ = ["CenteringPoint", "centering_point", "fisher_information", "population_step"]

_LOG_STEP = 1e-3
# The centring point has settled when a round moves no residual SD by more than 3 % and
# no population mean by more than 3 % of its between-patient SD.
_SETTLED = 0.03
_MIN_ROUNDS = 3
# The population mean of a parameter is estimated with the modes only where they sit on
# average more than _FAR between-patient SDs from the prior median: estimated everywhere,
# the mean also moved by half an ω along the weakly determined p2/SI ridge of the Bergman
# model, whose 12-patient default fit then read R-hat 1.011 at seed 1 (1.005 before).
_FAR = 2.0
_LOGNORMAL = ERROR_CODES["lognormal"]


@eqx.filter_jit
def _whitened(
    model: Model,
    settings: SolverSettings,
    log_theta: CohortParams,
    arrays: CohortArrays,
    error_code: ErrorCodes,
    add: PerOutput,
    prop: PerOutput,
    grids: FixedGrid | None = None,
) -> tuple[
    PerObservation,
    Float[Array, "P K N"],
    Float[Array, " P"],
    Bool[Array, " P"],
    Bool[Array, "P N"],
    PerObservation,
    PerObservation,
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
                to_natural(model, lt + shift),
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


def fisher_information(
    model: Model,
    settings: SolverSettings,
    log_theta: CohortParams,
    arrays: CohortArrays,
    error_code: ErrorCodes,
    add: PerOutput,
    prop: PerOutput,
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
        ``(P, K)`` each patient's approximate posterior mode under ``N(mean, ω²)``, with
        ``mean`` estimated with the modes where they sit far from it and ``ω`` as given.
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
    mean
        ``(P, K)`` the population mean of ``log theta`` (covariates applied) the modes
        were found under, estimated with them (:func:`population_step`); the given one
        with ``estimate_population=False``.
    rounds
        How many rounds of modes and scales were run (at most ``rounds`` of
        :func:`centering_point`; fewer once the point settled).
    """

    log_theta: np.ndarray
    add: np.ndarray
    prop: np.ndarray
    information: np.ndarray
    information_vector: np.ndarray
    linearisation: AutoCentering
    mean: np.ndarray
    rounds: int


def population_step(
    mean: np.ndarray, eta: np.ndarray, omega: np.ndarray, patients: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One EM step of the population mean from the patients' modes, at fixed ``ω``.

    The mean moves by the average mode ``ē`` (``eta`` the other way, so the modes stay
    where they are); fixed effects (``ω = 0``) keep their mean. For a likelihood Gaussian
    in ``log theta`` with information ``F_i`` and peak ``y_i``, the mode is
    ``eta_i = M_i (y_i - mean)`` with ``M_i = Ω² (Ω² + F_i⁻¹)⁻¹``, so the fixed point,
    ``Σ_i eta_i = 0``, is the marginal maximum likelihood of the mean, reached at the
    rate of the shrinkage: a direction the data determine moves at once, one they barely
    inform stays near the prior (a scoring step, ``(Σ M_i)⁻¹ Σ eta_i``, jumped along the
    weakly determined ``p2``/``SI`` ridge of the Bergman model). ``ω`` is not estimated:
    Laplace-EM for it drifted along that ridge round after round, and the linearisation
    with it (smallest bulk ESS 1155 -> 748 on the 12-patient Bergman fit, 2026-12-08).

    Parameters
    ----------
    mean
        ``(P, K)`` population mean of ``log theta`` per patient (covariates applied).
    eta
        ``(P, K)`` modes relative to ``mean``.
    omega
        ``(K,)`` between-patient SD; 0 for a fixed effect.
    patients
        Only the first ``patients`` rows are patients of the cohort; the rest (ghosts of
        shape buckets) follow the mean without moving it. Default: every row.

    Returns
    -------
    ``(mean, eta)`` updated.
    """
    shift = np.where(omega == 0, 0.0, eta[:patients].mean(0))
    return mean + shift, eta - shift


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
    rounds: int = 12,
    iterations: int = 6,
    patients: int | None = None,
    estimate_population: bool = True,
) -> CenteringPoint:
    """Patients' modes and a data-informed residual SD, for evaluating the weights.

    The information ``F`` scales with ``1 / σ²``: evaluated at a starting residual SD four
    times too small (half a prior scale of 0.05 against a true proportional error of 0.1),
    it overstates ``F`` sixteen-fold and centres patients whose data cannot carry it (seen
    on the Bergman model: 22 divergent transitions of 600). So the residual SD is
    estimated from the data first, by alternating

    1. each patient's mode of ``log theta`` under the population distribution
       ``N(mean, ω²)`` at the current SDs (``iterations`` Levenberg–Marquardt steps on
       the whitened residuals, a step kept only if the penalised objective falls),
    2. with ``estimate_population``, one EM step of the population ``mean`` from the
       modes (:func:`population_step`) for each parameter whose modes sit on average
       more than 2 ``ω`` from the given mean, and
    3. one scale factor per output, ``c² = Σ r² / (n - p)``, applied to both its additive
       and proportional SD; ``p`` is the number of parameters the patients' data
       determine (the sum of their shrinkage weights),

    for 3 rounds, and on until a round moves no SD by more than 3 % and no mean by more
    than 3 % of its ``ω`` (at most ``rounds`` rounds) once a mean is estimated. The clip of each step to ``±4ω`` from the mean
    holds each round's modes near the current mean, and the mean follows them.

    Step 2 matters when the data sit far from the prior: the modes of a 32-patient oral
    cohort with typical V 20 L under the default prior (median 50 L, starting ``ω`` 0.15)
    stayed at 29-63 L, so the residuals there put the proportional SD at 1.1 (truth 0.1)
    and the linearisation far from the posterior, which left a funnel along ``ω_CL``
    (13-24 divergences at the default settings, 2026-12-07). ``ω`` stays at the given
    starting value (see :func:`population_step`).

    Parameters
    ----------
    mean
        ``(P, K)`` population mean of ``log theta`` for each patient (covariates applied):
        where the search starts.
    omega
        ``(K,)`` between-patient SD (latent scale); 0 for a fixed effect, which stays at
        its mean.
    add, prop
        ``(O,)`` starting residual SDs.
    grids
        The patients' fixed-step grids (``method="rk4"``; built from the schedules when
        omitted).
    estimate_population
        Estimate ``mean`` with the modes (default), or keep the given one.
    patients
        Only the first ``patients`` rows are the cohort's patients; the others (ghosts of
        shape buckets, without observations) take no part in the estimate of ``mean``,
        so that padding leaves the real patients' point unchanged. Default: every row.

    Returns
    -------
    CenteringPoint
    """
    mean = np.asarray(mean, dtype=float)
    omega = np.asarray(omega, dtype=float)
    add = np.asarray(add, dtype=float).copy()
    prop = np.asarray(prop, dtype=float).copy()
    P, K = mean.shape
    # A fixed effect (omega = 0) stays at its mean: its row and column of the step's
    # system are the identity and its gradient 0, so its step is 0 and the others' steps
    # are those of the random effects alone.
    fixed = omega == 0
    free = np.where(fixed, 1.0, omega)
    prior_precision = np.diag(1.0 / free**2)
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
        objective = 0.5 * np.sum(r**2, 1) + log_sd + 0.5 * np.sum((eta / free) ** 2, 1)
        return r, S, used, np.where(ok, objective, np.inf), f, sd

    eta = np.zeros((P, K))
    settled = False
    given, far = mean[0].copy(), np.zeros(K, dtype=bool)
    for round_ in range(rounds + 1):
        r, S, used, objective, f, sd = evaluate(eta)
        if round_ == rounds or settled:
            break
        damping = np.full(P, 1e-2)
        for _ in range(iterations):
            H = _information(S) + prior_precision
            g = np.einsum("pkn,pn->pk", S, r) - eta / free**2
            if fixed.any():
                H = np.where(fixed[:, None] | fixed[None, :], np.diag(fixed * 1.0), H)
                g = np.where(fixed, 0.0, g)
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
        moves = [0.0]
        if estimate_population:
            # A mean is estimated once the modes sit on average more than 2 ω from it;
            # below that the given mean is kept (and the point is the one of earlier
            # releases, see _FAR).
            far |= ~fixed & (np.abs(mean[0] + eta[:patients].mean(0) - given) > _FAR * free)
            if far.any():
                old_mean = mean[0]
                mean, eta = population_step(mean, eta, np.where(far, omega, 0.0), patients)
                moves += [np.max(np.abs(mean[0] - old_mean) / free)]
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
            moves.append(abs(np.log(c)))
            add[o] *= c
            prop[o] *= c
        # without a mean to estimate: the three rounds of earlier releases
        settled = round_ + 1 >= _MIN_ROUNDS and (not far.any() or max(moves) < _SETTLED)
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
        mean=mean,
        rounds=round_,
        log_theta=log_theta,
        add=add,
        prop=prop,
        information=information,
        information_vector=vector,
        linearisation=linear,
    )
