"""The heart twins' sections of the clinician report: restitution and circulation.

``restitution_report(twin, "p07-restitution.html", trust=post.trust()["P07"])`` and
``circulation_report(twin, "w03-circulation.html", inflow=..., period=0.8, trust=...)``
each write one self-contained HTML page (inline CSS and SVG, no scripts), the trust
first, in the manner of the diabetes view (:mod:`twin_uq.report.diabetes`):

* **restitution** (``mitchell_schaeffer_restitution``): the restitution curve — steady-state
  APD90 against the pacing cycle length — with its predictive interval, and the
  probability of APD alternans (restitution slope > 1) at a faster rate with its Monte
  Carlo standard error and the slope's interval;
* **circulation** (``windkessel3``): the peripheral resistance ``R`` and compliance ``C``
  with intervals, and the pressure what-if of a change of resistance (systolic,
  diastolic and mean pressure before and after, with intervals; optionally the
  probability that mean pressure falls below a threshold, with its MCSE).

The model-specific questions are the models' own functions (``alternans_probability`` of
the restitution model, ``resistance_what_if`` of ``windkessel3``), found on the twin's
model module: the page shows what those functions return, nothing computed twice. No
number appears without its interval (or MCSE) and the trust status beside it.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twin_uq.errors import InputError
from twin_uq.report.figures import PALETTE, figure, svg_from_figure
from twin_uq.report.render import render, write
from twin_uq.report.text import percent
from twin_uq.trust import STATUS_MEANING
from twin_uq.trust.stream import reassess_twin

__all__ = [
    "circulation_report",
    "circulation_view",
    "restitution_report",
    "restitution_view",
]

#: Cycle lengths (ms) of the restitution table when none are given.
RESTITUTION_BCLS = (400.0, 500.0, 600.0, 800.0, 1000.0)


def _model_function(twin, name: str, expected: str):
    # The question belongs to the model file (a plug-in module twin_uq does not import).
    fn = getattr(sys.modules.get(type(twin.model).__module__), name, None)
    if fn is None:
        raise InputError(
            f"Patient {twin.patient_id}: model {twin.model.name!r} has no {name}(); this "
            f"section is for {expected} twins."
        )
    return fn


def _trust(twin, trust) -> dict:
    trust = trust if trust is not None else reassess_twin(twin)
    return dict(
        status=str(trust.status),
        meaning=STATUS_MEANING[trust.status],
        reasons=list(trust.reasons),
    )


def _triple(m: float, lo: float, hi: float, digits: int = 0) -> dict:
    return dict(median=f"{m:.{digits}f}", interval=f"{lo:.{digits}f} to {hi:.{digits}f}")


def _restitution_figure(twin, grid, curve, level: str) -> str:
    obs = twin.observations
    lo, med, hi = (curve[k] for k in ("lower", "median", "upper"))
    with figure(figsize=(6.0, 3.2)) as (fig, ax):
        ax.fill_between(grid, lo, hi, color=PALETTE[0], alpha=0.25, lw=0, label=f"{level} interval")
        ax.plot(grid, med, color=PALETTE[0], lw=1.6, label="median")
        ax.plot(obs["time"], obs["value"], "o", color=PALETTE[6], ms=4, label="measured")
        ax.set_xlabel("pacing cycle length (ms)")
        ax.set_ylabel("steady-state APD90 (ms)")
        ax.legend(loc="upper left", fontsize=7)
        desc = (
            f"Restitution curve: APD90 from {med[0]:.0f} ms at {grid[0]:.0f} ms pacing to "
            f"{med[-1]:.0f} ms at {grid[-1]:.0f} ms, with the {level} predictive interval and "
            f"the {len(obs)} measured values."
        )
        return svg_from_figure(fig, "restitution", "Restitution curve", desc)


def restitution_view(
    twin,
    *,
    trust=None,
    bcls: Sequence[float] = RESTITUTION_BCLS,
    alternans_bcl: float = 400.0,
    level: float = 0.9,
    draws: int | None = None,
    seed: int = 0,
) -> dict:
    """The template context of a restitution twin's section (numbers as strings).

    ``bcls``: cycle lengths (ms) of the table; ``alternans_bcl``: the faster rate (ms) of
    the alternans question; ``trust``: the patient's assessment (``post.trust()[pid]``);
    without it the page says the twin was not assessed (limited at best).
    """
    alternans = _model_function(twin, "alternans_probability", "APD restitution")
    bcls = np.asarray(sorted(float(b) for b in bcls))
    obs = twin.observations
    lo_t = min(float(bcls.min()), float(obs["time"].min()), float(alternans_bcl))
    hi_t = max(float(bcls.max()), float(obs["time"].max()))
    grid = np.linspace(lo_t, hi_t, 41)
    # One prediction (one compiled shape) for the table's cycle lengths and the curve.
    ds = twin.predict(np.concatenate([bcls, grid]), interval=level, draws=draws, seed=seed)
    q = {k: ds[k].values[0] for k in ("median", "lower", "upper")}
    n = bcls.size
    rows = [
        dict(bcl=f"{b:.0f}", **_triple(q["median"][i], q["lower"][i], q["upper"][i]))
        for i, b in enumerate(bcls)
    ]
    curve = {k: v[n:] for k, v in q.items()}
    a = alternans(twin, float(alternans_bcl))
    pct = percent(level)
    return dict(
        patient_id=twin.patient_id,
        model=twin.model,
        **_trust(twin, trust),
        n_obs=len(obs),
        measured=", ".join(f"{t:g}" for t in obs["time"]),
        level=pct,
        figure=_restitution_figure(twin, grid, curve, pct),
        curve_rows=rows,
        n_draws=int(ds.attrs["n_draws"]),
        n_failed=int(ds.attrs["n_failed_draws"]),
        alternans_bcl=f"{alternans_bcl:g}",
        p_alternans=f"{100 * a['probability']:.1f}%",
        p_mcse=f"{100 * a['mcse']:.1f}",
        slope=_triple(a["slope_median"], a["slope_lower"], a["slope_upper"], 2),
        alternans_draws=a["n_draws"],
        alternans_failed=a["n_failed"],
    )


def circulation_view(
    twin,
    *,
    inflow,
    period: float,
    trust=None,
    factor: float = 0.8,
    threshold: float | None = 65.0,
    beats: int = 12,
    level: float = 0.9,
    draws: int | None = None,
) -> dict:
    """The template context of a circulation twin's section (numbers as strings).

    ``inflow`` (a :class:`~twin_uq.Signal` over at least ``beats · period`` s) and
    ``period`` (s) drive the what-if ``R × factor``; ``threshold`` (mmHg) adds the
    probability that mean pressure falls below it. ``trust`` as in
    :func:`restitution_view`.
    """
    what_if = _model_function(twin, "resistance_what_if", "windkessel3 circulation")
    par = twin.parameters(interval=level)
    units = {p.name: p.unit for p in twin.model.parameters}
    params = [
        dict(
            name=name,
            meaning=meaning,
            unit=units[name],
            **_triple(*(float(par.loc[name, k]) for k in ("median", "lower", "upper")), 2),
        )
        for name, meaning in (("R", "peripheral resistance"), ("C", "arterial compliance"))
    ]
    w = what_if(
        twin, factor, inflow, period, beats=beats, interval=level, threshold=threshold, draws=draws
    )
    labels = {"systolic": "systolic", "diastolic": "diastolic", "mean": "mean"}
    whatif_rows = [
        dict(quantity=labels[k], before=_triple(*w["before"][k]), after=_triple(*w["after"][k]))
        for k in labels
    ]
    return dict(
        patient_id=twin.patient_id,
        model=twin.model,
        **_trust(twin, trust),
        n_obs=len(twin.observations),
        level=percent(level),
        params=params,
        n_draws=w["n_draws"],
        n_failed=w["n_failed"],
        change=f"{100 * (factor - 1):+.0f}%",
        beats=beats,
        whatif_rows=whatif_rows,
        threshold=None if threshold is None else f"{threshold:g}",
        p_below=None if threshold is None else f"{100 * w['p_below']:.1f}%",
        p_mcse=None if threshold is None else f"{100 * w['mcse']:.1f}",
    )


def _write(template: str, title: str, twin, path, provenance, context) -> Path:
    rows = [
        *provenance,
        ("Model", twin.model.name),
        ("Report created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
    ]
    html = render(
        template,
        title=title,
        provenance=rows,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **context,
    )
    return write(path, html)


def restitution_report(twin, path: str | Path, *, provenance=(), **kwargs) -> Path:
    """Write the restitution section of ``twin`` to ``path`` (``.html``); ``kwargs``: :func:`restitution_view`."""
    context = restitution_view(twin, **kwargs)
    title = f"Restitution twin: {twin.patient_id}"
    return _write("heart_restitution.html", title, twin, path, provenance, context)


def circulation_report(twin, path: str | Path, *, provenance=(), **kwargs) -> Path:
    """Write the circulation section of ``twin`` to ``path`` (``.html``); ``kwargs``: :func:`circulation_view`."""
    context = circulation_view(twin, **kwargs)
    title = f"Circulation twin: {twin.patient_id}"
    return _write("heart_circulation.html", title, twin, path, provenance, context)
