"""A twin following a CGM stream: update, re-assess trust, forecast and risk per batch.

For each batch of new readings (``batch`` readings, with the meal and insulin events logged
since the previous batch):

1. **surprise check**: the twin *before* the batch forecasts each new reading (central
   ``surprise_level`` interval, default 99 %); a reading outside it is reported and limits
   trust (sensor error, or a meal / exercise the twin does not know of);
2. **update**: ``twin.update`` with the batch (importance sampling from the current
   posterior, NUTS when its Pareto k-hat says it is unreliable);
3. **trust**: :func:`twin_uq.trust.stream.reassess_twin` (the cohort verdict plus the
   update's diagnostics, effective readings and the surprise);
4. **forecast** at ``horizons`` (default +30/60/120 min) with ``level`` intervals, and the
   **risks** of hypoglycaemia (< 70, < 54 mg/dL) and hyperglycaemia (> 180, > 250 mg/dL)
   within ``risk_horizon``, each with its Monte Carlo standard error.

Compilation: a fixed-step solver's settings carry a horizon (``SolverSettings.covering``);
if it followed every new reading, each 5-minute value would compile the update anew. The
stream extends the horizon in whole blocks of ``horizon_block`` minutes (default 240) past
the latest time it needs, so one compiled update serves every reading in a block; the
observation arrays are padded to powers of two by the update itself.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from twin_uq.diabetes.stream_input import read_stream, stream_rows
from twin_uq.errors import InputError
from twin_uq.trust.assess import TrustAssessment
from twin_uq.trust.stream import reassess_twin
from twin_uq.twin.forecast import Forecast, RiskResult
from twin_uq.twin.twin import PosteriorTwin

__all__ = ["RISK_THRESHOLDS", "StreamStep", "stream_twin"]

#: Risks reported per step: name -> (threshold in mg/dL, below?).
RISK_THRESHOLDS = {
    "hypo_70": (70.0, True),
    "hypo_54": (54.0, True),
    "hyper_180": (180.0, False),
    "hyper_250": (250.0, False),
}


@dataclass(frozen=True)
class StreamStep:
    """What the twin says after one batch of the stream.

    Attributes
    ----------
    time
        Time of the batch's last reading (min).
    readings, events
        New readings and dose events (meals, insulin) in the batch.
    twin
        The updated twin.
    trust
        Its re-assessed trust (:class:`~twin_uq.trust.TrustAssessment`).
    forecast
        :class:`~twin_uq.twin.Forecast` at the stream's horizons, with intervals.
    risks
        ``{"hypo_70": RiskResult, ...}``: P(crossing within ``risk_horizon``) with MCSE.
    surprise
        The sentence about readings outside the twin's forecast of them, or ``None``.
    seconds
        Wall time of each stage (``surprise``, ``update``, ``trust``, ``forecast``,
        ``risk``) and their ``total``.
    """

    time: float
    readings: int
    events: int
    twin: PosteriorTwin
    trust: TrustAssessment
    forecast: Forecast
    risks: dict[str, RiskResult]
    surprise: str | None
    seconds: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict:
        """A JSON-ready summary (one line of ``twin-uq stream --out``)."""
        rec = self.twin.history[-1] if self.twin.history else None
        return {
            "patient": self.twin.patient_id,
            "time": self.time,
            "readings": self.readings,
            "events": self.events,
            "trust": str(self.trust.status),
            "trust_reasons": list(self.trust.reasons),
            "surprise": self.surprise,
            "forecast": [
                {"horizon": float(r.Index), "median": r.median, "lower": r.lower, "upper": r.upper}
                for r in self.forecast.table().itertuples()
            ],
            "level": self.forecast.level,
            "risks": {
                name: {
                    "probability": r.probability,
                    "mcse": r.mcse,
                    "lower": r.lower,
                    "upper": r.upper,
                    "horizon": r.horizon,
                }
                for name, r in self.risks.items()
            },
            "update_method": None if rec is None else rec.method,
            "seconds": self.seconds,
        }

    def __str__(self) -> str:
        fc = "; ".join(
            f"+{r.Index:g} min {r.median:.0f} ({r.lower:.0f}-{r.upper:.0f})"
            for r in self.forecast.table().itertuples()
        )
        risk = ", ".join(
            f"P({'<' if r.below else '>'}{r.threshold:g}) {r.probability:.2f}±{r.mcse:.2f}"
            for r in self.risks.values()
        )
        pct = f"{100 * self.forecast.level:.0f}%"
        return (
            f"t={self.time:g}: forecast (median, {pct} interval) {fc}; within "
            f"{next(iter(self.risks.values())).horizon:g} min {risk}; trust {self.trust.status}"
            f" [{self.seconds.get('total', float('nan')):.2f} s]"
        )


def _batches(rows: pd.DataFrame, batch: int) -> list[pd.DataFrame]:
    """Consecutive groups of ``batch`` readings with the events logged before them.

    Events after the last reading join the last group (announced meals or insulin enter
    the forecast).
    """
    is_reading = rows["value"].notna().to_numpy()
    ends = np.flatnonzero(is_reading)[batch - 1 :: batch]
    if not is_reading.any():
        raise InputError("The CGM stream holds no readings.")
    if ends[-1] != np.flatnonzero(is_reading)[-1]:
        ends = np.append(ends, np.flatnonzero(is_reading)[-1])
    ends[-1] = len(rows) - 1
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [rows.iloc[a : b + 1] for a, b in zip(starts, ends, strict=True)]


def _with_horizon(twin: PosteriorTwin, needed: float, block: float) -> PosteriorTwin:
    """The twin with its fixed-step horizon covering ``needed``, in whole ``block`` steps."""
    s = twin.settings
    if not s.is_fixed_step or (s.horizon is not None and s.horizon >= needed):
        return twin
    horizon = math.ceil(needed / block) * block
    return replace(twin, posterior=replace(twin.posterior, settings=replace(s, horizon=horizon)))


def _surprise(twin, readings: pd.DataFrame, output: str, level: float, draws, seed) -> str | None:
    """A sentence if a new reading lies outside the twin's ``level`` forecast of it."""
    t0 = twin.last_observation_time
    lead = readings["time"].to_numpy(float) - t0
    fc = twin.forecast(lead, output, level=level, draws=draws, seed=seed)
    y = readings["value"].to_numpy(float)
    out = (y < fc.lower) | (y > fc.upper)
    if not out.any():
        return None
    j = int(np.flatnonzero(out)[0])
    return (
        f"The reading {y[j]:.0f} at t = {readings['time'].iloc[j]:g} min lies outside the "
        f"twin's {100 * level:.0f}% forecast ({fc.lower[j]:.0f}-{fc.upper[j]:.0f}): check the "
        "sensor, or a meal, insulin or exercise the twin was not told of."
    )


