"""The diabetes view of a patient's twin: CGM trace, forecast fan, risks, insulin policies.

``diabetes_report(twin, "p01-cgm.html", trust=...)`` writes one self-contained HTML page
(inline CSS and SVG, no scripts) for a clinician: the twin's trust first (badge, reasons),
then the recent glucose trace with the forecast fan (median, 50 % and 90 % bands), the
forecast at +30/60/120 min with intervals, the risks of hypo- and hyperglycaemia with
their Monte Carlo standard errors, and, when given, a comparison of insulin policies
(:meth:`~twin_uq.twin.PosteriorTwin.compare_policies`). No number appears without its
interval (or MCSE) and the trust status beside it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from twin_uq.diabetes.stream import RISK_THRESHOLDS
from twin_uq.report.figures import PALETTE, figure, svg_from_figure
from twin_uq.report.render import render, write
from twin_uq.report.text import percent
from twin_uq.trust import STATUS_MEANING
from twin_uq.trust.stream import reassess_twin

__all__ = ["diabetes_report", "diabetes_view"]

#: Lead times (min) of the forecast fan in the figure.
FAN = np.arange(5.0, 125.0, 5.0)


def _fan_figure(twin, fan, recent: float) -> str:
    obs = twin.observations
    t_last = fan.origin
    seen = obs[(obs["output"] == fan.output) & (obs["time"] >= t_last - recent)]
    q = np.quantile(fan.draws, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    t = np.concatenate([[t_last], fan.times])
    q = np.concatenate([np.full((5, 1), fan.origin_value), q], axis=1)
    with figure(figsize=(7.0, 3.2)) as (fig, ax):
        ax.axhspan(70, 180, color=PALETTE[2], alpha=0.08, lw=0, label="target range 70-180")
        ax.fill_between(
            t / 60, q[0], q[4], color=PALETTE[0], alpha=0.18, lw=0, label="90% interval"
        )
        ax.fill_between(
            t / 60, q[1], q[3], color=PALETTE[0], alpha=0.35, lw=0, label="50% interval"
        )
        ax.plot(t / 60, q[2], color=PALETTE[0], lw=1.6, label="median forecast")
        ax.plot(seen["time"] / 60, seen["value"], ".", color=PALETTE[6], ms=4, label="CGM")
        for y in (54, 70, 180, 250):
            ax.axhline(y, color=PALETTE[1] if y < 100 else PALETTE[4], lw=0.6, ls=":")
        ax.set_xlabel("time (h)")
        ax.set_ylabel(f"{fan.output} (mg/dL)")
        ax.legend(loc="upper left", fontsize=7, ncol=3)
        desc = (
            f"Glucose readings of the last {recent / 60:g} hours and the forecast for the next "
            f"2 hours: median {q[2, -1]:.0f} mg/dL at +2 h, 90% interval {q[0, -1]:.0f} to "
            f"{q[4, -1]:.0f}."
        )
        return svg_from_figure(fig, "cgm-fan", "Glucose trace and forecast", desc)


def diabetes_view(
    twin,
    *,
    trust=None,
    comparison=None,
    horizons=(30.0, 60.0, 120.0),
    level: float = 0.9,
    risk_horizon: float = 120.0,
    recent: float = 360.0,
    draws: int | None = 256,
    n_paths: int = 16,
    seed: int = 0,
) -> dict:
    """The template context of the view (numbers as strings with their intervals).

    ``trust``: the twin's assessment (e.g. a stream step's ``trust``, or
    :func:`twin_uq.trust.stream.reassess_twin` of the cohort assessment); without it the
    page says the twin was not assessed and shows it as limited at best.
    """
    trust = trust if trust is not None else reassess_twin(twin)
    output = "glucose" if "glucose" in twin.model.output_names else twin.model.output_names[0]
    fc = twin.forecast(horizons, output, level=level, draws=draws, seed=seed, trust=trust)
    fan = twin.forecast(FAN, output, level=level, draws=draws, seed=seed)
    pct = percent(level)
    forecast_rows = [
        dict(horizon=f"+{h:g} min", median=f"{m:.0f}", interval=f"{lo:.0f} to {hi:.0f}")
        for h, m, lo, hi in zip(fc.horizons, fc.median, fc.lower, fc.upper, strict=True)
    ]
    risk_rows = []
    for thr, below in RISK_THRESHOLDS.values():
        r = twin.risk(thr, below=below, horizon=risk_horizon, output=output, n_paths=n_paths,
                      draws=draws, seed=seed, trust=trust)  # fmt: skip
        risk_rows.append(
            dict(
                event=f"{'below' if below else 'above'} {thr:g} mg/dL",
                kind="hypoglycaemia" if below else "hyperglycaemia",
                probability=f"{100 * r.probability:.1f}%",
                interval=f"{100 * r.lower:.1f}% to {100 * r.upper:.1f}%",
                mcse=f"{100 * r.mcse:.1f}",
            )
        )
    policy_rows = []
    if comparison is not None:
        table = comparison.table()
        for name in comparison.outcomes:
            r = table.loc[name]

            def frac(key, r=r):
                return (f"{100 * r.loc[key, 'mean']:.0f}% ({100 * r.loc[key, 'lower']:.0f}-"
                        f"{100 * r.loc[key, 'upper']:.0f}; MCSE {100 * r.loc[key, 'mcse']:.1f})")  # fmt: skip

            policy_rows.append(
                dict(
                    name=name,
                    tir=frac("tir"),
                    tbr70=frac("tbr70"),
                    tbr54=frac("tbr54"),
                    hypo=f"{r.loc['hypo70', 'mean']:.2f} ({r.loc['hypo70', 'lower']:.2f}-"
                    f"{r.loc['hypo70', 'upper']:.2f}; MCSE {r.loc['hypo70', 'mcse']:.2f})",
                    insulin=f"{r.loc['insulin_u', 'mean']:.1f} U",
                )
            )
    obs = twin.observations
    return dict(
        patient_id=twin.patient_id,
        model=twin.model,
        status=str(trust.status),
        meaning=STATUS_MEANING[trust.status],
        reasons=list(trust.reasons),
        caveats=list(fc.caveats),
        n_obs=len(obs),
        last=f"{fc.origin:g}",
        last_value=f"{fc.origin_value:.0f}",
        level=pct,
        figure=_fan_figure(twin, fan, recent),
        forecast_rows=forecast_rows,
        risk_rows=risk_rows,
        risk_horizon=f"{risk_horizon:g}",
        n_draws=fc.draws.shape[0],
        policy_rows=policy_rows,
        policy=comparison,
        updates=len(twin.history),
    )


def diabetes_report(twin, path: str | Path, *, provenance=(), **kwargs) -> Path:
    """Write the diabetes view of ``twin`` to ``path`` (``.html``); ``kwargs``: :func:`diabetes_view`.

    ``provenance``: rows ``(label, value)``, e.g. :func:`twin_uq.report.render.provenance`
    of the cohort fit.
    """
    context = diabetes_view(twin, **kwargs)
    rows = [
        *provenance,
        ("Model", twin.model.name),
        ("Updates since the fit", str(len(twin.history))),
        ("Report created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
    ]
    html = render(
        "diabetes.html",
        title=f"Diabetes twin: {twin.patient_id}",
        provenance=rows,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **context,
    )
    return write(path, html)
