"""Time-varying covariates as per-patient segments: change times and the values in force.

A covariate recorded on several rows of a patient with different values is a step function
of time. :func:`covariate_segments` cuts each patient's time axis at the times where one
of the named covariates changes and gives the value of every named covariate on each
piece, padded to a static number of segments ``S`` so that patients stack:

* ``time`` ``(P, S)``: start of each segment (model time unit); the first is 0, padding
  is ``+inf`` (a segment that never starts);
* ``values`` ``(P, S, C)``: the covariates in force from ``time[p, s]`` until the next
  start (padding repeats the last segment).

Two readings of the rows (``interpolation``):

* ``"locf"`` (last observation carried forward, the default): a value recorded at ``t``
  applies from ``t`` on until the next row of that covariate;
* ``"nocb"`` (next observation carried backward, NONMEM's default for covariates read at
  each record): a value recorded at ``t`` applies back to the previous row, on
  ``(t_prev, t]``; here the piece starts at ``t_prev``, so a quantity evaluated at exactly
  ``t_prev`` (an observation there) already sees the new value.

Before a patient's first row of a covariate its first value applies, after the last row
its last value. A patient without any value of a covariate gets NaN there (the callers
fill defaults or refuse, as for baseline covariates). A cohort in which none of the named
covariates changes within a patient has ``S = 1``: ``time`` is 0 and ``values`` the
baseline values.

The segments are what later inter-occasion variability reuses: an occasion is a segment
with its own random effect (``docs/dev/time_varying.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin_uq.data.segments import Segments
from twin_uq.errors import InputError

__all__ = ["INTERPOLATIONS", "CovariateSegments", "covariate_segments"]

#: Accepted values of ``covariate_interpolation``.
INTERPOLATIONS = ("locf", "nocb")


@dataclass(frozen=True)
class CovariateSegments(Segments):
    """Per-patient pieces of constant covariates (see the module docstring).

    ``time`` holds the segment starts (:class:`~twin_uq.data.segments.Segments`); one
    segment (``S = 1``) without time-varying covariates.

    Attributes
    ----------
    values
        ``(P, S, C)`` float64 values in force on each segment (object dtype when a
        covariate is categorical).
    names
        ``C`` covariate column names, as spelled in the table.
    interpolation
        ``"locf"`` or ``"nocb"``.
    """

    values: np.ndarray
    names: tuple[str, ...]
    interpolation: str

    def frame(self, s: int, ids: Sequence[str]) -> pd.DataFrame:
        """The covariates in force on segment ``s`` of every patient (index = ids).

        Padding segments repeat the patient's last segment.
        """
        return pd.DataFrame(
            {n: self.values[:, s, c] for c, n in enumerate(self.names)},
            index=pd.Index(list(ids), name="id", dtype=object),
        )


def check_interpolation(interpolation: str) -> str:
    """``interpolation`` itself, or an ``InputError`` naming the choices."""
    if interpolation not in INTERPOLATIONS:
        raise InputError(
            f"covariate_interpolation must be one of {INTERPOLATIONS} ('locf': a value "
            "recorded at t applies from t on; 'nocb': it applies back to the previous row), "
            f"got {interpolation!r}."
        )
    return interpolation


def _records(table: pd.DataFrame, column: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per patient, the times and values of the non-missing rows of ``column``, time-sorted."""
    col = table[column]
    present = col.notna().to_numpy()
    sub = pd.DataFrame(
        {
            "id": table["id"].to_numpy()[present],
            "time": table["time"].to_numpy(dtype=float)[present],
            "value": col.to_numpy()[present],
        }
    )
    sub = sub.sort_values("time", kind="stable")
    return {
        str(pid): (g["time"].to_numpy(dtype=float), g["value"].to_numpy())
        for pid, g in sub.groupby("id", sort=False)
    }


def _value_after(times: np.ndarray, values: np.ndarray, t: float, interpolation: str) -> object:
    """The value in force just after time ``t`` (see the module docstring)."""
    if interpolation == "locf":
        k = int(np.searchsorted(times, t, side="right")) - 1
        return values[max(k, 0)]
    k = int(np.searchsorted(times, t, side="right"))
    return values[min(k, len(values) - 1)]


def covariate_segments(
    table: pd.DataFrame,
    ids: Sequence[str],
    columns: Sequence[str],
    interpolation: str = "locf",
) -> CovariateSegments:
    """Cut every patient's time at the changes of ``columns`` (see the module docstring).

    Parameters
    ----------
    table
        The cohort's normalised long table (``id``, ``time`` and the covariate columns).
    ids
        Patient ids, in the order of the output's first axis.
    columns
        Covariate columns of ``table`` (exact spelling).
    interpolation
        ``"locf"`` (default) or ``"nocb"``.
    """
    check_interpolation(interpolation)
    ids = [str(i) for i in ids]
    records = {c: _records(table, c) for c in columns}
    numeric = all(pd.api.types.is_numeric_dtype(table[c]) for c in columns)
    per_patient: list[tuple[list[float], list[list[object]]]] = []
    for pid in ids:
        rows = [records[c].get(pid) for c in columns]
        candidates = sorted(
            {0.0, *(float(t) for r in rows if r is not None for t in r[0] if t > 0)}
        )
        starts: list[float] = []
        vals: list[list[object]] = []
        for t in candidates:
            v = [np.nan if r is None else _value_after(r[0], r[1], t, interpolation) for r in rows]
            if vals and all(_same(a, b) for a, b in zip(v, vals[-1], strict=True)):
                continue
            starts.append(t)
            vals.append(v)
        per_patient.append((starts, vals))
    S = max([len(s) for s, _ in per_patient] + [1])
    P, C = len(ids), len(columns)
    time = np.full((P, S), np.inf)
    values = np.empty((P, S, C), dtype=float if numeric else object)
    for p, (starts, vals) in enumerate(per_patient):
        time[p, : len(starts)] = starts
        for s in range(S):
            values[p, s, :] = vals[min(s, len(vals) - 1)]
    return CovariateSegments(time, values, tuple(columns), interpolation)


def _same(a: object, b: object) -> bool:
    """Equal values, NaN equal to NaN (a patient without a value stays without one)."""
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return bool(a == b)
