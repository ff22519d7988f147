"""Clinical questions asked of a twin: events and criteria.

An event: "glucose above 180 within 24 h". A criterion: "mean concentration between 12
and 24 h, the higher the better".

Both are small frozen declarations evaluated on sampled trajectories of shape
``(draw, time)``; evaluation is plain numpy so that a probability is literally a count over
posterior draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from twin_uq.errors import InputError

__all__ = ["Criterion", "Event", "event_grid", "window_weights"]

Statistic = Literal["mean", "max", "min", "value_at", "time_in_range", "auc"]
Goal = Literal["maximize", "minimize", "target"]

_STATISTICS = ("mean", "max", "min", "value_at", "time_in_range", "auc")
_GOALS = ("maximize", "minimize", "target")


def _float_pair(pair, what: str, names: str) -> tuple[float, float] | None:
    """``pair`` as two floats (``None`` stays ``None``); ``names`` ("low, high") in the error."""
    if pair is None:
        return None
    if len(pair) != 2:
        raise InputError(f"{what} must be a pair ({names}), got {pair!r}.")
    return float(pair[0]), float(pair[1])


def _check_range(target: tuple[float, float] | None, what: str) -> tuple[float, float] | None:
    pair = _float_pair(target, what, "low, high")
    if pair is not None and not pair[0] < pair[1]:
        raise InputError(f"{what} needs low < high, got {target!r}.")
    return pair


def _check_window(window: tuple[float, float] | None, what: str) -> tuple[float, float] | None:
    pair = _float_pair(window, what, "t0, t1")
    if pair is not None:
        t0, t1 = pair
        if not (np.isfinite(t0) and np.isfinite(t1)) or t0 < 0 or t1 < t0:
            raise InputError(f"{what} needs finite times 0 <= t0 <= t1, got {window!r}.")
    return pair


@dataclass(frozen=True)
class Criterion:
    """A number computed from one output's trajectory, and which values are better.

    Parameters
    ----------
    output
        Model output name, e.g. ``"concentration"``.
    statistic
        ``"mean"`` (time-weighted mean over ``window``), ``"max"``, ``"min"``,
        ``"value_at"`` (value at ``time``), ``"time_in_range"`` (fraction of ``window``
        spent inside ``target``; 0–1) or ``"auc"`` (area under the curve over ``window``,
        output unit × time unit).
    time
        Evaluation time for ``"value_at"``.
    window
        ``(t0, t1)`` for the other statistics; default: the times passed to the comparison.
    goal
        ``"maximize"``, ``"minimize"`` or ``"target"`` (closest to the ``target`` range is
        best; distance 0 inside it). ``"time_in_range"`` is always maximised.
    target
        ``(low, high)``: the range for ``goal="target"`` and for ``"time_in_range"``.

    Examples
    --------
    Time in the therapeutic range between 0 and 24 h:

    >>> Criterion("concentration", "time_in_range", window=(0, 24), target=(1.0, 3.0))
    """

    output: str
    statistic: Statistic = "mean"
    time: float | None = None
    window: tuple[float, float] | None = None
    goal: Goal = "maximize"
    target: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.statistic not in _STATISTICS:
            raise InputError(f"Unknown statistic {self.statistic!r}; choose one of {_STATISTICS}.")
        if self.goal not in _GOALS:
            raise InputError(f"Unknown goal {self.goal!r}; choose one of {_GOALS}.")
        object.__setattr__(self, "target", _check_range(self.target, "Criterion target"))
        object.__setattr__(self, "window", _check_window(self.window, "Criterion window"))
        if self.statistic == "value_at" and (
            self.time is None or not np.isfinite(self.time) or self.time < 0
        ):
            raise InputError("statistic='value_at' needs a time >= 0 (Criterion(time=...)).")
        if (self.goal == "target" or self.statistic == "time_in_range") and self.target is None:
            raise InputError(
                f"Criterion with goal={self.goal!r}, statistic={self.statistic!r} needs target=(low, high)."
            )
        if self.statistic == "time_in_range" and self.goal != "maximize":
            object.__setattr__(self, "goal", "maximize")

    @property
    def needs_grid(self) -> bool:
        """Whether the statistic integrates over a window (as opposed to one time point)."""
        return self.statistic != "value_at"

    def describe(self) -> str:
        """Plain words, e.g. ``"mean concentration over 0–24"``."""
        if self.statistic == "value_at":
            what = f"{self.output} at t={self.time:g}"
        elif self.statistic == "time_in_range":
            lo, hi = self.target  # type: ignore[misc]
            what = f"fraction of time {self.output} is within {lo:g}–{hi:g}"
        else:
            what = f"{self.statistic} {self.output}"
        if self.window is not None and self.statistic != "value_at":
            what += f" over {self.window[0]:g}–{self.window[1]:g}"
        return what

    def evaluate(self, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The criterion per draw.

        Parameters
        ----------
        times
            ``(T,)`` sorted evaluation times.
        values
            ``(D, T)`` trajectories of :attr:`output`.

        Returns
        -------
        ``(D,)`` criterion values.
        """
        times = np.asarray(times, float)
        values = np.asarray(values, float)
        if self.statistic == "value_at":
            k = _nearest(times, float(self.time))  # type: ignore[arg-type]
            return values[:, k]
        sel, w = window_weights(times, self.window)
        v = values[:, sel]
        if self.statistic == "max":
            return v.max(axis=1)
        if self.statistic == "min":
            return v.min(axis=1)
        if self.statistic == "auc":
            t = times[sel]
            return np.trapezoid(v, t, axis=1) if t.size > 1 else np.zeros(v.shape[0])
        if self.statistic == "mean":
            return v @ w
        lo, hi = self.target  # type: ignore[misc]
        return ((v >= lo) & (v <= hi)).astype(float) @ w

    def score(self, value: np.ndarray) -> np.ndarray:
        """Larger is better: the value, its negative, or minus the distance to the target."""
        if self.goal == "maximize":
            return value
        if self.goal == "minimize":
            return -value
        lo, hi = self.target  # type: ignore[misc]
        return -np.maximum(np.maximum(lo - value, value - hi), 0.0)

    def attained(self, value: np.ndarray) -> np.ndarray:
        """Whether each value meets ``target`` (for dose recommendation)."""
        if self.target is None:
            raise InputError("A Criterion used as a dosing target needs target=(low, high).")
        lo, hi = self.target
        return (value >= lo) & (value <= hi)


