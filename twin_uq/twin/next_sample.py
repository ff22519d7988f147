"""Which single measurement, taken when, would most improve a twin: pre-posterior analysis.

For each candidate (time, output) the twin imagines ``M`` measurements drawn from its own
posterior predictive (a posterior draw ``j``, then the residual error model around that
draw's prediction), conditions on each one by re-weighting its ``S`` posterior draws with
the likelihood of the imagined value (the importance update that ``twin.update`` uses,
with the current posterior as proposal), and evaluates a goal on the re-weighted
posterior. The expected effect is the average over the imagined measurements; its Monte
Carlo standard error is their standard deviation over ``sqrt(M)``.

Where the re-weighting degenerates (Pareto k-hat >= 0.7: one measurement would move the
posterior further than its draws reach) the imagined measurement is conditioned on
exactly instead, by a NUTS update of the twin (``twin.update``), up to ``max_exact`` of
them; beyond that cap the candidate's row says how many were left approximate.

Goals (:class:`ParameterInterval`, :class:`ForecastInterval`, :class:`DoseDecision`,
:class:`ForecastTrust`, in :mod:`twin_uq.twin.next_goals` and importable from here) are
small frozen objects with a per-draw quantity and a score of a weighted posterior.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.errors import InputError
from twin_uq.inference.residual import observation_loglik, sample_observations, uses_student_t
from twin_uq.twin.inputs import check_times
from twin_uq.twin.next_goals import (
    DoseDecision,
    ForecastInterval,
    ForecastTrust,
    Goal,
    ParameterInterval,
    _IntervalGoal,
    _on_draws,
)
from twin_uq.twin.psis_rows import psis_rows

#: A :class:`~twin_uq.twin.PosteriorTwin`, typed loosely: the twin module imports this one.
PosteriorTwin = Any

__all__ = [
    "DoseDecision",
    "ForecastInterval",
    "ForecastTrust",
    "ImaginedEffects",
    "NextMeasurement",
    "ParameterInterval",
    "imagine_measurements",
    "next_measurement",
]

#: Pareto k-hat from which the importance re-weighting is not trusted (Vehtari et al.).
K_HAT_MAX = 0.7


# ---- the result ------------------------------------------------------------------------
@dataclass(frozen=True)
class NextMeasurement:
    """Expected effect of one more measurement at each candidate time and output.

    Attributes
    ----------
    table
        One row per candidate: ``time``, ``output``, ``effect`` (expected shrinkage of the
        goal's interval, or for :class:`DoseDecision` the probability that the regimen
        choice changes), ``mcse`` (its Monte Carlo standard error), ``after`` (expected
        width after the measurement; for a dose decision the expected probability of
        attainment of the regimen chosen then), ``now`` (today's value), ``k_high`` (share
        of imagined measurements whose re-weighting had Pareto k-hat >= 0.7), ``exact``
        (how many of those were conditioned on exactly by NUTS), ``approximate_left``
        (how many stayed re-weighted beyond ``max_exact``).
    best
        The row with the largest expected effect.
    goal, patient_id, n_imagined, n_draws
        What was asked, of whom, with how many imagined measurements and posterior draws.
    """

    table: pd.DataFrame
    goal: Goal
    patient_id: str
    n_imagined: int
    n_draws: int
    approximate_fit: bool = False

    @property
    def best(self) -> pd.Series:
        return self.table.loc[self.table["effect"].idxmax()]

    def summary(self) -> str:
        b = self.best
        if isinstance(self.goal, ForecastTrust):
            what = (
                f"makes {self.goal.describe()} drop below {self.goal.threshold:g} with probability "
                f"{b['effect']:.0%} (MCSE {b['mcse']:.0%}; score {b['now']:.2f} now, "
                f"{b['after']:.2f} expected)"
            )
        elif isinstance(self.goal, DoseDecision):
            what = (
                f"changes the chosen regimen with probability {b['effect']:.0%} "
                f"(MCSE {b['mcse']:.0%})"
            )
        else:
            what = (
                f"narrows {self.goal.describe()} by {b['effect']:.0%} on average "
                f"(MCSE {b['mcse']:.0%}; width {b['now']:.3g} now, {b['after']:.3g} expected)"
            )
        caveat = " The fit is approximate (SVI/Laplace)." if self.approximate_fit else ""
        left = int(self.table["approximate_left"].sum())
        if left:
            caveat += (
                f" {left} imagined measurements had degenerate importance weights beyond "
                "max_exact and were not conditioned on exactly."
            )
        return (
            f"Patient {self.patient_id}: the best next measurement is {b['output']} at "
            f"t = {b['time']:g}; it {what}.{caveat}"
        )


# ---- the computation -------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("student_t", "censoring"))
def _imagine(key, f, code, add, prop, nu, lloq, j, *, student_t, censoring=True):
    """Imagined measurements and the log-likelihood of each under every draw.

    ``f`` (S, N): noise-free predictions of the N candidates at S draws; ``add``, ``prop``
    (S,), ``nu`` (S,), ``code`` (), ``lloq`` (): the candidate output's error model and
    quantification limit; ``j`` (N, M): the draw each imagined measurement comes from.
    ``censoring=False`` (static; only when ``lloq`` is -inf, so nothing is below it): the
    censored branch is not compiled, which removes a log-CDF per (N, M, S) element, most
    of the cost; the density is the same up to the last bit (XLA fuses differently).
    Returns ``y`` (N, M), whether each is below ``lloq`` (N, M) and ``loglik`` (N, M, S).
    """
    f_j = jnp.take_along_axis(f.T, j, axis=1)  # (N, M)
    y = sample_observations(key, code, f_j, add[j], prop[j], nu[j], student_t=student_t)
    below = y < lloq
    ll = observation_loglik(
        code,
        y[:, :, None],
        f.T[:, None, :],
        add[None, None, :],
        prop[None, None, :],
        nu[None, None, :],
        below[:, :, None] if censoring else jnp.zeros((*y.shape, 1), bool),
        jnp.broadcast_to(lloq, y.shape)[:, :, None],
    )
    return y, below, ll


def _weights(loglik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised weights (..., S) and Pareto k-hat (...) of log-likelihood rows.

    k-hat is fitted only where the plain weights' effective sample size is below half of
    ``S``; above that the weights are too even for a heavy tail and k-hat is set to 0.
    """
    lw = loglik - loglik.max(axis=-1, keepdims=True)
    w = np.exp(lw)
    w /= w.sum(axis=-1, keepdims=True)
    ess = 1.0 / np.sum(w**2, axis=-1)
    khat = np.zeros(lw.shape[:-1])
    uneven = ess < 0.5 * lw.shape[-1]
    if uneven.any():
        # arviz-stats' PSIS on all uneven rows at once, bit for bit (twin_uq.twin.psis_rows)
        slw, k = psis_rows(lw[uneven])
        sw = np.exp(np.asarray(slw) - np.asarray(slw).max(axis=-1, keepdims=True))
        w[uneven] = sw / sw.sum(axis=-1, keepdims=True)
        khat[uneven] = np.asarray(k)
    return w, khat


