"""After a fit on a fixed-step grid, measure the solver's error where the posterior is.

A fixed-step solve (``method="rk4"``, :mod:`twin_uq.simulate.fixed_step`) has no error
control while sampling, so its accuracy is checked once afterwards, the way Stan users
are advised to check ODE tolerances: a subset of posterior draws is re-solved for every
patient with an adaptive reference solver (diffrax Tsit5 at the settings' ``rtol`` and
``atol``) and the predictions at the observation times are compared in units of the
residual SD of each observation under that draw (log-scale difference over the log SD
for the ``lognormal`` error model).

Threshold
---------
An error of ``d`` residual SDs shared by all ``N`` observations of a cohort moves a
population estimate by up to about ``d * sqrt(N)`` posterior SDs. The check passes when
the largest error is below ``0.1 / sqrt(N)`` residual SDs, so that even a systematic error
moves no estimate by more than a tenth of its posterior SD; otherwise
:meth:`twin_uq.posterior.CohortPosterior.diagnostics` says so and the fit is not
"converged".

Failures
--------
A solve that fails in only one of the two solvers is a disagreement, and fails the check:
where the reference fails, the check names its :class:`~twin_uq.simulate.SolveStatus` with
message and remedy (e.g. the adaptive solver's step budget at these draws); where only
the fixed-step solve failed, a step too large for the model's fastest process is the
usual cause. The check's ``message`` and ``remedy`` say which.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from twin_uq.inference.likelihood import FitData
from twin_uq.inference.numpyro_model import ProgramStructure
from twin_uq.inference.postprocess import residuals_of_draws
from twin_uq.inference.residual import ERROR_CODES, residual_sd
from twin_uq.model.base import Model, SolverSettings
from twin_uq.simulate import SolveStatus, count_statuses, solve
from twin_uq.simulate.status import STATUS_INFO

__all__ = ["DRAWS_CHECKED", "check_fit_draws", "check_fixed_step", "draws_to_check"]

DRAWS_CHECKED = 32
"""Posterior draws re-solved by the reference solver (evenly spaced over all chains)."""

_LOGNORMAL = ERROR_CODES["lognormal"]


@partial(jax.jit, static_argnums=(0, 1))
def _reference_predictions(
    model: Model, settings: SolverSettings, theta, data: FitData
) -> tuple[jax.Array, SolveStatus]:
    """``(S, P, N)`` each observation's own output under ``settings``, ``(S, P)`` statuses."""
    arr = data.arrays

    def one_patient(th, cov, a):
        traj = solve(model, th, cov, a.schedule, a.obs_time, settings)
        f = jnp.take_along_axis(traj.outputs, a.obs_output[:, None], axis=1)[:, 0]
        return f, traj.status

    return jax.lax.map(lambda th: jax.vmap(one_patient)(th, arr.covariates, arr), theta)


def _verdict(
    worst: float,
    threshold: float,
    fit_only: int,
    reference_only: SolveStatus,
    fixed_step: float,
) -> tuple[str, str]:
    """Message and remedy of a check: what disagreed, and what to change."""
    problems, remedies = [], []
    if worst > threshold:
        problems.append(
            f"The fixed-step solver (rk4, fixed_step={fixed_step}) differs from the adaptive "
            f"reference by up to {worst:.3g} residual SDs (threshold {threshold:.3g})."
        )
    if fit_only:
        problems.append(
            f"{fit_only} solve(s) failed with rk4 but not with the adaptive reference (an "
            "explicit step too large for the model's fastest process diverges)."
        )
    if worst > threshold or fit_only:
        remedies.append("Use a smaller fixed_step or an adaptive method (e.g. method='tsit5').")
    reference_failed = count_statuses(reference_only)
    if reference_failed:
        problems.append(
            f"{sum(reference_failed.values())} solve(s) failed with the adaptive reference but "
            "not with rk4: "
            + " ".join(
                f"{n} {name}: {STATUS_INFO[name].message}" for name, n in reference_failed.items()
            )
        )
        remedies.extend(STATUS_INFO[name].remedy for name in reference_failed)
    if not problems:
        return (
            f"The fixed-step solver (rk4, fixed_step={fixed_step}) agrees with the adaptive "
            f"reference within {threshold:.3g} residual SDs.",
            "",
        )
    return " ".join(problems), " ".join(remedies)


