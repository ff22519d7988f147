"""Trust in one prediction: extrapolation past the data and interval width vs clinical range.

A twin can be trustworthy and a particular request still not: asking for next week from
a day of data, or for a concentration interval wider than the whole therapeutic window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import xarray as xr

from twin_uq.errors import InputError
from twin_uq.trust.assess import Status, TrustAssessment, _as_thresholds
from twin_uq.trust.recalibration import load_recalibration, recalibration_inputs
from twin_uq.trust.score import (
    any_miss_probability,
    clinical_margins,
    expected_abs_error,
    miss_probability,
)
from twin_uq.trust.thresholds import TrustThresholds

__all__ = ["assess_prediction"]


def _clinical_ranges(
    prediction: xr.Dataset,
    clinical_range: Mapping[str, tuple[float, float]] | tuple[float, float] | None,
    th: TrustThresholds,
    model,
) -> dict[str, tuple[float, float]]:
    outputs = (
        [str(o) for o in prediction["output"].values]
        if "output" in prediction.coords
        else ["output"]
    )
    ranges: dict[str, tuple[float, float]] = {}
    if model is not None:
        for o in model.outputs:
            if o.clinical_range is not None:
                ranges[o.name] = tuple(map(float, o.clinical_range))
    ranges |= {k: tuple(map(float, v)) for k, v in th.clinical_range.items()}
    if clinical_range is not None:
        if isinstance(clinical_range, Mapping):
            ranges |= {k: tuple(map(float, v)) for k, v in clinical_range.items()}
        else:
            lo, hi = map(float, clinical_range)
            ranges |= {o: (lo, hi) for o in outputs}
    for o, (lo, hi) in ranges.items():
        if not hi > lo:
            raise InputError(f"clinical range of {o!r} must have high > low, got ({lo}, {hi}).")
    return {o: ranges[o] for o in outputs if o in ranges}


def assess_prediction(
    assessment: TrustAssessment,
    prediction: xr.Dataset,
    clinical_range: Mapping[str, tuple[float, float]] | tuple[float, float] | None = None,
    thresholds: TrustThresholds | Mapping | None = None,
    model=None,
    margin: Mapping[str, float] | float | None = None,
) -> TrustAssessment:
    """Trust in a prediction of a twin: the patient's status, downgraded for this request.

    Parameters
    ----------
    assessment
        The patient's :class:`TrustAssessment` (from :func:`assess_patient`).
    prediction
        The Dataset of ``PosteriorTwin.predict``: ``median``, ``lower``, ``upper`` with
        dims including ``time`` (and ``output``), attribute ``last_observation_time``
        (NaN or absent without observations) and optionally ``interval``.
    clinical_range
        ``(low, high)`` for every output, or ``{output: (low, high)}``; default: the
        thresholds' ``clinical_range``, then ``Output.clinical_range`` of ``model`` (or of
        ``prediction.attrs["model_name"]`` when it names a built-in model).
    thresholds
        Default: the thresholds of ``assessment``.
    model
        The model, for ``Output.clinical_range``.
    margin
        Clinically relevant error of the forecast (output units; one value or by output)
        for the trust score; default from the thresholds and the clinical range
        (:func:`twin_uq.trust.score.clinical_margins`).

    Returns
    -------
    TrustAssessment
        Same patient; ``status`` is the worse of the patient's and the prediction's;
        ``reasons`` extended; ``metrics`` gain ``horizon``, ``extrapolation_ratio``,
        ``interval_width_fraction[_<output>]`` and, when the prediction carries its draws
        ``f``, the forecast's trust score: ``p_miss_max_<output>`` (largest over times of
        ``P(|f - median f| > margin)``), ``expected_abs_error_max_<output>``, and
        ``p_miss_forecast`` (probability of a miss at one or more times and outputs), which
        becomes ``p_miss`` of the returned assessment (the patient's own is kept as
        ``metrics["p_miss_patient"]``). For an approximate fit of a model inside the
        stored recalibration's domain (:mod:`twin_uq.trust.recalibration`, docs/trust.md),
        also ``p_miss_calibrated``: the probability of a miss recalibrated on a simulation
        study with known truth (the status rule still reads the twin's own ``p_miss``).

    Rules
    -----
    * horizon beyond the last observation above ``extrapolation_limited`` times the
      observed period → limited;
    * widest interval above ``interval_width_limited`` of the clinical range → limited,
      above ``interval_width_insufficient`` → insufficient;
    * forecast score ``p_miss_forecast`` at least ``p_miss_limited`` → limited.
    """
    th = _as_thresholds(thresholds) if thresholds is not None else assessment.thresholds
    for v in ("median", "lower", "upper"):
        if v not in prediction:
            raise InputError(
                f"assess_prediction: the prediction has no variable {v!r}; pass the Dataset "
                "returned by PosteriorTwin.predict (median, lower, upper)."
            )
    if model is None and "model_name" in prediction.attrs:
        try:
            from twin_uq.model.load import load_model

            model = load_model(prediction.attrs["model_name"])
        except Exception:  # a user's model file: ranges must then be given
            model = None
    pid = prediction.attrs.get("patient_id")
    if pid is not None and str(pid) != str(assessment.patient_id):
        raise InputError(
            f"assess_prediction: the prediction is for patient {pid!r} but the assessment is "
            f"for {assessment.patient_id!r}."
        )
    status = assessment.status
    reasons = list(assessment.reasons)
    metrics = dict(assessment.metrics)

    def add(level: Status, text: str) -> None:
        nonlocal status
        status = status.worst(level)
        reasons.append(text)

    # Solver failures at the prediction's draws (excluded there, not imputed) ---------------
    n_failed = int(prediction.attrs.get("n_failed_draws", 0))
    n_ok = int(prediction.attrs.get("n_draws", 0))
    if n_failed:
        ok_rate = n_ok / (n_ok + n_failed) if n_ok + n_failed else 0.0
        metrics["prediction_solver_ok_rate"] = ok_rate
        if ok_rate < th.min_solver_ok:
            add(
                Status.UNRELIABLE,
                f"The model could not be solved for {n_failed} of {n_ok + n_failed} posterior draws "
                "of this prediction; the interval leaves them out and may be too narrow.",
            )

    # Extrapolation ------------------------------------------------------------------------
    times = (
        np.asarray(prediction["time"].values, float)
        if "time" in prediction.coords
        else np.array([])
    )
    last = float(
        prediction.attrs.get("last_observation_time", metrics.get("last_obs_time", np.nan))
    )
    first = metrics.get("first_obs_time", np.nan)
    if not np.isfinite(first):
        first = 0.0
    if times.size and np.isfinite(last):
        horizon = max(float(times.max()) - last, 0.0)
        # The observed period runs from the start of the record (time 0, where simulation
        # starts) to the last observation, or between first and last observation when the
        # patient was first seen later.
        period = last - first if last - first > 0 else last
        ratio = horizon / period if period > 0 else (np.inf if horizon > 0 else 0.0)
        metrics |= {"horizon": horizon, "extrapolation_ratio": ratio}
        outputs = (
            [str(o) for o in prediction["output"].values] if "output" in prediction.coords else []
        )
        limit = min(
            [th.for_output(o).extrapolation_limited for o in outputs] or [th.extrapolation_limited]
        )
        if ratio > limit:
            add(
                Status.LIMITED,
                f"The prediction reaches {horizon:.3g} time units past the last measurement, "
                f"{ratio:.1f} times the observed period: a long extrapolation.",
            )
    elif times.size:
        metrics |= {"horizon": float(times.max()), "extrapolation_ratio": np.inf}

    # Interval width vs clinical range -----------------------------------------------------
    ranges = _clinical_ranges(prediction, clinical_range, th, model)
    width = prediction["upper"] - prediction["lower"]
    level = float(prediction.attrs.get("interval", np.nan))
    level_text = f"{100 * level:.0f}% " if np.isfinite(level) else ""
    worst_fraction = np.nan
    for out, (lo, hi) in ranges.items():
        w = width.sel(output=out) if "output" in width.dims else width
        wmax = float(np.nanmax(np.asarray(w.values, float))) if w.size else np.nan
        frac = wmax / (hi - lo)
        metrics[f"interval_width_fraction_{out}"] = frac
        worst_fraction = np.nanmax([worst_fraction, frac])
        tho = th.for_output(out)
        if frac > tho.interval_width_insufficient:
            add(
                Status.INSUFFICIENT,
                f"The {level_text}prediction interval for {out} is wider than the whole clinically "
                f"meaningful range {lo:g}–{hi:g} ({100 * frac:.0f}% of it): it cannot guide a decision.",
            )
        elif frac > tho.interval_width_limited:
            add(
                Status.LIMITED,
                f"The {level_text}prediction interval for {out} spans {100 * frac:.0f}% of the clinically "
                f"meaningful range {lo:g}–{hi:g}.",
            )
    metrics["interval_width_fraction"] = worst_fraction
    if not ranges:
        reasons.append(
            "No clinically meaningful range is known for the predicted output(s): interval widths "
            "were not judged."
        )
    p_forecast = _forecast_score(prediction, th, model, margin, ranges, metrics)
    _calibrated_score(prediction, p_forecast, metrics)
    if np.isfinite(p_forecast) and p_forecast >= th.p_miss_limited:
        add(
            Status.LIMITED,
            f"The twin's own uncertainty gives a {100 * p_forecast:.0f}% chance that this forecast "
            "misses the true value by more than the clinical margin at one or more of the "
            "requested times.",
        )
    return dataclasses.replace(
        assessment,
        status=status,
        reasons=tuple(reasons),
        metrics=metrics,
        thresholds=th,
        p_miss=p_forecast if np.isfinite(p_forecast) else assessment.p_miss,
    )


def _calibrated_score(prediction, p_forecast: float, metrics: dict) -> None:
    """Set ``metrics["p_miss_calibrated"]``, the stored recalibration of the forecast's score.

    Only for a fit inside the recalibration's domain (approximate fits of its models).
    """
    rec = load_recalibration()
    approximate = bool(prediction.attrs.get("approximate"))
    if not (
        np.isfinite(p_forecast) and rec.covers(prediction.attrs.get("model_name"), approximate)
    ):
        return
    values = recalibration_inputs({**metrics, "p_miss": metrics.get("p_miss_patient")}, p_forecast)
    p = float(np.asarray(rec.apply(values)).ravel()[0])
    if np.isfinite(p):
        metrics["p_miss_calibrated"] = p


def _forecast_score(prediction, th, model, margin, ranges, metrics) -> float:
    """The forecast's trust score from the noise-free draws ``f``; fills ``metrics``."""
    if "f" not in prediction:
        return np.nan
    f = prediction["f"]
    if "output" not in f.dims:
        f = f.expand_dims(output=["output"])
    outputs = [str(o) for o in f["output"].values]
    margins = clinical_margins(outputs, th, model, margin, ranges)
    if not margins:
        return np.nan
    inflation = th.approximate_score_inflation if prediction.attrs.get("approximate") else 1.0
    f = f.sel(output=list(margins)).transpose("draw", "time", "output")
    draws = np.asarray(f.values, float)  # (S, T, O)
    m = np.array([margins[o] for o in margins])
    per_point = miss_probability(draws, m, inflation=inflation)  # (T, O)
    eae = expected_abs_error(draws, inflation=inflation)
    for j, o in enumerate(margins):
        metrics[f"p_miss_max_{o}"] = float(np.nanmax(per_point[:, j]))
        metrics[f"expected_abs_error_max_{o}"] = float(np.nanmax(eae[:, j]))
        metrics[f"forecast_margin_{o}"] = float(margins[o])
    p = any_miss_probability(draws, m, inflation=inflation)
    if "p_miss" in metrics:
        metrics["p_miss_patient"] = metrics.pop("p_miss")
    metrics["p_miss_forecast"] = p
    return p
