"""The standard columns of a raw cohort table, parsed: TIME, DV, AMT, EVID, MDV, CMT, ...

:class:`Columns` holds the raw columns by standard name and logs a problem at a cell;
:func:`read_fields` parses every standard column into :class:`StandardFields`, logging
each cell that is not a number, not finite, too large, or not an allowed code.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin_uq.data.cells import as_text, is_integer, numbers, text_series
from twin_uq.data.problems import ProblemLog

__all__ = ["MAX_MAGNITUDE", "Columns", "StandardFields", "read_fields", "too_large"]

#: Largest magnitude accepted in a numeric cell (times, values, amounts, covariates). Larger
#: finite numbers (up to 1.8e308) are refused: their squares, which a Gaussian likelihood and
#: covariate standardisation compute, overflow double precision to inf, and no measurement
#: in any unit comes near.
MAX_MAGNITUDE = 1e150


@dataclass
class Columns:
    """The raw columns by standard name, with what a message needs to name a cell.

    ``col_of`` maps a standard name (lower case) to the raw column; ``orig_of`` to the
    column's spelling in the input; ``labels`` and ``patient`` give each row's label and
    patient id (``None`` where missing).
    """

    col_of: dict[str, pd.Series]
    orig_of: dict[str, str]
    labels: list[Hashable]
    patient: list[str | None]
    log: ProblemLog

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.labels)

    def __contains__(self, std: str) -> bool:
        return std in self.col_of

    def add(self, i: int, std: str, msg: str) -> None:
        """Log a problem at row ``i`` in the column of standard name ``std``."""
        self.log.add(self.labels[i], self.orig_of.get(std, std.upper()), self.patient[i], msg)

    def numeric(self, std: str, *, finite: bool = False) -> np.ndarray:
        """Column ``std`` as float, shape ``(n,)``: NaN where missing, absent or not a number.

        Logs every cell that is not a number and, with ``finite``, every infinite or too
        large one.
        """
        if std not in self.col_of:
            return np.full(self.n, np.nan)
        vals, bad = numbers(self.col_of[std])
        raw_vals = self.col_of[std].to_numpy()
        name = self.orig_of[std]
        for i in np.flatnonzero(bad):
            self.add(i, std, f"{name} is not a number ({as_text(raw_vals[i])!r}).")
        if finite:
            for i in np.flatnonzero(np.isinf(vals)):
                self.add(i, std, f"{name} must be finite, got {vals[i]}.")
            for i in np.flatnonzero(np.isfinite(vals) & (np.abs(vals) > MAX_MAGNITUDE)):
                self.add(i, std, too_large(name, vals[i]))
        vals[bad] = np.nan
        return vals

    def integer(self, std: str, allowed: str) -> np.ndarray:
        """Column ``std`` as int64, shape ``(n,)``: 0 where missing or not a whole number.

        Logs (besides :meth:`numeric`'s problems) every value that is not a whole number,
        saying it must be ``allowed``.
        """
        vals = self.numeric(std)
        present = ~np.isnan(vals)
        # |x| < 2**53: a whole number that float64 and int64 both hold exactly
        good = is_integer(vals) & (np.abs(vals) < 2**53)
        for i in np.flatnonzero(present & ~good):
            self.add(i, std, f"{self.orig_of[std]} must be {allowed}, got {vals[i]:g}.")
        return np.where(present & good, vals, 0).astype(np.int64)


@dataclass(frozen=True)
class StandardFields:
    """The standard columns, parsed (each shape ``(n,)``; see :func:`read_fields`).

    ``present`` holds the standard names the input has; ``cmt``, ``output``, ``dvid``,
    ``dvid_names`` and ``occ`` are ``None`` without their column. ``output`` holds the
    ``output`` column (names), ``dvid_names`` a ``DVID`` column of names and ``dvid`` the
    1-based output index of a numeric ``DVID`` column (0 where missing). ``cens`` is the ``CENS`` column (-1, 0, 1;
    0 where missing or absent), ``limit`` the ``LIMIT`` column (NaN where missing);
    ``dur`` is 0 where missing, and ``dur_given`` says where it is not.
    """

    present: frozenset[str]
    time: np.ndarray
    time_ok: np.ndarray
    dv: np.ndarray
    amt: np.ndarray
    lloq: np.ndarray
    evid: np.ndarray
    mdv: np.ndarray
    cmt: np.ndarray | None
    rate: np.ndarray
    dur: np.ndarray
    dur_given: np.ndarray
    addl: np.ndarray
    ii: np.ndarray
    ss: np.ndarray
    blq: np.ndarray
    output: np.ndarray | None
    cens: np.ndarray
    limit: np.ndarray
    dvid: np.ndarray | None
    dvid_names: np.ndarray | None
    occ: np.ndarray | None

    @property
    def is_dose(self) -> np.ndarray:
        """Dose rows (``EVID=1``, or ``EVID=4``: reset and dose)."""
        return (self.evid == 1) | (self.evid == 4)

    @property
    def is_observed(self) -> np.ndarray:
        """Observation rows not marked missing (``EVID=0``, ``MDV=0``)."""
        return (self.evid == 0) & (self.mdv == 0)


def _read_time(cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    """TIME as float and where it is usable (finite, >= 0, not too large); logs the rest."""
    time, bad = numbers(cols.col_of["time"])
    time_raw = cols.col_of["time"].to_numpy()
    name = cols.orig_of["time"]
    for i in range(cols.n):
        if bad[i]:
            cols.add(i, "time", f"{name} is not a number ({as_text(time_raw[i])!r}).")
        elif np.isnan(time[i]):
            cols.add(i, "time", f"{name} is missing.")
        elif not np.isfinite(time[i]):
            cols.add(i, "time", f"{name} must be finite, got {time[i]}.")
        elif time[i] < 0:
            cols.add(i, "time", f"{name} is negative ({time[i]:g}); times start at 0.")
        elif time[i] > MAX_MAGNITUDE:
            cols.add(i, "time", too_large(name, time[i]))
    time_ok = np.isfinite(time) & (time >= 0) & (time <= MAX_MAGNITUDE)
    return time, time_ok


def _read_evid(cols: Columns, amt: np.ndarray) -> np.ndarray:
    """EVID: 0 observation, 1 dose, 2 other, 3 reset, 4 reset and dose.

    Inferred from AMT (> 0: dose) when absent or blank; unknown codes are logged and get the
    inferred code.
    """
    inferred = np.where(np.nan_to_num(amt, nan=0.0) > 0, 1, 0)
    if "evid" not in cols:
        return inferred.astype(np.int64)
    ev = cols.numeric("evid")
    known = np.isin(ev, (0, 1, 2, 3, 4)) | np.isnan(ev)
    for i in np.flatnonzero(~known):
        cols.add(
            i,
            "evid",
            f"EVID must be 0 (observation), 1 (dose), 2 (other), 3 (reset) or 4 (reset and "
            f"dose), got {ev[i]:g}.",
        )
    evid = np.where(np.isin(ev, (0, 1, 2, 3, 4)), ev, inferred).astype(np.int64)
    evid[np.isnan(ev)] = inferred[np.isnan(ev)]
    return evid


def _read_mdv(cols: Columns) -> np.ndarray:
    """MDV (0 without the column); logs values other than 0 and 1, which become 0."""
    if "mdv" not in cols:
        return np.zeros(cols.n, np.int64)
    mdv = cols.integer("mdv", "0 or 1")
    for i in np.flatnonzero(~np.isin(mdv, (0, 1))):
        cols.add(i, "mdv", f"MDV must be 0 or 1, got {mdv[i]}.")
        mdv[i] = 0
    return mdv


def _read_cmt(cols: Columns) -> np.ndarray | None:
    """CMT (``None`` without the column); logs negative compartments."""
    if "cmt" not in cols:
        return None
    cmt = cols.integer("cmt", "a compartment number >= 0 (1-based)")
    for i in np.flatnonzero(cmt < 0):
        cols.add(i, "cmt", f"CMT must be >= 0 (1-based compartment, 0 = default), got {cmt[i]}.")
    return cmt


def _read_cens(cols: Columns) -> np.ndarray:
    """CENS (0 where missing or absent); logs codes other than -1, 0 and 1."""
    if "cens" not in cols:
        return np.zeros(cols.n, np.int64)
    cens = cols.integer("cens", "-1 (above the limit), 0 or 1 (below the limit)")
    for i in np.flatnonzero(~np.isin(cens, (-1, 0, 1))):
        cols.add(
            i,
            "cens",
            f"CENS must be -1 (above the limit), 0 or 1 (below the limit), got {cens[i]}.",
        )
        cens[i] = 0
    return cens


def _read_dvid(cols: Columns) -> tuple[np.ndarray | None, np.ndarray | None]:
    """DVID as ``(index, names)``: numbers (1-based output index) or output names.

    A column whose present values are all whole numbers gives ``index`` (0 where missing);
    any other gives ``names`` (text, NaN where missing). Numbers below 1 are logged.
    """
    if "dvid" not in cols:
        return None, None
    raw = cols.col_of["dvid"]
    vals, bad = numbers(raw)
    if bad.any():  # names (a column mixing names and numbers reads every value as a name)
        return None, text_series(raw).to_numpy()
    dvid = cols.integer("dvid", "a 1-based output index (or an output name)")
    for i in np.flatnonzero(~np.isnan(vals) & (dvid < 1)):
        cols.add(
            i,
            "dvid",
            f"DVID must be >= 1 (1-based index into the model's outputs) or an output name, "
            f"got {vals[i]:g}.",
        )
    return np.where(dvid >= 1, dvid, 0).astype(np.int64), None


def _read_occ(cols: Columns) -> np.ndarray | None:
    """OCC (``None`` without the column); logs missing and non-integer occasions."""
    if "occ" not in cols:
        return None
    for i in np.flatnonzero(text_series(cols.col_of["occ"]).isna().to_numpy()):
        cols.add(i, "occ", "OCC is missing; with an OCC column every row needs its occasion.")
    return cols.integer("occ", "a whole number (the occasion)")


def read_fields(cols: Columns) -> StandardFields:
    """Parse every standard column (in a fixed order, which is the order of its problems)."""
    time, time_ok = _read_time(cols)
    dv = cols.numeric("dv", finite=True)
    amt = cols.numeric("amt", finite=True)
    lloq = cols.numeric("lloq", finite=True)
    evid = _read_evid(cols, amt)
    mdv = _read_mdv(cols)
    cmt = _read_cmt(cols)
    rate = np.nan_to_num(cols.numeric("rate", finite=True), nan=0.0)
    dur_raw = cols.numeric("dur", finite=True)
    dur = np.nan_to_num(dur_raw, nan=0.0)
    zeros = np.zeros(cols.n, np.int64)
    addl = cols.integer("addl", "a whole number >= 0") if "addl" in cols else zeros
    ii = np.nan_to_num(cols.numeric("ii", finite=True), nan=0.0)
    ss = cols.integer("ss", "0, 1 or 2") if "ss" in cols else zeros.copy()
    blq = cols.integer("blq", "0 or 1") if "blq" in cols else zeros.copy()
    output = text_series(cols.col_of["output"]).to_numpy() if "output" in cols else None
    cens = _read_cens(cols)
    limit = cols.numeric("limit", finite=True)
    dvid, dvid_names = _read_dvid(cols)
    occ = _read_occ(cols)
    return StandardFields(
        present=frozenset(cols.col_of),
        time=time,
        time_ok=time_ok,
        dv=dv,
        amt=amt,
        lloq=lloq,
        evid=evid,
        mdv=mdv,
        cmt=cmt,
        rate=rate,
        dur=dur,
        dur_given=~np.isnan(dur_raw),
        addl=addl,
        ii=ii,
        ss=ss,
        blq=blq,
        output=output,
        cens=cens,
        limit=limit,
        dvid=dvid,
        dvid_names=dvid_names,
        occ=occ,
    )


def too_large(name: str, value: float) -> str:
    """The message for a value above :data:`MAX_MAGNITUDE`."""
    return (
        f"{name} = {value:g} is too large (magnitude above {MAX_MAGNITUDE:g}, where "
        "arithmetic on it overflows); check the value and its unit."
    )
