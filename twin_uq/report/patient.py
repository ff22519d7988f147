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

import numpy as np

from twin_uq.report.patient_average import average_section
from twin_uq.report.patient_figures import forecast_figure, parameter_figure
from twin_uq.report.patient_next import next_sample_section
from twin_uq.report.patient_sections import (
    check_forecast_times,
    cohort_last_time,
    covariate_text,
    default_forecast_times,
    dose_rows,
    dose_section,
    forecast_row,
    observation_rows,
    parameter_rows,
    what_if_section,
)
from twin_uq.report.render import provenance, render, write, write_pdf
from twin_uq.report.text import format_number
from twin_uq.trust import STATUS_MEANING, assess_patient, assess_prediction
from twin_uq.twin.inputs import check_interval

__all__ = ["patient"]

_GRID = 121  # points of the plotted prediction curve


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
    next_sample: bool = True,
    average=None,
    pdf: bool = False,
) -> Path:
    """Write one patient's self-contained HTML report for a clinician.

    Parameters
    ----------
    post
        The fit of the cohort the patient belongs to (:class:`~twin_uq.CohortPosterior`).
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
    next_sample
        Rank sampling times between the last observation and the last forecast time by
        how much one more measurement would narrow that forecast's interval
        (:meth:`PosteriorTwin.next_measurement`).
    average
        A :class:`~twin_uq.compare.ModelAverage` (``tq.average({...})``) of fits of this
        cohort: adds the model-averaged forecast at ``forecast_times``, the models' weights
        and each model's own forecast and trust for this patient.
    pdf
        Also print the report to a PDF beside it with headless Chromium (skipped with a
        :class:`~twin_uq.report.render.PDFUnavailableWarning` when Chromium is absent).

    Returns
    -------
    Path
        The HTML file.
    """
    interval = check_interval(interval)
    model = post.model
    twin = post.twin(patient_id)
    pid = twin.patient_id
    assessment = assess_patient(post, pid, thresholds)
    last = twin.last_observation_time
    n_obs = int(assessment.metrics.get("n_obs", len(twin.observations)))
    ft = (
        default_forecast_times(last, cohort_last_time(post))
        if forecast_times is None
        else check_forecast_times(forecast_times)
    )
    t_end = 1.05 * max(float(ft.max()), last if np.isfinite(last) else 0.0)
    grid = np.unique(np.concatenate([np.linspace(0.0, t_end, _GRID), ft]))
    pred = twin.predict(grid, interval=interval, draws=draws, seed=seed)
    judged = assess_prediction(
        assessment, pred.sel(time=ft), clinical_range=clinical_range, model=model
    )
    unit_t = model.card.time_unit
    forecasts = [
        forecast_row(pred, out, float(t), unit_t, interval, last)
        for out in model.outputs
        for t in ft
    ]
    params, ratios = parameter_rows(twin, model, interval)
    whatif = (
        what_if_section(
            twin,
            post,
            schedules,
            grid=grid,
            forecast_times=ft,
            criterion=criterion,
            interval=interval,
            draws=draws,
            seed=seed,
            assessment=assessment,
            clinical_range=clinical_range,
        )
        if schedules
        else None
    )
    dose = (
        dose_section(twin, dose_target, dose_candidates, draws, seed)
        if dose_target is not None
        else None
    )
    upcoming = (
        next_sample_section(twin, float(ft.max()), unit_t, draws, seed)
        # it conditions on imagined samples (twin.update), which segmented parameters
        # (time-varying covariates, occasions) do not support yet
        if next_sample
        and len(twin.observations)
        and ft.max() > last
        and not twin.posterior.time_varying
        else None
    )
    averaged = average_section(average, pid, ft, interval, seed) if average is not None else None
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
        score=_score_text(judged, model),
        reasons=list(judged.reasons),
        n_obs=n_obs,
        last=format_number(last, 3) if np.isfinite(last) else None,
        time_unit=unit_t,
        forecasts=forecasts,
        forecast_svg=forecast_figure(pred, twin.observations, model, interval, ft),
        observations=observation_rows(post, twin, interval),
        covariates=[(str(k), covariate_text(v)) for k, v in twin.baseline.items()],
        doses=dose_rows(twin, unit_t, interval),
        params=params,
        params_svg=parameter_figure(ratios, model, interval),
        whatif=whatif,
        dose=dose,
        next_sample=upcoming,
        average=averaged,
        limitations=limitations,
        assumptions=list(model.card.assumptions),
        approximate=post.approximate,
        occasion_note=str(pred.attrs.get("occasion_note", "")),  # fits with iov
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


def _score_text(judged, model) -> str | None:
    """The forecast's trust score in words (None when it could not be computed)."""
    if not np.isfinite(judged.p_miss):
        return None
    units = {o.name: o.unit for o in model.outputs}
    margins = ", ".join(
        f"{format_number(v, 3)} {units.get(k.removeprefix('forecast_margin_'), '')} for "
        f"{k.removeprefix('forecast_margin_')}"
        for k, v in judged.metrics.items()
        if k.startswith("forecast_margin_")
    )
    return (
        f"Trust score: {100 * judged.p_miss:.0f}% probability that the forecast misses the true "
        f"value by more than the clinical margin ({margins}) at one or more forecast times."
    )
