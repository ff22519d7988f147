"""Sections of the patient report: the rows and sentences each part of the page shows.

Forecast times, measured values beside their predictive interval, forecasts, the
patient's parameters against a typical patient, what-if regimens and the probability of
target attainment per candidate dose. Figures: :mod:`twin_uq.report.patient_figures`;
the page: :func:`twin_uq.report.patient.patient`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from twin_uq.errors import InputError
from twin_uq.model.scales import to_natural
from twin_uq.report.patient_figures import what_if_figure
from twin_uq.report.text import (
    format_estimate,
    format_interval,
    format_number,
    format_time,
    interval_sentence,
    ratio_sentence,
)
from twin_uq.trust import assess_prediction
from twin_uq.twin.results import probability_percent

__all__ = [
    "check_forecast_times",
    "cohort_last_time",
    "covariate_text",
    "default_forecast_times",
    "dose_rows",
    "dose_section",
    "forecast_row",
    "observation_rows",
    "parameter_rows",
    "what_if_section",
]


def default_forecast_times(last: float, reference: float) -> np.ndarray:
    """Two forecast times past the data: 25% and 50% of the observed period later."""
    base = last if np.isfinite(last) and last > 0 else reference
    return np.unique(np.round([1.25 * base, 1.5 * base], 3))


def check_forecast_times(times: object) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise InputError(
            f"forecast_times must be a non-empty sequence of finite times >= 0, got {times!r}."
        )
    return np.unique(t)


def cohort_last_time(post) -> float:
    cd = post.idata["constant_data"]
    t = np.asarray(cd["obs_time"].values, float)
    m = np.asarray(cd["obs_mask"].values, bool)
    return float(t[m].max()) if m.any() else 24.0


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def observation_rows(post, twin, interval: float) -> list[dict]:
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


def forecast_row(
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


def parameter_rows(twin, model, interval: float) -> tuple[list[dict], np.ndarray]:
    """Each parameter of the patient beside a typical patient with the same covariates.

    Returns the table rows and the ``(K, 3)`` ratios patient / typical (median, lower,
    upper of the ``interval``) that :func:`parameter_figure` draws.
    """
    a = (1 - interval) / 2
    theta = np.asarray(twin.theta)
    typical = to_natural(model, np.asarray(twin.population.mean))
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
    return rows, np.asarray(ratios)


def what_if_section(
    twin,
    post,
    schedules,
    *,
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
    svg = what_if_figure(wi.predictions, model, interval, len(rows))
    return dict(
        criterion=wi.criterion.describe(),
        goal=goal,
        rows=rows,
        figure=svg,
        n_draws=int(next(iter(wi.predictions.values())).attrs.get("n_draws", 0)),
    )


def _pct(p: float) -> str:
    return probability_percent(p, in_words=True)


def _default_candidates(twin) -> list[float]:
    amounts = [b.amount for b in twin.schedule.boluses()] + [
        i.rate * i.duration for i in twin.schedule.infusions()
    ]
    base = float(amounts[0]) if amounts else 100.0
    return [round(base * f, 6) for f in (0.5, 0.75, 1.0, 1.5, 2.0)]


def dose_section(twin, target, candidates, draws, seed):
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


def dose_rows(twin, unit_t: str) -> list[dict]:
    """The patient's doses (boluses, then infusions) as table rows."""
    return [
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


def covariate_text(v: object) -> str:
    if isinstance(v, float | np.floating):
        return format_number(float(v), 3)
    return str(v)
