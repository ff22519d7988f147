"""From the normalised table to the fields of a cohort (observations, doses, covariates).

Padded observations, doses, baseline covariates, the covariate series and excluded rows.

:func:`cohort_fields` gives every field of :class:`~twin_uq.data.cohort.Cohort` but the
source name and row word; ``build_cohort`` (in ``cohort``) wraps them in the container.
Nothing here knows the container, so the container can rebuild sub-cohorts from filtered
tables without an import cycle.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from twin_uq.data.names import STANDARD_COLUMNS
from twin_uq.data.schedules import doses_by_patient
from twin_uq.data.table import censoring, exclusion_reasons, used_obs

__all__ = ["baseline_covariates", "cohort_fields", "excluded_rows", "padded_observations"]


def padded_observations(t: pd.DataFrame, ids: Sequence[str]) -> dict[str, Any]:
    """The observations of each patient as padded arrays, and the output names.

    Returns
    -------
    dict
        ``outputs`` (names in order of first use, ``()`` without an ``output`` column or
        DVID names) and ``obs_time``, ``obs_value``, ``obs_output``, ``obs_mask``,
        ``obs_censored``, ``obs_lloq``, ``obs_cens``, ``obs_limit``, ``obs_dvid``,
        ``obs_occ``, each shape ``(P, N)`` with ``N`` the most observations of one patient
        (at least 1). Padding: mask False, value 0, lloq -inf, cens 0, limit NaN, dvid 0,
        occ 0, time = the patient's last observation time (0 without observations) so time
        grids never decrease.
    """
    pos = {p: k for k, p in enumerate(ids)}
    patient_of = np.array([pos[i] for i in t["id"]], dtype=np.int64)
    used = used_obs(t)
    cens, bound, limit = censoring(t)
    time = t["time"].to_numpy(dtype=float)
    dv = t["dv"].to_numpy(dtype=float) if "dv" in t else np.full(len(t), np.nan)
    lloq = t["lloq"].to_numpy(dtype=float) if "lloq" in t else np.full(len(t), np.nan)
    # The limit of a censored row; other rows keep their LLOQ (if any) for reports.
    lloq = np.where(cens != 0, bound, lloq)
    dvid = t["dvid"].to_numpy(dtype=np.int64) if "dvid" in t else np.zeros(len(t), np.int64)
    occ = t["occ"].to_numpy(dtype=np.int64) if "occ" in t else np.zeros(len(t), np.int64)

    outputs: tuple[str, ...] = ()
    out_idx = np.zeros(len(t), dtype=np.int64)
    if "output" in t:
        names = t["output"].to_numpy()[used]
        outputs = tuple(str(o) for o in dict.fromkeys(names))
        lookup = {o: k for k, o in enumerate(outputs)}
        out_idx[used] = [lookup[str(o)] for o in names]

    P = len(ids)
    counts = np.bincount(patient_of[used], minlength=P)
    N = max(int(counts.max()) if P else 0, 1)
    obs_time = np.zeros((P, N))
    obs_value = np.zeros((P, N))
    obs_output = np.zeros((P, N), dtype=np.int64)
    obs_mask = np.zeros((P, N), dtype=bool)
    obs_cens = np.zeros((P, N), dtype=bool)
    obs_lloq = np.full((P, N), -np.inf)
    obs_cens_dir = np.zeros((P, N), dtype=np.int64)
    obs_limit = np.full((P, N), np.nan)
    obs_dvid = np.zeros((P, N), dtype=np.int64)
    obs_occ = np.zeros((P, N), dtype=np.int64)
    fill = np.zeros(P, dtype=np.int64)
    for i in np.flatnonzero(used):
        p = patient_of[i]
        j = fill[p]
        fill[p] += 1
        obs_time[p, j] = time[i]
        obs_value[p, j] = 0.0 if np.isnan(dv[i]) else dv[i]
        obs_output[p, j] = out_idx[i]
        obs_mask[p, j] = True
        obs_cens[p, j] = cens[i] != 0
        obs_lloq[p, j] = lloq[i] if np.isfinite(lloq[i]) else -np.inf
        obs_cens_dir[p, j] = cens[i]
        obs_limit[p, j] = limit[i]
        obs_dvid[p, j] = dvid[i]
        obs_occ[p, j] = occ[i]
    for p in range(P):  # padding repeats the last time so time grids never decrease
        obs_time[p, fill[p] :] = obs_time[p, fill[p] - 1] if fill[p] else 0.0
    return {
        "outputs": outputs,
        "obs_time": obs_time,
        "obs_value": obs_value,
        "obs_output": obs_output,
        "obs_mask": obs_mask,
        "obs_censored": obs_cens,
        "obs_lloq": obs_lloq,
        "obs_cens": obs_cens_dir,
        "obs_limit": obs_limit,
        "obs_dvid": obs_dvid,
        "obs_occ": obs_occ,
    }


def baseline_covariates(t: pd.DataFrame, ids: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline covariates (index = ids) and the series of the time-varying ones.

    Returns
    -------
    covariates
        Per patient, the first non-missing value in time of each covariate column (float,
        or categorical with the column's categories); NaN where a patient has none.
    series
        Long table ``id, time, covariate, value`` of every recorded value of the covariates
        whose value changes within some patient (duplicates dropped).
    """
    time = t["time"].to_numpy(dtype=float)
    cov_names = [c for c in t.columns if c not in STANDARD_COLUMNS]
    covariates = pd.DataFrame(index=pd.Index(list(ids), name="id", dtype=object))
    series_parts = []
    for c in cov_names:
        col = t[c]
        present = col.notna().to_numpy()
        first: dict[str, Hashable] = {}
        nvals: dict[str, set] = {}
        for pid, v, ok in zip(t["id"], col.to_numpy(), present, strict=True):
            if ok:
                first.setdefault(pid, v)
                nvals.setdefault(pid, set()).add(v)
        base = [first.get(p, np.nan) for p in ids]
        if isinstance(col.dtype, pd.CategoricalDtype):
            covariates[c] = pd.Categorical(base, categories=col.cat.categories)
        else:
            covariates[c] = np.asarray(base, dtype=float)
        if any(len(v) > 1 for v in nvals.values()):
            part = pd.DataFrame(
                {
                    "id": t["id"].to_numpy()[present],
                    "time": time[present],
                    "covariate": c,
                    "value": col.to_numpy()[present],
                }
            ).drop_duplicates()
            series_parts.append(part)
    if series_parts:
        series = pd.concat(series_parts, ignore_index=True)
        if all(pd.api.types.is_numeric_dtype(p["value"]) for p in series_parts):
            series["value"] = series["value"].astype(float)
        else:
            series["value"] = series["value"].astype(object)
    else:
        series = pd.DataFrame(
            {
                "id": pd.Series([], dtype=object),
                "time": pd.Series([], dtype=float),
                "covariate": pd.Series([], dtype=object),
                "value": pd.Series([], dtype=float),
            }
        )
    series["id"] = series["id"].astype(object)
    series["covariate"] = series["covariate"].astype(object)
    return covariates, series


