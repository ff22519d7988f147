"""Sections of the patient report: the rows and sentences each part of the page shows.

Forecast times, measured values beside their predictive interval, forecasts, the
patient's parameters against a typical patient, what-if regimens and the probability of
target attainment per candidate dose. Figures: :mod:`twin_uq.report.patient_figures`;
the page: :func:`twin_uq.report.patient.patient`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
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


def dose_rows(twin, unit_t: str, interval: float = 0.9) -> list[dict]:
    """The patient's dosing history as table rows, in time order, faithful to the records.

    Every kind of dose event: boluses and infusions (with their steady state: ``SS=1``
    resets to the steady state of the dose repeated every ``II``, ``SS=2`` adds it; a
    constant infusion at steady state), infusions whose rate or duration the model gives
    (``RATE=-1/-2``), and resets (``EVID=3``). A dose into a compartment with a lag time
    or bioavailability in the model says so, with the patient's estimate and its
    ``interval``. ``occasion`` is the ``OCC`` in force at the dose (last value carried
    forward; empty without an ``OCC`` column).
    """
    model, schedule = twin.model, twin.schedule
    effects = _dose_parameter_text(twin, unit_t, interval)
    occasion = _occasions(twin.table)

    def where(cmt: int) -> str:
        c = int(cmt) or int(model.default_dose_cmt)
        return f"compartment {c} ({model.states[c - 1]})" + effects.get(c, "")

    rows = []
    for b in schedule.boluses():
        rows.append((b.time, format_number(b.amount, 3), f"bolus into {where(b.cmt)}", b))
    for i in schedule.infusions():
        if math.isinf(i.duration):
            amount, how = "—", f"constant infusion at {format_number(i.rate, 3)} per {unit_t}"
        else:
            amount = format_number(i.rate * i.duration, 3)
            how = f"infusion over {format_number(i.duration, 3)} {unit_t}"
        rows.append((i.start, amount, f"{how} into {where(i.cmt)}", i))
    for m in schedule.modelled_infusions():
        what = "rate" if m.by == "rate" else "duration"
        how = f"infusion with the {what} from the model (RATE={-1 if what == 'rate' else -2})"
        rows.append((m.start, format_number(m.amount, 3), f"{how} into {where(m.cmt)}", m))
    for r in schedule.resets():
        rows.append((r.time, "—", "reset: every compartment back to its initial state", None))
    rows.sort(key=lambda r: r[0])
    return [
        dict(
            time=format_time(t),
            amount=amount,
            route=route + _steady_text(dose, unit_t),
            occasion=occasion(t),
        )
        for t, amount, route, dose in rows
    ]


def _steady_text(dose, unit_t: str) -> str:
    ss = int(getattr(dose, "ss", 0) or 0)
    if ss == 0:
        return ""
    ii = float(getattr(dose, "ii", 0.0) or 0.0)
    if ii == 0:
        return "; at steady state (SS=1)"
    how = "starts from" if ss == 1 else "adds"
    return (
        f"; steady state (SS={ss}): {how} the steady state of this dose every "
        f"{format_time(ii)} {unit_t}"
    )


def _dose_parameter_text(twin, unit_t: str, interval: float) -> dict[int, str]:
    """Per compartment, the lag time and bioavailability with the patient's estimates."""
    params = twin.parameters(interval)
    out = {}
    for cmt, declared in twin.model.dose_parameters.items():
        parts = []
        for role, name in declared.names().items():
            if role not in ("lag", "bioavailability"):
                continue
            row = params.loc[name]
            what = "after a lag time" if role == "lag" else "bioavailability"
            unit = f" {unit_t}" if role == "lag" else ""
            parts.append(
                f"{what} {name} {format_number(row['median'], 3)}{unit} ({interval:.0%} "
                f"interval {format_number(row['lower'], 3)}–{format_number(row['upper'], 3)})"
            )
        if parts:
            out[int(cmt)] = "; " + ", ".join(parts)
    return out


def _occasions(table):
    """``occasion(t)``: the OCC in force at time ``t`` (last row at or before it), or ``""``."""
    if table is None or "occ" not in getattr(table, "columns", ()):
        return lambda t: ""
    rows = table.sort_values("time", kind="stable")
    times, occ = rows["time"].to_numpy(float), rows["occ"].to_numpy()

    def occasion(t: float) -> str:
        k = int(np.searchsorted(times, t, side="right")) - 1
        return "" if k < 0 or pd.isna(occ[k]) else format_time(float(occ[k]))

    return occasion


def covariate_text(v: object) -> str:
    if isinstance(v, float | np.floating):
        return format_number(float(v), 3)
    return str(v)