@dataclass(frozen=True)
class ImaginedEffects:
    """Pre-posterior analysis of ``T`` candidate measurements, ``M`` imagined values each.

    Attributes
    ----------
    effect, after
        ``(T, M)``: the goal's effect, and its value after conditioning on each imagined
        measurement (an interval width, or the index of the chosen regimen).
    now
        The goal's value today.
    y, censored
        ``(T, M)`` imagined measurements (output units) and whether each fell below the
        quantification limit (then conditioned on as censored, M3).
    weights
        ``(T, M, S)`` normalised weights of the posterior draws after each measurement
        (Pareto-smoothed where uneven).
    khat
        ``(T, M)`` Pareto k-hat of each re-weighting (0 where the weights are even).
    """

    effect: np.ndarray
    after: np.ndarray
    now: float
    y: np.ndarray
    censored: np.ndarray
    weights: np.ndarray
    khat: np.ndarray


def imagine_measurements(
    goal: Goal,
    q: np.ndarray,
    f: np.ndarray,
    error_code: int,
    add: np.ndarray,
    prop: np.ndarray,
    nu: np.ndarray,
    *,
    lloq: float = -np.inf,
    n_imagined: int = 128,
    seed: int = 0,
) -> ImaginedEffects:
    """Expected effect of measuring each of ``T`` candidates, by re-weighting ``S`` draws.

    A pure function of arrays (the twin-free core of :func:`next_measurement`).

    Parameters
    ----------
    goal
        What a measurement should improve (:class:`ParameterInterval`, ...).
    q
        ``(S,)`` (or ``(S, R)`` for a :class:`DoseDecision`) the goal's quantity at each
        posterior draw.
    f
        ``(S, T)`` noise-free prediction of the measured output at each candidate.
    error_code, add, prop, nu
        The output's residual error model (:class:`~twin_uq.inference.residual.ErrorKind`
        code) and each draw's parameters ``(S,)``.
    lloq
        Quantification limit of the assay (``-inf``: none).
    n_imagined, seed
        Imagined measurements per candidate and their seed.
    """
    S, T = f.shape
    M = int(n_imagined)
    rng = np.random.default_rng(seed)
    j = rng.integers(0, S, size=(T, M))
    y, below, ll = _imagine(
        jax.random.key(seed),
        jnp.asarray(f, dtype=float),
        jnp.asarray(error_code),
        jnp.asarray(add, dtype=float),
        jnp.asarray(prop, dtype=float),
        jnp.asarray(nu, dtype=float),
        jnp.asarray(float(lloq)),
        jnp.asarray(j),
        student_t=uses_student_t(error_code),
        censoring=bool(np.isfinite(lloq)),
    )
    w, khat = _weights(np.asarray(ll))
    now = float(goal.score(q, np.full((1, S), 1.0 / S))[0])
    after = goal.score(q, w)
    return ImaginedEffects(
        effect=goal.effect(now, after),
        after=after,
        now=now,
        y=np.asarray(y),
        censored=np.asarray(below),
        weights=w,
        khat=khat,
    )


