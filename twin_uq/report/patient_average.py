"""The patient report's "structural uncertainty" section: the model-averaged twin.

With ``patient(..., average=tq.average({...}))`` the report shows, beside the forecast of
the fit it was written for, the forecast of the weighted mixture of several models' twins
(stacking weights on leave-one-patient-out, or given weights): which models contribute and
how much, each model's own forecast and trust for this patient, and the averaged interval,
which carries the structural uncertainty that no single model's interval contains.
"""

from __future__ import annotations

import numpy as np

from twin_uq.errors import InputError
from twin_uq.report.text import format_estimate, format_time

__all__ = ["average_section"]


def average_section(
    average, patient_id: str, forecast_times: np.ndarray, interval: float, seed: int
) -> dict:
    """Rows and sentences of the section for one patient.

    Parameters
    ----------
    average
        A :class:`~twin_uq.compare.ModelAverage` of fits of the report's cohort.
    patient_id
        The report's patient.
    forecast_times
        ``(T,)`` forecast times of the report (model time unit).
    interval
        Central interval of every stated range.
    seed
        Noise seed of the predictions.
    """
    twin = average.twin(patient_id)
    pred = twin.predict(forecast_times, interval=interval, seed=seed)
    outputs = [str(o) for o in pred["output"].values]
    trust = twin.trust()
    models = []
    for label, row in twin.contributions.iterrows():
        status = str(trust[label].status) if label in trust else "not contributing"
        models.append(
            dict(
                label=str(label),
                model_name=row["model_name"],
                weight=f"{100 * row['weight']:.0f}%",
                draws=int(row["draws"]),
                method=row["method"],
                status=status,
            )
        )
    forecasts = []
    for out in outputs:
        for t in forecast_times:
            s = pred.sel(output=out, time=float(t))
            med, iv = format_estimate(
                float(s["f_median"]), float(s["f_lower"]), float(s["f_upper"])
            )
            per_model = []
            for label, sub in _by_model(pred, out, float(t), interval):
                m_med, m_iv = format_estimate(*sub)
                per_model.append(dict(label=label, median=m_med, interval=m_iv))
            forecasts.append(
                dict(
                    output=out,
                    time=format_time(float(t)),
                    median=med,
                    interval=iv,
                    models=per_model,
                )
            )
    return dict(
        description=twin.describe(),
        weight_source=twin.weight_source,
        models=models,
        forecasts=forecasts,
        approximate=twin.approximate,
    )


def _by_model(pred, output: str, t: float, interval: float):
    """Each contributing model's noise-free median and interval, from its own draws."""
    f = pred["f"].sel(output=output, time=t)
    labels = np.asarray(pred["model"].values)
    a = (1 - interval) / 2
    for label in dict.fromkeys(labels.tolist()):
        v = np.asarray(f.values)[labels == label]
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise InputError(f"Model {label!r} has no solved draw at t = {t:g} for {output!r}.")
        yield str(label), tuple(float(q) for q in np.quantile(v, [0.5, a, 1 - a]))