@dataclass(frozen=True)
class Event:
    """Something that may happen to one output: a threshold crossed in a window or at a time.

    The condition at one time point is ``value > above`` and/or ``value < below`` (both
    given: strictly inside ``(above, below)``). The event happens if the condition holds at
    ``at``, or at any (``how="any"``) or every (``how="all"``) point of the grid over
    ``within``.

    Parameters
    ----------
    output
        Model output name.
    above, below
        Thresholds in output units (at least one).
    within
        ``(t0, t1)`` window (model time unit). Evaluated on a grid of ``n_grid`` points
        (see :meth:`PosteriorTwin.probability`), so excursions shorter than the grid
        spacing can be missed.
    at
        A single time instead of a window (e.g. a trough before the next dose).
    how
        ``"any"`` (default) or ``"all"``.

    Examples
    --------
    >>> Event("glucose", above=180, within=(0, 24))        # hyperglycaemia within a day
    >>> Event("concentration", above=1.0, below=3.0, at=24)  # trough in range at 24 h
    """

    output: str
    above: float | None = None
    below: float | None = None
    within: tuple[float, float] | None = None
    at: float | None = None
    how: Literal["any", "all"] = "any"

    def __post_init__(self) -> None:
        if self.above is None and self.below is None:
            raise InputError("An Event needs above= and/or below= thresholds.")
        if self.above is not None and self.below is not None and not self.above < self.below:
            raise InputError(
                f"Event with both thresholds needs above < below (a range), got above={self.above}, below={self.below}."
            )
        if (self.within is None) == (self.at is None):
            raise InputError("An Event needs exactly one of within=(t0, t1) or at=time.")
        object.__setattr__(self, "within", _check_window(self.within, "Event window"))
        if self.at is not None and (not np.isfinite(self.at) or self.at < 0):
            raise InputError(f"Event time at= must be finite and >= 0, got {self.at}.")
        if self.how not in ("any", "all"):
            raise InputError(f"Event how= must be 'any' or 'all', got {self.how!r}.")

    def describe(self) -> str:
        """Plain words, e.g. ``"glucose above 180 at some time in 0–24"``."""
        if self.above is not None and self.below is not None:
            cond = f"{self.output} between {self.above:g} and {self.below:g}"
        elif self.above is not None:
            cond = f"{self.output} above {self.above:g}"
        else:
            cond = f"{self.output} below {self.below:g}"
        if self.at is not None:
            return f"{cond} at t={self.at:g}"
        when = "at some time" if self.how == "any" else "throughout"
        return f"{cond} {when} in {self.within[0]:g}–{self.within[1]:g}"  # type: ignore[index]

    def condition(self, values: np.ndarray) -> np.ndarray:
        """The pointwise condition (boolean, same shape as ``values``)."""
        ok = np.ones(values.shape, dtype=bool)
        if self.above is not None:
            ok &= values > self.above
        if self.below is not None:
            ok &= values < self.below
        return ok

    def occurs(self, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Whether the event happens in each draw: ``(D, T)`` values → ``(D,)`` booleans."""
        times = np.asarray(times, float)
        cond = self.condition(np.asarray(values, float))
        if self.at is not None:
            return cond[:, _nearest(times, float(self.at))]
        sel, _ = window_weights(times, self.within)
        return cond[:, sel].any(axis=1) if self.how == "any" else cond[:, sel].all(axis=1)


def event_grid(window: tuple[float, float] | None, at: float | None, n_grid: int) -> np.ndarray:
    """Evaluation times for an event or criterion: the time itself, or a uniform grid."""
    if at is not None:
        return np.asarray([float(at)])
    if window is None:
        raise InputError("No time window given: pass times= or set the window.")
    t0, t1 = window
    return np.linspace(t0, t1, max(int(n_grid), 2)) if t1 > t0 else np.asarray([t0])


def window_weights(
    times: np.ndarray, window: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Grid points inside ``window`` and their normalised trapezoid weights.

    Time-weighted means and time fractions then do not depend on how unevenly the grid
    is spaced.
    """
    times = np.asarray(times, float)
    if window is None:
        sel = np.ones(times.shape, dtype=bool)
    else:
        sel = (times >= window[0] - 1e-9) & (times <= window[1] + 1e-9)
    if not sel.any():
        raise InputError(
            f"No evaluation time lies in the window {window}; times span {times.min():g}–{times.max():g}."
        )
    t = times[sel]
    if t.size == 1:
        return sel, np.ones(1)
    gaps = np.diff(t)
    w = np.zeros(t.size)
    w[:-1] += gaps / 2
    w[1:] += gaps / 2
    total = w.sum()
    return sel, (w / total if total > 0 else np.full(t.size, 1.0 / t.size))


def _nearest(times: np.ndarray, t: float) -> int:
    k = int(np.argmin(np.abs(times - t)))
    if abs(times[k] - t) > 1e-9 * max(1.0, abs(t)):
        raise InputError(f"Time {t:g} is not among the evaluation times.")
    return k


def as_sequence(x: object) -> Sequence:
    """``x`` as a list (a single object becomes a one-element list)."""
    return list(x) if isinstance(x, list | tuple) else [x]