def next_measurement(
    twin: PosteriorTwin,
    candidate_times: Sequence[float] | np.ndarray,
    *,
    goal: Goal | str,
    output: str | Sequence[str] | None = None,
    schedule: Any = None,
    lloq: float | None = None,
    n_imagined: int = 128,
    draws: int | None = 1000,
    max_exact: int = 8,
    seed: int = 0,
) -> NextMeasurement:
    """Expected effect of one more measurement at each candidate time (``twin.next_measurement``).

    Parameters
    ----------
    candidate_times
        ``(T,)`` times >= 0 (model time unit, from the start of the schedule).
    goal
        A :class:`ParameterInterval`, :class:`ForecastInterval`, :class:`DoseDecision` or
        :class:`ForecastTrust`; a parameter name is short for ``ParameterInterval(name)``.
    output
        The output(s) that could be measured; required when the model has several.
    schedule
        Dosing under which the measurement is taken (default: the patient's history).
    lloq
        Quantification limit of the assay: an imagined value below it counts as censored
        (M3), as a real one would. Default: the patient's own limit for that output when
        its observations carry one, else none.
    n_imagined
        Imagined measurements ``M`` per candidate (MCSE shrinks as ``1/sqrt(M)``).
    draws
        Posterior draws ``S`` used (evenly thinned; ``None``: all).
    max_exact
        How many degenerate re-weightings (k-hat >= 0.7) are replaced by conditioning the
        twin on the imagined value exactly (``twin.update``), over all candidates.
    seed
        Seed of the imagined measurements (and of the exact updates).

    Returns
    -------
    NextMeasurement
        One row per (output, time) candidate; ``.best`` and ``.summary()``.
    """
    if isinstance(goal, str):
        goal = ParameterInterval(goal)
    if not isinstance(goal, ParameterInterval | ForecastInterval | DoseDecision | ForecastTrust):
        raise TypeError(
            "goal must be a ParameterInterval, ForecastInterval, DoseDecision, ForecastTrust or "
            "a parameter name."
        )
    if twin.population_only:
        raise InputError(
            "next_measurement needs a fitted patient's twin, not a population-only one."
        )
    times = check_times(candidate_times)
    outputs = _outputs(twin, output)
    if int(n_imagined) < 8:
        raise InputError(f"n_imagined must be >= 8, got {n_imagined}.")
    idx = twin._draw_index(draws)
    q = goal.per_draw(twin, idx, seed)
    preds, kept = twin._predict_many({"measurement": schedule}, times, 0.9, None, seed)
    ok = np.isin(idx, kept) & np.all(np.isfinite(q.reshape(idx.size, -1)), axis=1)
    idx, q = idx[ok], q[ok]
    if (
        isinstance(goal, _IntervalGoal)
        and not goal.score(q, np.full((1, idx.size), 1.0 / idx.size))[0] > 0
    ):
        raise InputError(f"{goal.describe()} has zero width already; nothing to narrow.")
    rows, exact_left = [], int(max_exact)
    for o_i, out in enumerate(outputs):
        o = list(twin.model.output_names).index(out)
        f = twin._output_values(preds["measurement"], out, include_noise=False)
        limit = _limit(twin, out, lloq)
        im = imagine_measurements(
            goal,
            q,
            _on_draws(f, kept, idx),
            int(np.asarray(twin.error_code)[o]),
            np.asarray(twin.add)[idx, o],
            np.asarray(twin.prop)[idx, o],
            np.asarray(twin.nu)[idx],
            lloq=limit,
            n_imagined=n_imagined,
            seed=seed + 7919 * o_i,
        )
        after = im.after.copy()
        n_exact = np.zeros(times.size, dtype=int)
        for t_i, m_i in np.argwhere(im.khat >= K_HAT_MAX)[: max(exact_left, 0)]:
            after[t_i, m_i] = _exact_after(
                twin, goal, out, times[t_i], float(im.y[t_i, m_i]), limit, seed
            )
            n_exact[t_i] += 1
        exact_left -= int((im.khat >= K_HAT_MAX).sum())
        eff = goal.effect(im.now, after)
        M = eff.shape[1]
        for t_i, t in enumerate(times):
            n_high = int((im.khat[t_i] >= K_HAT_MAX).sum())
            rows.append(
                dict(
                    time=float(t),
                    output=out,
                    effect=float(eff[t_i].mean()),
                    mcse=float(eff[t_i].std(ddof=1) / np.sqrt(M)),
                    after=_after_value(goal, q, im.weights[t_i], after[t_i]),
                    now=_now_value(goal, q, im.now),
                    k_high=n_high / M,
                    exact=int(n_exact[t_i]),
                    approximate_left=n_high - int(n_exact[t_i]),
                )
            )
    return NextMeasurement(
        table=pd.DataFrame(rows),
        goal=goal,
        patient_id=twin.patient_id,
        n_imagined=int(n_imagined),
        n_draws=int(idx.size),
        approximate_fit=bool(twin.approximate),
    )


