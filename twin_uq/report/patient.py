"""One patient's report for a clinician: forecast with intervals, trust, what-ifs, doses.

``patient(post, "P07", "p07.html")`` writes one self-contained HTML file (inline CSS and
SVG, no scripts, no network) that a clinician can read and print. Every prediction is
stated with its interval; the trust status is shown as a badge with its reasons; the
model's limitations and the provenance of the fit close the report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.errors import InputError
from twin_uq.report.figures import PALETTE, figure, svg_from_figure
from twin_uq.report.render import provenance, render, write, write_pdf
from twin_uq.report.text import (
    format_estimate,
    format_interval,
    format_number,
    format_time,
    interval_sentence,
    percent,
    ratio_sentence,
)
from twin_uq.trust import STATUS_MEANING, assess_prediction

__all__ = ["patient"]

_GRID = 121  # points of the plotted prediction curve


def _default_forecast_times(last: float, reference: float) -> np.ndarray:
    """Two forecast times past the data: 25% and 50% of the observed period later."""
    base = last if np.isfinite(last) and last > 0 else reference
    return np.unique(np.round([1.25 * base, 1.5 * base], 3))


def _check_forecast_times(times: object) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise InputError(
            f"forecast_times must be a non-empty sequence of finite times >= 0, got {times!r}."
        )
    return np.unique(t)


def _cohort_last_time(post) -> float:
    cd = post.idata["constant_data"]
    t = np.asarray(cd["obs_time"].values, float)
    m = np.asarray(cd["obs_mask"].values, bool)
    return float(t[m].max()) if m.any() else 24.0


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


# ---- sections ----------------------------------------------------------------------------
def _observation_rows(post, twin, interval: float) -> list[dict]:
    """Measured values beside the posterior-predictive interval at the same time."""
    model = post.model
    pid = twin.patient_id
    a = (1 - interval) / 2
    cd = post.idata["constant_data"].to_dataset().sel(patient=pid)
    mask = np.asarray(cd["obs_mask"].values, bool)
    rows = []
    if "posterior_predictive" not in post.idata.children or not mask.any():
        return rows
    y = post.idata["posterior_predictive"]["y"].sel(patient=pid)
    y = np.asarray(y.stack(sample=("chain", "draw")).transpose("obs", "sample").values)
    obs = post.idata["observed_data"]["y"].sel(patient=pid).values
    for j in np.flatnonzero(mask):
        out = model.outputs[int(cd["obs_output"].values[j])]
        lo, hi = np.nanquantile(y[j], [a, 1 - a])
        cens = bool(cd["obs_censored"].values[j])
        value = float(obs[j])
        if cens:
            lloq = float(cd["obs_lloq"].values[j])
            shown = f"below {format_number(lloq, 3)} (limit of quantification)"
            inside = "—" if not np.isfinite(lloq) else ("yes" if lo <= lloq else "no")
        else:
            shown = format_number(value, 3)
            inside = "yes" if lo <= value <= hi else "no"
        rows.append(
            dict(
                time=format_time(float(cd["obs_time"].values[j])),
                output=out.name,
                unit=out.unit,
                value=shown,
                interval=" to ".join(format_interval(lo, hi)),
                inside=inside,
            )
        )
    return rows


def _forecast_figure(pred: xr.Dataset, obs: pd.DataFrame, model, interval, forecast_times) -> str:
    outputs = list(model.outputs)
    last = float(pred.attrs.get("last_observation_time", np.nan))
    unit_t = model.card.time_unit
    p = percent(interval)
    with figure(len(outputs), 1, figsize=(7.0, 0.6 + 2.9 * len(outputs)), squeeze=False) as (
        fig,
        axes,
    ):
        for ax, out in zip(axes[:, 0], outputs, strict=True):
            s = pred.sel(output=out.name)
            t = pred["time"].values
            ax.fill_between(
                t,
                s["lower"],
                s["upper"],
                color=PALETTE[0],
                alpha=0.18,
                lw=0,
                label=f"{p} interval of a measurement",
            )
            ax.fill_between(
                t,
                s["f_lower"],
                s["f_upper"],
                color=PALETTE[0],
                alpha=0.35,
                lw=0,
                label=f"{p} interval of the true level",
            )
            ax.plot(t, s["median"], color=PALETTE[0], lw=1.6, label="median prediction")
            o = obs[obs["output"] == out.name]
            ok = o[~o["censored"].astype(bool)]
            cens = o[o["censored"].astype(bool)]
            if len(ok):
                ax.plot(ok["time"], ok["value"], "o", color=PALETTE[6], ms=4.5, label="measured")
            if len(cens):
                ax.plot(
                    cens["time"],
                    cens["lloq"],
                    "v",
                    mfc="none",
                    color=PALETTE[1],
                    ms=6,
                    label="below quantification limit",
                )
            ft = s.sel(time=forecast_times)
            ax.errorbar(
                forecast_times,
                ft["median"],
                yerr=[ft["median"] - ft["lower"], ft["upper"] - ft["median"]],
                fmt="s",
                color=PALETTE[1],
                ms=4,
                capsize=3,
                label="forecast (interval)",
            )
            if np.isfinite(last):
                ax.axvline(last, color="0.3", ls="--", lw=1)
                ax.axvspan(last, t.max(), color="0.5", alpha=0.07, lw=0)
                ax.annotate(
                    "last measurement",
                    (last, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -10),
                    textcoords="offset points",
                    fontsize=8,
                    color="0.25",
                )
            ax.set_xlabel(f"time ({unit_t})")
            ax.set_ylabel(f"{out.name} ({out.unit})")
            ax.set_xlim(0, t.max())
            ax.set_ylim(bottom=min(0.0, float(s["lower"].min())))
        fig.legend(
            *axes[0, 0].get_legend_handles_labels(),
            loc="outside lower center",
            ncol=3,
            fontsize=7.5,
        )
    n_obs = len(obs)
    desc = (
        f"Predicted {', '.join(o.name for o in outputs)} over time with the {p} interval of a "
        f"measurement (light band) and of the true level (dark band), the median prediction "
        f"(line), the patient's {n_obs} measurement(s) (dots) and the forecasts (squares with "
        "interval bars)."
        + (
            f" The dashed line marks the last measurement at {format_number(last, 3)} {unit_t}."
            if np.isfinite(last)
            else " There are no measurements: this is a population prediction."
        )
    )
    return svg_from_figure(fig, "forecast", "Prediction over time with its interval", desc)


def _parameter_rows(twin, model, interval: float) -> tuple[list[dict], str]:
    a = (1 - interval) / 2
    theta = np.asarray(twin.theta)
    typical = np.exp(np.asarray(twin.population.mean))
    rows = []
    ratios = []
    for k, par in enumerate(model.parameters):
        name = _capital(par.description or par.name)
        r = theta[:, k] / typical[:, k]
        ratios.append(np.quantile(r, [0.5, a, 1 - a]))
        pq = np.quantile(theta[:, k], [0.5, a, 1 - a])
        tq_ = np.quantile(typical[:, k], [0.5, a, 1 - a])
        rows.append(
            dict(
                name=par.name,
                description=name,
                unit=par.unit,
                patient=format_estimate(*pq)[0],
                patient_interval=format_estimate(*pq)[1],
                typical=format_estimate(*tq_)[0],
                typical_interval=format_estimate(*tq_)[1],
                sentence=ratio_sentence(
                    f"{name} ({par.name})",
                    r,
                    interval,
                    "a typical patient with the same covariates",
                ),
            )
        )
    ratios = np.asarray(ratios)
    names = [p.name for p in model.parameters]
    with figure(figsize=(6.0, 0.5 + 0.45 * len(names))) as (fig, ax):
        y = np.arange(len(names))[::-1]
        ax.errorbar(
            ratios[:, 0],
            y,
            xerr=[ratios[:, 0] - ratios[:, 1], ratios[:, 2] - ratios[:, 0]],
            fmt="o",
            color=PALETTE[0],
            capsize=3,
        )
        ax.axvline(1.0, color="0.3", ls="--", lw=1)
        ax.set_xscale("log")
        lo_, hi_ = float(ratios[:, 1].min()), float(ratios[:, 2].max())
        ticks = [
            x
            for x in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10)
            if 0.8 * lo_ <= x <= 1.25 * hi_
        ]
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_yticks(y, names)
        ax.set_xlabel("patient / typical patient with the same covariates (ratio, log scale)")
        ax.grid(axis="y", visible=False)
    desc = (
        f"Ratio of each parameter ({', '.join(names)}) of this patient to a typical patient with "
        f"the same covariates: median and {percent(interval)} interval; 1 means no difference."
    )
    return rows, svg_from_figure(
        fig, "parameters", "Patient's parameters compared with a typical patient", desc
    )


def _what_if(
    twin,
    post,
    schedules,
    grid,
    forecast_times,
    criterion,
    interval,
    draws,
    seed,
    assessment,
    clinical_range,
):
    model = post.model
    wi = twin.what_if(
        schedules, times=grid, criterion=criterion, interval=interval, draws=draws, seed=seed
    )
    goal = {"maximize": "highest", "minimize": "lowest", "target": "closest to the target"}[
        wi.criterion.goal
    ]
    rows = []
    for row in wi.table.itertuples():
        ds = wi.predictions[row.regimen]
        judged = assess_prediction(
            assessment, ds.sel(time=forecast_times), clinical_range=clinical_range, model=model
        )
        sentences = [
            interval_sentence(
                out.name,
                float(t),
                model.card.time_unit,
                float(ds["f_lower"].sel(output=out.name, time=t)),
                float(ds["f_upper"].sel(output=out.name, time=t)),
                out.unit,
                interval,
            )
            for out in model.outputs
            for t in forecast_times
        ]
        rows.append(
            dict(
                regimen=str(row.regimen),
                median=format_estimate(row.median, row.lower, row.upper)[0],
                interval=format_estimate(row.median, row.lower, row.upper)[1],
                p_best=_pct(row.p_best),
                status=judged.status.value,
                sentences=sentences,
            )
        )
    out = model.outputs[0]
    with figure(figsize=(7.0, 3.0)) as (fig, ax):
        for i, (_name, ds) in enumerate(wi.predictions.items()):
            s = ds.sel(output=out.name)
            c = PALETTE[i % len(PALETTE)]
            ax.fill_between(s["time"], s["lower"], s["upper"], color=c, alpha=0.15, lw=0)
            ax.plot(
                s["time"],
                s["median"],
                color=c,
                lw=1.6,
                ls=("-", "--", ":", "-.")[i % 4],
                label=f"regimen {i + 1}",
            )
        ax.set_xlabel(f"time ({model.card.time_unit})")
        ax.set_ylabel(f"{out.name} ({out.unit})")
        ax.legend(fontsize=7.5)
    desc = (
        f"Median prediction (lines) and {percent(interval)} interval (bands) of {out.name} under "
        f"each of the {len(rows)} regimens, numbered in the order of the table."
    )
    svg = svg_from_figure(fig, "whatif", "Comparison of regimens", desc)
    return dict(
        criterion=wi.criterion.describe(),
        goal=goal,
        rows=rows,
        figure=svg,
        n_draws=int(next(iter(wi.predictions.values())).attrs.get("n_draws", 0)),
    )


def _pct(p: float) -> str:
    if p < 0.01:
        return "less than 1%" if p > 0 else "0%"
    if p > 0.99:
        return "more than 99%" if p < 1 else "100%"
    return f"{100 * p:.0f}%"


def _default_candidates(twin) -> list[float]:
    amounts = [b.amount for b in twin.schedule.boluses()] + [
        i.rate * i.duration for i in twin.schedule.infusions()
    ]
    base = float(amounts[0]) if amounts else 100.0
    return [round(base * f, 6) for f in (0.5, 0.75, 1.0, 1.5, 2.0)]


def _dose(twin, target, candidates, draws, seed):
    if candidates is None:
        candidates = _default_candidates(twin)
    rec = twin.recommend_dose(target, candidates, draws=draws, seed=seed)
    rows = [
        dict(
            candidate=str(r.candidate),
            p=_pct(r.p_target),
            mc=_pct(r.lower)
            if _pct(r.lower) == _pct(r.upper)
            else f"{_pct(r.lower)} to {_pct(r.upper)}",
            n=int(r.n_draws),
            best=str(r.candidate) == rec.best,
        )
        for r in rec.table.itertuples()
    ]
    best_p = float(rec.table.loc[rec.table["candidate"] == rec.best, "p_target"].iloc[0])
    return dict(target=rec.target.describe(), rows=rows, best=rec.best, best_p=_pct(best_p))


# ---- entry point -------------------------------------------------------------------------
def patient(
    post,
    patient_id: object,
    path: str | Path,
    *,
    forecast_times: Sequence[float] | np.ndarray | None = None,
    schedules: Mapping[str, object] | None = None,
    dose_target=None,
    dose_candidates: Mapping[str, object] | Sequence[float] | None = None,
    criterion=None,
    interval: float = 0.9,
    clinical_range: Mapping[str, tuple[float, float]] | tuple[float, float] | None = None,
    thresholds=None,
    draws: int | None = None,
    seed: int = 0,
    pdf: bool = False,
) -> Path:
    """Write one patient's self-contained HTML report for a clinician.

    Parameters
    ----------
    post
        The cohort fit (:class:`~twin_uq.inference.CohortPosterior`).
    patient_id
        The patient (as in the data's ``id`` column).
    path
        Output ``.html`` file (parent folders are created).
    forecast_times
        Times (model time unit, from the start of the record) stated in words with their
        interval; default 1.25 and 1.5 times the last observation time (the cohort's
        last observation time for a patient without measurements).
    schedules
        What-if regimens: name → :class:`~twin_uq.Schedule`, list of doses, or None (the
        patient's own history); compared with :meth:`PosteriorTwin.what_if`.
    dose_target
        An :class:`~twin_uq.Event` or a :class:`~twin_uq.Criterion` with ``target``; adds the
        probability of target attainment per candidate dose.
    dose_candidates
        Candidate regimens (name → schedule) or amounts replacing the patient's dose
        amounts; default 0.5, 0.75, 1, 1.5 and 2 times the patient's first dose.
    criterion
        What "best" means for the what-if comparison (default: mean of the first output
        over the plotted period).
    interval
        Central credible interval of every stated range, in (0, 1).
    clinical_range
        ``(low, high)`` per output for judging interval widths (see
        :func:`~twin_uq.assess_prediction`); default the model's ranges.
    thresholds
        Trust thresholds (:class:`~twin_uq.TrustThresholds`); default the documented ones.
    draws, seed
        Posterior draws used for predictions (default all) and the noise seed.
    pdf
        Also print the report to a PDF beside it with headless Chromium (skipped with a
        :class:`~twin_uq.report.render.PDFUnavailableWarning` when Chromium is absent).

    Returns
    -------
    Path
        The HTML file.
    """
    interval = float(interval)
    if not 0.0 < interval < 1.0:
        raise InputError(f"interval must lie strictly between 0 and 1, got {interval}.")
    model = post.model
    twin = post.twin(patient_id)
    pid = twin.patient_id
    assessment = post.trust(thresholds)[pid]
    last = twin.last_observation_time
    n_obs = int(assessment.metrics.get("n_obs", len(twin.observations)))
    ft = (
        _default_forecast_times(last, _cohort_last_time(post))
        if forecast_times is None
        else _check_forecast_times(forecast_times)
    )
    t_end = 1.05 * max(float(ft.max()), last if np.isfinite(last) else 0.0)
    grid = np.unique(np.concatenate([np.linspace(0.0, t_end, _GRID), ft]))
    pred = twin.predict(grid, interval=interval, draws=draws, seed=seed)
    judged = assess_prediction(
        assessment, pred.sel(time=ft), clinical_range=clinical_range, model=model
    )
    unit_t = model.card.time_unit
    forecasts = [
        _forecast_row(pred, out, float(t), unit_t, interval, last)
        for out in model.outputs
        for t in ft
    ]
    params, params_svg = _parameter_rows(twin, model, interval)
    whatif = (
        _what_if(
            twin,
            post,
            schedules,
            grid,
            ft,
            criterion,
            interval,
            draws,
            seed,
            assessment,
            clinical_range,
        )
        if schedules
        else None
    )
    dose = (
        _dose(twin, dose_target, dose_candidates, draws, seed) if dose_target is not None else None
    )
    doses = [
        dict(
            time=format_time(b.time),
            amount=format_number(b.amount, 3),
            route=f"bolus into compartment {b.cmt}",
        )
        for b in twin.schedule.boluses()
    ] + [
        dict(
            time=format_time(i.start),
            amount=format_number(i.rate * i.duration, 3),
            route=f"infusion over {format_number(i.duration, 3)} {unit_t} into compartment {i.cmt}",
        )
        for i in twin.schedule.infusions()
    ]
    limitations = list(model.card.limitations)
    if post.approximate:
        limitations.insert(
            0,
            f"This fit used an approximate method ({post.method}); intervals may be too narrow. "
            "Confirm decisions with a full (NUTS) fit.",
        )
    html = render(
        "patient.html",
        title=f"Patient report: {pid}",
        patient_id=pid,
        model=model,
        interval=interval,
        status=judged.status.value,
        meaning=STATUS_MEANING[judged.status],
        reasons=list(judged.reasons),
        n_obs=n_obs,
        last=format_number(last, 3) if np.isfinite(last) else None,
        time_unit=unit_t,
        forecasts=forecasts,
        forecast_svg=_forecast_figure(pred, twin.observations, model, interval, ft),
        observations=_observation_rows(post, twin, interval),
        covariates=[(str(k), _covariate_text(v)) for k, v in twin.baseline.items()],
        doses=doses,
        params=params,
        params_svg=params_svg,
        whatif=whatif,
        dose=dose,
        limitations=limitations,
        assumptions=list(model.card.assumptions),
        approximate=post.approximate,
        method=post.method,
        provenance=provenance(
            post,
            **{
                "Patient": pid,
                "Prediction draws": str(int(pred.attrs.get("n_draws", 0))),
                "Draws excluded (solver failed)": str(int(pred.attrs.get("n_failed_draws", 0))),
                "Prediction noise seed": str(seed),
                "Trust thresholds": judged.thresholds.to_json(),
            },
        ),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out = write(path, html)
    if pdf:
        write_pdf(out)
    return out


def _forecast_row(
    pred: xr.Dataset, out, t: float, unit_t: str, interval: float, last: float
) -> dict:
    """Forecast of one output at one time: a sentence on the true level, and a measurement."""
    s = pred.sel(output=out.name, time=t)
    v = {k: float(s[k]) for k in ("median", "lower", "upper", "f_median", "f_lower", "f_upper")}
    med, iv = format_estimate(v["f_median"], v["f_lower"], v["f_upper"])
    _mmed, miv = format_estimate(v["median"], v["lower"], v["upper"])
    return dict(
        output=out.name,
        time=format_time(t),
        sentence=interval_sentence(
            out.name, t, unit_t, v["f_lower"], v["f_upper"], out.unit, interval
        ),
        median=med,
        interval=iv,
        measurement=miv,
        unit=out.unit,
        extrapolated=bool(not np.isfinite(last) or t > last),
    )


def _covariate_text(v: object) -> str:
    if isinstance(v, float | np.floating):
        return format_number(float(v), 3)
    return str(v)
