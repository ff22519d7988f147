"""Decisions a twin answers: compare regimens (``what_if``) and choose a dose (``recommend_dose``).

Every regimen is simulated on the same posterior draws of the patient's twin (a paired
comparison). The functions take the :class:`~twin_uq.twin.PosteriorTwin` first and are its
methods (``twin.what_if(...)``, ``twin.recommend_dose(...)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.errors import InputError
from twin_uq.twin.criteria import Criterion, Event, event_grid
from twin_uq.twin.inputs import ScheduleLike, check_interval, scaled_schedule
from twin_uq.twin.results import DoseRecommendation, WhatIfResult, hit_fraction

#: A :class:`~twin_uq.twin.PosteriorTwin`, typed loosely: the twin module imports this one.
PosteriorTwin = Any

__all__ = ["attainment", "recommend_dose", "what_if"]


def what_if(
    twin: PosteriorTwin,
    regimens: Mapping[str, ScheduleLike | None],
    times: Sequence[float] | np.ndarray | None = None,
    criterion: Criterion | None = None,
    *,
    interval: float = 0.9,
    include_noise: bool = False,
    draws: int | None = None,
    seed: int = 0,
    n_grid: int = 201,
) -> WhatIfResult:
    """Compare regimens side by side, and the probability that each is best.

    Every regimen is simulated on the same posterior draws (a paired comparison); at
    each draw the regimen with the best criterion value wins (ties share the win), and
    P(best) is the fraction of draws won.

    Parameters
    ----------
    regimens
        Name → schedule (``None``: the patient's own history).
    times
        Evaluation times; default: a grid over the criterion's window.
    criterion
        What "best" means; default: highest mean of the first output over ``times``.
    include_noise
        Evaluate the criterion on noisy predictions instead of the noise-free trajectory.
    """
    interval = check_interval(interval)
    if criterion is None:
        if times is None:
            raise InputError("what_if needs times= or a criterion with a window.")
        criterion = Criterion(twin.model.output_names[0], "mean")
    t = twin._criterion_times(criterion, times, n_grid)
    preds, _ = twin._predict_many(regimens, t, interval, draws, seed)
    values = {
        name: criterion.evaluate(t, twin._output_values(ds, criterion.output, include_noise))
        for name, ds in preds.items()
    }
    names = list(values)
    scores = np.stack([criterion.score(values[n]) for n in names])  # (R, D)
    best = scores >= scores.max(axis=0, keepdims=True) - 1e-12 * (1 + np.abs(scores).max())
    share = best / best.sum(axis=0, keepdims=True)
    p_best = share.mean(axis=1)
    a = (1 - interval) / 2
    rows = []
    for r, n in enumerate(names):
        v = values[n]
        rows.append(
            dict(
                regimen=n,
                criterion=criterion.describe(),
                median=float(np.median(v)),
                lower=float(np.quantile(v, a)),
                upper=float(np.quantile(v, 1 - a)),
                p_best=float(p_best[r]),
                p_best_mcse=float(np.sqrt(max(share[r].var(), 0.0) / share.shape[1])),
            )
        )
    table = pd.DataFrame(rows)
    table.attrs["interval"] = interval
    return WhatIfResult(
        table=table,
        predictions=preds,
        criterion=criterion,
        values=values,
        patient_id=twin.patient_id,
        interval=interval,
    )


def recommend_dose(
    twin: PosteriorTwin,
    target: Event | Criterion,
    candidates: Mapping[str, ScheduleLike] | Sequence[float],
    *,
    template: ScheduleLike | None = None,
    include_noise: bool = False,
    draws: int | None = None,
    seed: int = 0,
    n_grid: int = 201,
) -> DoseRecommendation:
    """Probability of target attainment for each candidate regimen.

    Parameters
    ----------
    target
        An :class:`Event` (attained when it happens, e.g. ``Event("concentration",
        above=1, below=3, at=24)``: trough in range at 24 h) or a :class:`Criterion`
        with ``target=(low, high)`` (attained when its value is in range, e.g. time in
        range >= ... via ``statistic="mean"``).
    candidates
        Name → schedule, or a list of amounts: each amount replaces the amount of every
        dose of ``template`` (infusions keep their duration).
    template
        Regimen the amounts apply to; default the patient's own history.
    """
    preds, idx, hits = attainment(
        twin, target, candidates, template, include_noise, draws, seed, n_grid
    )
    rows = []
    for name, hit in hits.items():
        p, mcse, lo, hi = hit_fraction(hit, twin._ess(hit.astype(float), idx))
        rows.append(
            dict(candidate=name, p_target=p, mcse=mcse, lower=lo, upper=hi, n_draws=hit.size)
        )
    table = pd.DataFrame(rows)
    best = str(table.loc[table["p_target"].idxmax(), "candidate"])
    return DoseRecommendation(
        table=table, best=best, target=target, predictions=preds, patient_id=twin.patient_id
    )


def attainment(
    twin: PosteriorTwin, target, candidates, template, include_noise, draws, seed, n_grid
) -> tuple[dict[str, xr.Dataset], np.ndarray, dict[str, np.ndarray]]:
    """Predictions of each candidate regimen and whether each draw attains ``target``.

    Shared by :func:`recommend_dose` and the dose-decision goal of
    :meth:`next_measurement`: ``hits[name]`` is ``(D,)`` bool on the draws ``idx``.
    """
    if isinstance(candidates, Mapping):
        regimens = dict(candidates)
    else:
        base = twin._as_schedule(template)
        for a in candidates:
            if not (np.isfinite(float(a)) and float(a) > 0):
                raise InputError(
                    f"regimen '{float(a):g}': dose amount must be finite and > 0, got {float(a):g}."
                )
        regimens = {f"{float(a):g}": scaled_schedule(base, float(a)) for a in candidates}
    if not regimens:
        raise InputError("recommend_dose needs at least one candidate.")
    if isinstance(target, Event):
        t = event_grid(target.within, target.at, n_grid)
    elif isinstance(target, Criterion):
        if target.target is None:
            raise InputError("A Criterion used as a dosing target needs target=(low, high).")
        t = twin._criterion_times(target, None, n_grid)
    else:
        raise TypeError("target must be an Event or a Criterion.")
    preds, idx = twin._predict_many(regimens, t, 0.9, draws, seed)
    hits = {}
    for name, ds in preds.items():
        v = twin._output_values(ds, target.output, include_noise)
        hits[name] = (
            target.occurs(t, v)
            if isinstance(target, Event)
            else target.attained(target.evaluate(t, v))
        )
    return preds, idx, hits