def stream_twin(
    twin: PosteriorTwin,
    source,
    *,
    output: str = "glucose",
    batch: int = 1,
    horizons: Sequence[float] = (30.0, 60.0, 120.0),
    level: float = 0.9,
    risk_horizon: float = 120.0,
    risks: dict[str, tuple[float, bool]] | None = None,
    trust: TrustAssessment | None = None,
    surprise_level: float = 0.99,
    chains: int = 2,
    draws: int = 250,
    warmup: int = 300,
    method: str = "auto",
    population_draws: int = 256,
    forecast_draws: int | None = 256,
    n_paths: int = 16,
    horizon_block: float = 240.0,
    seed: int = 0,
) -> Iterator[StreamStep]:
    """Follow a CGM stream with ``twin``: one :class:`StreamStep` per batch of readings.

    Parameters
    ----------
    source
        CSV path, DataFrame or iterable of ``(time, value[, carbs[, insulin]])``
        (:func:`~twin_uq.diabetes.stream_input.read_stream`); readings must come after the
        twin's last observation.
    batch
        Readings per update (1: update after every value).
    trust
        The patient's cohort trust assessment (``tq.assess_patient(post, id)``); without
        it the status is at best ``limited``.
    chains, draws, warmup, method, population_draws
        ``twin.update`` settings (``chains x draws`` posterior draws are kept; the
        population posterior is represented by ``population_draws`` of its draws).
    forecast_draws, n_paths
        Posterior draws (evenly thinned) for the forecast and risks, and simulated residual
        paths per draw for the risks.
    """
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}.")
    thresholds = dict(RISK_THRESHOLDS if risks is None else risks)
    rows = read_stream(source, output, after=twin.last_observation_time)
    lead_max = max(max(horizons), risk_horizon)
    for k, group in enumerate(_batches(rows, batch)):
        secs: dict[str, float] = {}
        start = _time.perf_counter()
        readings = group[group["value"].notna()]
        twin = _with_horizon(twin, float(group["time"].max()) + lead_max, horizon_block)
        surprise = _surprise(twin, readings, output, surprise_level, forecast_draws, seed + k)
        secs["surprise"] = _time.perf_counter() - start
        t = _time.perf_counter()
        new = stream_rows(group, twin.patient_id, twin.model, output)
        twin = twin.update(
            new,
            chains=chains,
            draws=draws,
            warmup=warmup,
            method=method,
            population_draws=population_draws,
            seed=seed + k,
        )
        secs["update"] = _time.perf_counter() - t
        t = _time.perf_counter()
        assessed = reassess_twin(twin, trust, surprise=surprise)
        secs["trust"] = _time.perf_counter() - t
        t = _time.perf_counter()
        fc = twin.forecast(
            horizons, output, level=level, draws=forecast_draws, seed=seed + k, trust=assessed
        )
        secs["forecast"] = _time.perf_counter() - t
        t = _time.perf_counter()
        found = {
            name: twin.risk(
                thr,
                below=below,
                horizon=risk_horizon,
                output=output,
                n_paths=n_paths,
                draws=forecast_draws,
                seed=seed + k,
                trust=assessed,
            )
            for name, (thr, below) in thresholds.items()
        }
        secs["risk"] = _time.perf_counter() - t
        secs["total"] = _time.perf_counter() - start
        yield StreamStep(
            time=float(readings["time"].iloc[-1]),
            readings=len(readings),
            events=int(group[["carbs", "insulin"]].gt(0).to_numpy().sum()),
            twin=twin,
            trust=assessed,
            forecast=fc,
            risks=found,
            surprise=surprise,
            seconds=secs,
        )
