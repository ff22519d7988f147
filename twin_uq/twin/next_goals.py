"""Goals of the next-measurement analysis: what one more measurement should improve.

Each goal is a small frozen object with a per-draw quantity (``per_draw``: the quantity on
the twin's posterior draws ``idx``), a score of a weighted posterior (``score``: weights
``w`` of shape (..., S) over the S draws) and the effect of a change in that score
(``effect``). :func:`twin_uq.twin.next_sample.next_measurement` imagines measurements and
evaluates a goal on the re-weighted posterior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin_uq.errors import InputError
from twin_uq.twin.criteria import Criterion, Event
from twin_uq.twin.inputs import check_interval, check_times

#: A :class:`~twin_uq.twin.PosteriorTwin`, typed loosely: the twin module imports this one.
PosteriorTwin = Any

__all__ = [
    "DoseDecision",
    "ForecastInterval",
    "ForecastTrust",
    "Goal",
    "ParameterInterval",
]


# ---- goals -----------------------------------------------------------------------------
class _IntervalGoal:
    """Score and effect of the goals that narrow a central interval (``interval``)."""

    interval: float

    def score(self, q: np.ndarray, w: np.ndarray) -> np.ndarray:
        return _weighted_width(q, w, check_interval(self.interval))

    def effect(self, now: float, after: np.ndarray) -> np.ndarray:
        return 1.0 - after / now


@dataclass(frozen=True)
class ParameterInterval(_IntervalGoal):
    """Goal: narrow the central credible interval of one individual parameter.

    The effect of a measurement is the relative shrinkage of the interval's width,
    ``1 - width_after / width_now`` (0: no gain; 0.5: half as wide).
    """

    parameter: str
    interval: float = 0.9

    def describe(self) -> str:
        return f"the {self.interval:.0%} interval of {self.parameter}"

    def per_draw(self, twin: PosteriorTwin, idx: np.ndarray, seed: int) -> np.ndarray:
        names = list(twin.model.parameter_names)
        if self.parameter not in names:
            raise InputError(
                f"ParameterInterval: model {twin.model.name!r} has no parameter "
                f"{self.parameter!r}; its parameters are {names}."
            )
        return np.asarray(twin.theta)[idx, names.index(self.parameter)]


@dataclass(frozen=True)
class ForecastInterval(_IntervalGoal):
    """Goal: narrow the interval of the noise-free forecast of ``output`` at ``time``.

    ``schedule`` is the regimen of the forecast (default: the patient's own history).
    The effect is the relative shrinkage of the interval's width, as for
    :class:`ParameterInterval`; the measurement noise of a future assay does not shrink,
    so the forecast is the model's noise-free value (parameter uncertainty).
    """

    output: str
    time: float
    interval: float = 0.9
    schedule: Any = None

    def describe(self) -> str:
        return (
            f"the {self.interval:.0%} interval of the {self.output} forecast at t = {self.time:g}"
        )

    def per_draw(self, twin: PosteriorTwin, idx: np.ndarray, seed: int) -> np.ndarray:
        t = check_times([self.time])
        preds, _ = twin._predict_many({"forecast": self.schedule}, t, 0.9, None, seed)
        f = twin._output_values(preds["forecast"], self.output, include_noise=False)
        return _on_draws(f[:, 0], preds["forecast"]["draw"].values, idx)


@dataclass(frozen=True)
class DoseDecision:
    """Goal: the dosing decision of :meth:`PosteriorTwin.recommend_dose` (value of information).

    The decision is the candidate regimen with the highest posterior probability of
    attaining ``target``. The effect of a measurement is whether it would change that
    choice (its expectation: the probability that one more sample changes the regimen);
    :class:`NextMeasurement` also reports the expected gain in the chosen regimen's
    probability of attainment (the expected value of sample information, >= 0).
    """

    target: Event | Criterion
    candidates: Mapping[str, Any] | Sequence[float]
    template: Any = None
    n_grid: int = 201

    def describe(self) -> str:
        return f"the dose decision for {self.target.describe()}"

    def per_draw(self, twin: PosteriorTwin, idx: np.ndarray, seed: int) -> np.ndarray:
        if len(self.candidates) < 2:
            raise InputError("DoseDecision needs at least two candidate regimens to choose from.")
        _, kept, hits = twin._attainment(
            self.target, self.candidates, self.template, False, None, seed, self.n_grid
        )
        return _on_draws(np.stack(list(hits.values()), axis=1).astype(float), kept, idx)

    def score(self, q: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.argmax(w @ q, axis=-1).astype(float)

    def effect(self, now: float, after: np.ndarray) -> np.ndarray:
        return (after != now).astype(float)


@dataclass(frozen=True)
class ForecastTrust:
    """Goal: make a forecast trustworthy (its trust score ``p_miss`` under ``threshold``).

    The forecast is the noise-free value of ``output`` at ``times`` (under ``schedule``,
    default the patient's own history); its trust score is the probability, under the
    twin's posterior, that the posterior median misses the value by more than ``margin``
    (output units) at one or more of ``times`` (:mod:`twin_uq.trust.score`). The effect of
    a measurement is whether the score after it is below ``threshold``: its expectation is
    the probability that the twin becomes trustworthy for this forecast.
    :class:`NextMeasurement` reports the expected score after the measurement in ``after``.

    ``margin=None``: ``TrustThresholds().score_margin_fraction`` times the width of the
    output's clinical range; ``threshold`` defaults to ``TrustThresholds().p_miss_limited``.
    """

    output: str
    times: tuple[float, ...]
    margin: float | None = None
    threshold: float = 0.2
    schedule: Any = None

    def describe(self) -> str:
        ts = ", ".join(f"{t:g}" for t in self.times)
        return f"the trust score of the {self.output} forecast at t = {ts}"

    def margin_for(self, twin: PosteriorTwin) -> float:
        from twin_uq.trust.score import clinical_margins
        from twin_uq.trust.thresholds import TrustThresholds

        m = clinical_margins([self.output], TrustThresholds(), twin.model, self.margin)
        if self.output not in m:
            raise InputError(
                f"ForecastTrust: no clinical range is known for output {self.output!r}; pass "
                "margin= (the clinically relevant error, output units)."
            )
        return m[self.output]

    def per_draw(self, twin: PosteriorTwin, idx: np.ndarray, seed: int) -> np.ndarray:
        t = check_times(list(self.times))
        preds, _ = twin._predict_many({"forecast": self.schedule}, t, 0.9, None, seed)
        f = twin._output_values(preds["forecast"], self.output, include_noise=False)
        # The margin travels with the draws: score() sees only arrays. Column 0 holds it.
        q = _on_draws(f, preds["forecast"]["draw"].values, idx)
        return np.concatenate([np.full((idx.size, 1), self.margin_for(twin)), q], axis=1)

    def score(self, q: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``P_w(any time misses the weighted median by > margin)`` for each weight row."""
        margin, f = q[0, 0], q[:, 1:]
        miss = np.zeros(w.shape, dtype=bool)
        for k in range(f.shape[1]):
            order = np.argsort(f[:, k])
            cdf = np.cumsum(w[..., order], axis=-1)
            med = f[order, k][np.minimum((cdf < 0.5 * cdf[..., -1:]).sum(axis=-1), f.shape[0] - 1)]
            miss |= np.abs(f[:, k] - med[..., None]) > margin
        return np.sum(w * miss, axis=-1) / np.sum(w, axis=-1)

    def effect(self, now: float, after: np.ndarray) -> np.ndarray:
        return (after < self.threshold).astype(float)


Goal = ParameterInterval | ForecastInterval | DoseDecision | ForecastTrust


def _on_draws(values: np.ndarray, kept: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values`` (one per draw in ``kept``) on the draws ``idx``; NaN where a solve failed.

    ``kept`` is sorted (the twin's draw indices with a successful solve).
    """
    pos = np.minimum(np.searchsorted(kept, idx), max(kept.size - 1, 0))
    found = kept[pos] == idx if kept.size else np.zeros(idx.size, dtype=bool)
    out = np.full((idx.size, *values.shape[1:]), np.nan)
    out[found] = values[pos[found]]
    return out


def _weighted_width(q: np.ndarray, w: np.ndarray, interval: float) -> np.ndarray:
    """Width of the central ``interval`` of ``q`` (S,) under each weight row of ``w`` (..., S)."""
    order = np.argsort(q)
    qs = q[order]
    cdf = np.cumsum(w[..., order], axis=-1)
    cdf /= cdf[..., -1:]
    a = (1.0 - interval) / 2.0
    lo = np.minimum((cdf < a).sum(axis=-1), q.size - 1)
    hi = np.minimum((cdf < 1.0 - a).sum(axis=-1), q.size - 1)
    return qs[hi] - qs[lo]