def excluded_rows(t: pd.DataFrame) -> pd.DataFrame:
    """Rows that are neither an observation nor a dose, with a ``reason`` column."""
    reasons = exclusion_reasons(t)
    keep = np.array([r is not None for r in reasons], dtype=bool)
    excluded = t[keep].copy()
    excluded["reason"] = pd.Series([r for r in reasons if r is not None], dtype=object).to_numpy()
    excluded["reason"] = excluded["reason"].astype(object)
    return excluded


def cohort_fields(t: pd.DataFrame) -> dict[str, Any]:
    """Every field of a cohort derived from the normalised table ``t`` (``table`` included).

    Patients are in order of first appearance; see :func:`padded_observations`,
    :func:`~twin_uq.data.schedules.doses_by_patient`, :func:`baseline_covariates` and
    :func:`excluded_rows` for the parts.
    """
    ids = tuple(str(i) for i in pd.unique(t["id"]))
    obs = padded_observations(t, ids)
    boluses, infusions, modelled, resets = doses_by_patient(t, ids)
    covariates, series = baseline_covariates(t, ids)
    return {
        "ids": ids,
        **obs,
        "boluses": boluses,
        "infusions": infusions,
        "modelled": modelled,
        "resets": resets,
        "covariates": covariates,
        "covariate_series": series,
        "table": t,
        "excluded": excluded_rows(t),
    }