def _after_value(goal: Goal, q: np.ndarray, w: np.ndarray, after: np.ndarray) -> float:
    if isinstance(goal, DoseDecision):
        # Expected attainment probability of the regimen each imagined measurement picks.
        p = w @ q  # (M, R)
        return float(p.max(axis=1).mean())
    return float(after.mean())


def _now_value(goal: Goal, q: np.ndarray, now: float) -> float:
    if isinstance(goal, DoseDecision):
        return float(q.mean(axis=0).max())
    return now


def _outputs(twin: PosteriorTwin, output: str | Sequence[str] | None) -> list[str]:
    names = list(twin.model.output_names)
    if output is None:
        if len(names) > 1:
            raise InputError(
                f"Model {twin.model.name!r} has several outputs {names}: say which could be "
                "measured with output=."
            )
        return names
    outs = [output] if isinstance(output, str) else list(output)
    unknown = [o for o in outs if o not in names]
    if unknown:
        raise InputError(
            f"Model {twin.model.name!r} has no output {unknown[0]!r}; outputs: {names}."
        )
    return outs


def _limit(twin: PosteriorTwin, out: str, lloq: float | None) -> float:
    if lloq is not None:
        return float(lloq)
    obs = twin.observations
    mine = obs.loc[obs["output"] == out, "lloq"].astype(float)
    finite = mine[np.isfinite(mine)]
    return float(finite.iloc[-1]) if len(finite) else -np.inf


def _exact_after(
    twin: PosteriorTwin, goal: Goal, out: str, t: float, y: float, limit: float, seed: int
) -> float:
    """The goal's value after conditioning on the imagined ``y`` at ``t`` by a NUTS update."""
    censored = bool(y < limit)
    row = {"time": [t], "dv": [limit if censored else y], "evid": [0], "output": [out]}
    if censored:
        row["blq"] = [1]
        row["lloq"] = [limit]
    # "auto": importance sampling from a proposal at the new mode, NUTS where that fails.
    new = twin.update(pd.DataFrame(row), method="auto", seed=seed)
    idx = np.arange(new.n_draws)
    q_new = goal.per_draw(new, idx, seed)
    keep = np.all(np.isfinite(q_new.reshape(idx.size, -1)), axis=1)
    return float(goal.score(q_new[keep], np.full((1, int(keep.sum())), 1.0 / keep.sum()))[0])