def check_fixed_step(
    structure: ProgramStructure,
    data: FitData,
    theta: np.ndarray,
    predictions: np.ndarray,
    solver_ok: np.ndarray,
    residual_add: np.ndarray,
    residual_prop: np.ndarray,
    ids: Sequence[str],
) -> dict[str, object]:
    """Compare a fixed-step fit's predictions with the adaptive reference solver's.

    Parameters
    ----------
    theta
        ``(S, P, K)`` individual parameters of ``S`` posterior draws (natural scale).
    predictions, solver_ok
        ``(S, P, N)`` the fit's noise-free predictions at the observation times and
        ``(S, P)`` whether its solves succeeded, at those draws.
    residual_add, residual_prop
        ``(S, O)`` the draws' residual SDs per output.
    ids
        The ``P`` patient ids in the arrays' order (the cohort's), to name the worst one.

    Returns
    -------
    dict
        ``max_error_sd`` (largest error in residual SDs), ``threshold_sd``, ``passed``
        (error within the threshold and no disagreements),
        ``draws_checked``, ``worst_patient``, ``disagreements`` (patient × draw pairs where
        exactly one of the two solvers failed), ``reference_failures`` (how many reference
        solves ended in each :class:`~twin_uq.simulate.SolveStatus` other than
        ``successful``), ``message`` and ``remedy`` (the outcome in words, what to change),
        ``reference`` (the reference settings).
    """
    model = structure.model
    reference = structure.settings.adaptive_reference()
    arr = data.arrays
    f_ref, status_ref = _reference_predictions(model, reference, jnp.asarray(theta), data)
    ok_ref = np.asarray(status_ref == SolveStatus.successful)
    # A failed solve's values are meaningless (maybe inf/NaN): 1.0 keeps them harmless.
    f_ref = np.where(ok_ref[..., None], np.asarray(f_ref), 1.0)
    out = np.asarray(arr.obs_output)
    code = np.asarray(data.error_code)[out][None]
    sd = np.asarray(
        residual_sd(
            jnp.asarray(code),
            jnp.asarray(f_ref),
            jnp.asarray(residual_add[:, out]),
            jnp.asarray(residual_prop[:, out]),
        )
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.where(
            code == _LOGNORMAL,
            np.log(np.abs(predictions)) - np.log(np.abs(f_ref)),
            predictions - f_ref,
        )
    both = (solver_ok & ok_ref)[..., None] & np.asarray(arr.obs_mask)[None]
    error = np.where(both, np.abs(diff) / sd, 0.0)
    error = np.where(np.isfinite(error), error, np.inf)
    n_obs = int(np.asarray(arr.obs_mask).sum())
    threshold = 0.1 / math.sqrt(max(n_obs, 1))
    worst = float(error.max()) if error.size else 0.0
    worst_patient = (
        ids[int(np.unravel_index(np.argmax(error), error.shape)[1])] if error.size else ""
    )
    disagreements = int((solver_ok != ok_ref).sum())
    reference_only = jax.tree.map(lambda v: np.asarray(v)[solver_ok & ~ok_ref], status_ref)
    message, remedy = _verdict(
        worst,
        threshold,
        int((~solver_ok & ok_ref).sum()),
        reference_only,
        structure.settings.fixed_step,
    )
    reference_failures = count_statuses(status_ref)
    reference_failures.pop("successful", None)
    return {
        "max_error_sd": worst,
        "threshold_sd": threshold,
        "passed": bool(worst <= threshold) and disagreements == 0,
        "draws_checked": int(theta.shape[0]),
        "worst_patient": worst_patient,
        "disagreements": disagreements,
        "reference_failures": reference_failures,
        "message": message,
        "remedy": remedy,
        "reference": dataclasses.asdict(reference),
    }


def draws_to_check(chains: int, draws: int, n: int = DRAWS_CHECKED) -> np.ndarray:
    """Flat indices of ``n`` draws evenly spaced over ``chains × draws``."""
    total = chains * draws
    return np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(int))


def check_fit_draws(prepared, samples: dict, derived) -> dict | None:
    """:func:`check_fixed_step` on evenly spaced draws of a fixed-step fit, with a warning.

    ``prepared`` is the fit's :class:`~twin_uq.inference.prepare.PreparedFit`, ``samples``
    its ``(chain, draw, ...)`` site draws (the residual SDs are read from them) and
    ``derived`` its :class:`~twin_uq.inference.postprocess.DrawQuantities`. ``None`` for
    a model not on a fixed grid. Used by :func:`twin_uq.fit` and the two-stage fit.
    """
    structure = prepared.structure
    if not structure.settings.is_fixed_step:
        return None
    t0 = time.perf_counter()
    theta = derived["theta"]
    chains, draws = theta.shape[:2]
    pick = draws_to_check(chains, draws)

    def flat(v):
        v = np.asarray(v)
        return v.reshape(chains * draws, *v.shape[2:])[pick]

    residual_sites = {
        k: flat(v) for k, v in samples.items() if k in ("sigma_add", "sigma_prop", "nu")
    }
    add, prop, _ = residuals_of_draws(structure, residual_sites, prepared.data.error_code.shape[0])
    check = check_fixed_step(
        structure,
        prepared.data,
        flat(theta),
        flat(derived["f"]),
        flat(derived["solver_ok"]),
        add,
        prop,
        prepared.cohort.ids,
    )
    check["seconds"] = time.perf_counter() - t0
    if not check["passed"]:
        warnings.warn(
            f"Fixed-step solver check at {check['draws_checked']} posterior draws (worst "
            f"patient {check['worst_patient']}): {check['message']} {check['remedy']}".strip(),
            stacklevel=3,
        )
    return check
