"""The patient report's "best next measurement" section (``twin.next_measurement``)."""

from __future__ import annotations

import numpy as np

from twin_uq.report.text import format_number, format_time
from twin_uq.twin.next_sample import ForecastInterval

__all__ = ["default_candidate_times", "next_sample_section"]

#: Candidate sampling times the report ranks by default.
N_CANDIDATES = 24


def default_candidate_times(last: float, horizon: float) -> np.ndarray:
    """``N_CANDIDATES`` times after the last observation (or from 0) up to ``horizon``."""
    start = last if np.isfinite(last) else 0.0
    return np.linspace(start, horizon, N_CANDIDATES + 1)[1:]


def next_sample_section(twin, horizon: float, unit_t: str, draws: int | None, seed: int) -> dict:
    """Rows and sentence of the section: which sample best pins down the last forecast.

    The goal is the interval of the model's first output at ``horizon`` (the report's
    last forecast time); the candidates lie between the last observation and it.
    """
    output = twin.model.output_names[0]
    goal = ForecastInterval(output, float(horizon))
    times = default_candidate_times(twin.last_observation_time, float(horizon))
    res = twin.next_measurement(times, goal=goal, output=output, draws=draws or 1000, seed=seed)
    top = res.table.sort_values("effect", ascending=False).head(5)
    rows = [
        dict(
            time=format_time(r.time),
            effect=f"{r.effect:.0%}",
            mcse=f"{r.mcse:.0%}",
            width=format_number(r.after, 3),
            best=i == 0,
        )
        for i, r in enumerate(top.itertuples())
    ]
    best = res.best
    return dict(
        goal=goal.describe(),
        output=output,
        unit=unit_t,
        rows=rows,
        best_time=format_time(float(best["time"])),
        best_effect=f"{best['effect']:.0%}",
        now_width=format_number(float(best["now"]), 3),
        left=int(res.table["approximate_left"].sum()),
        n_imagined=res.n_imagined,
    )
