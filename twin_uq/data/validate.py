"""Validation and normalisation of a long NONMEM-style cohort table.

:func:`normalise` turns the raw table (any column case, strings or numbers) into the
normalised table that :class:`~twin_uq.data.cohort.Cohort` is built from, or raises one
:class:`CohortError` listing every problem found (up to :data:`MAX_PROBLEMS`), each naming
the file, the row, the column and the patient.

Rows are referred to by a *label*: for a CSV file the 1-based line number in the file
(the header is line 1, so the first data row is line 2), for a Parquet file the 1-based row
number, for a DataFrame its index label.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin_uq.errors import InputError

__all__ = [
    "MAX_ADDL",
    "MAX_MAGNITUDE",
    "MAX_PROBLEMS",
    "STANDARD_COLUMNS",
    "CohortError",
    "CohortWarning",
    "Problem",
    "normalise",
]

#: Most problems listed in one :class:`CohortError` (the rest are counted).
MAX_PROBLEMS = 20

#: Most additional doses (``ADDL``) one dose row may ask for: each is expanded into a dose,
#: so a mistyped huge value would otherwise exhaust memory. 10,000 is 27 years of daily doses.
MAX_ADDL = 10_000

#: Largest magnitude accepted in a numeric cell (times, values, amounts, covariates). Larger
#: finite numbers (up to 1.8e308) are refused: their squares, which a Gaussian likelihood and
#: covariate standardisation compute, overflow double precision to inf, and no measurement
#: in any unit comes near.
MAX_MAGNITUDE = 1e150

#: Recognised NONMEM-style columns (lower case), in the order the normalised table uses.
STANDARD_COLUMNS = (
    "id",
    "time",
    "dv",
    "amt",
    "evid",
    "mdv",
    "cmt",
    "rate",
    "dur",
    "addl",
    "ii",
    "ss",
    "output",
    "lloq",
    "blq",
)

# Columns that are always present in the normalised table (inferred when absent).
_ALWAYS = ("id", "time", "evid", "mdv")
# Names a covariate may not take: the exclusion table adds a ``reason`` column.
_RESERVED = ("reason",)


@dataclass(frozen=True)
class Problem:
    """One problem found in a cohort table.

    Attributes
    ----------
    row
        Row label (CSV: 1-based line number, header = line 1; Parquet: 1-based row number;
        DataFrame: index label), or ``None`` for a problem with the whole table.
    column
        Column name as spelled in the input, or ``None``.
    patient
        Patient id, or ``None``.
    message
        What is wrong and how to fix it.
    """

    row: Hashable | None
    column: str | None
    patient: str | None
    message: str

    def describe(self, row_word: str = "line") -> str:
        """One line: ``line 5, column TIME, patient 'H-0042': message``."""
        where = []
        if self.row is not None:
            where.append(f"{row_word} {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        if self.patient is not None:
            where.append(f"patient {self.patient!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class CohortError(InputError):
    """A cohort table (or a request on a cohort) is invalid.

    Attributes
    ----------
    problems
        The individual :class:`Problem` records (all of them, even those the message
        leaves out).
    source
        File name, or ``"DataFrame"``.
    """

    def __init__(
        self, message: str, problems: Sequence[Problem] = (), source: str | None = None
    ) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)
        self.source = source

    @classmethod
    def from_problems(
        cls, source: str, problems: Sequence[Problem], row_word: str = "line"
    ) -> CohortError:
        """Build one error whose message lists the problems (at most :data:`MAX_PROBLEMS`)."""
        n = len(problems)
        head = f"Cohort table {source!r} has {n} problem{'s' if n != 1 else ''}:"
        lines = [f"  - {p.describe(row_word)}" for p in problems[:MAX_PROBLEMS]]
        if n > MAX_PROBLEMS:
            lines.append(f"  ... and {n - MAX_PROBLEMS} more (see the error's .problems).")
        return cls("\n".join([head, *lines]), problems, source)


class CohortWarning(UserWarning):
    """Something in a cohort table was changed on request (e.g. rows sorted)."""


class _Log:
    """Collects problems; raises them all at once."""

    def __init__(self, source: str, row_word: str) -> None:
        self.source = source
        self.row_word = row_word
        self.problems: list[Problem] = []

    def add(self, row: Hashable | None, column: str | None, patient: str | None, msg: str) -> None:
        self.problems.append(Problem(row, column, patient, msg))

    def raise_if_any(self) -> None:
        if self.problems:
            raise CohortError.from_problems(self.source, self.problems, self.row_word)

    def fatal(self, column: str | None, msg: str) -> CohortError:
        self.add(None, column, None, msg)
        return CohortError.from_problems(self.source, self.problems, self.row_word)


# ---- value parsing ---------------------------------------------------------------------------


def _missing(v: object) -> bool:
    try:
        return bool(pd.isna(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):  # lists and other non-scalars are values, not missing
        return False


def as_text(v: object) -> object:
    """A cell as stripped text (integral numbers without ``.0``), or NaN when missing."""
    if _missing(v):
        return np.nan
    if isinstance(v, bool | np.bool_):
        return str(int(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    t = str(v).strip()
    return np.nan if t in ("", ".") else t


def _text_series(s: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(s, skipna=True) == "string":
        # Fast path (a CSV column read as text): the same as ``as_text`` cell by cell,
        # vectorised, since a per-cell Python call dominates reading a million rows.
        vals = s.to_numpy(dtype=object, na_value=np.nan)
        present = ~pd.isna(vals)
        text = np.char.strip(vals[present].astype(str)).astype(object)
        text[(text == "") | (text == ".")] = np.nan
        out = np.full(len(s), np.nan, dtype=object)
        out[present] = text
        return pd.Series(out, index=s.index, dtype=object)
    return pd.Series([as_text(v) for v in s], index=s.index, dtype=object)


def _numbers(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column as float; returns ``(values, not_a_number)`` (missing -> NaN, not bad)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        vals = np.array(s.to_numpy(dtype=float, na_value=np.nan), dtype=float, copy=True)
        return vals, np.zeros(len(s), dtype=bool)
    text = _text_series(s)
    num = np.array(
        pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan), copy=True
    )
    bad = text.notna().to_numpy() & np.isnan(num)
    return num, bad


def _is_integer(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x) & (np.floor(x) == x)


# ---- the checks --------------------------------------------------------------------------------


def normalise(
    raw: pd.DataFrame,
    labels: Sequence[Hashable],
    *,
    source: str,
    row_word: str = "line",
    sort: bool = False,
) -> pd.DataFrame:
    """Validate a raw cohort table and return the normalised table.

    Parameters
    ----------
    raw
        The table as read (any column case; cells may be strings or numbers), with a
        positional index ``0..n-1``.
    labels
        Row label of each row (see the module docstring), length ``n``.
    source
        File name or ``"DataFrame"``, used in messages.
    row_word
        How labels are named in messages (``"line"``, ``"row"`` or ``"index"``).
    sort
        Sort each patient's rows by time (stable) instead of refusing unsorted times.

    Returns
    -------
    pandas.DataFrame
        Index = row labels (named ``"row"``); standard columns lower case in
        :data:`STANDARD_COLUMNS` order (``evid`` and ``mdv`` always present, the others
        when the input has them), then covariate columns as spelled in the input.

    Raises
    ------
    CohortError
        Listing every problem found.
    """
    log = _Log(source, row_word)
    labels = list(labels)
    if raw.shape[1] == 0:
        raise log.fatal(None, "the table has no columns (empty file?).")

    # Column names: case-insensitive standard names, covariates kept as spelled.
    spelled: dict[str, str] = {}
    seen: set[str] = set()
    for col in raw.columns:
        name = str(col).strip()
        key = name.lower()
        if key in seen:
            log.add(
                None, name, None, f"column {name!r} appears twice (names are case-insensitive)."
            )
            continue
        seen.add(key)
        if key in _RESERVED:
            log.add(None, name, None, f"column name {name!r} is reserved; rename the column.")
            continue
        spelled[key if key in STANDARD_COLUMNS else name] = col
    # Blank rows (e.g. empty CSV lines) carry no data: drop them before anything else.
    keep = ~raw.isna().all(axis=1).to_numpy()
    raw = raw.loc[keep].reset_index(drop=True)
    labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
    if raw.shape[0] == 0:
        raise log.fatal(None, "the table has no rows.")

    col_of = {std: raw[orig] for std, orig in spelled.items()}
    # The original spelling of each column (for messages) once renamed.
    orig_of = {std: str(orig).strip() for std, orig in spelled.items()}
    missing = [c.upper() for c in ("id", "time") if c not in col_of]
    if "dv" not in col_of and "amt" not in col_of:
        missing.append("DV or AMT")
    if missing:
        raise log.fatal(
            None,
            f"required column(s) {', '.join(missing)} missing; the table has "
            f"{', '.join(map(str, raw.columns))}.",
        )
    log.raise_if_any()

    n = raw.shape[0]
    ids = _text_series(col_of["id"]).to_numpy()
    patient = [None if _missing(i) else str(i) for i in ids]

    def add(i: int, std: str, msg: str) -> None:
        log.add(labels[i], orig_of.get(std, std.upper()), patient[i], msg)

    for i in range(n):
        if patient[i] is None:
            add(i, "id", "patient ID is missing.")

    def numeric(std: str, *, finite: bool = False) -> np.ndarray:
        if std not in col_of:
            return np.full(n, np.nan)
        vals, bad = _numbers(col_of[std])
        raw_vals = col_of[std].to_numpy()
        for i in np.flatnonzero(bad):
            add(i, std, f"{orig_of[std]} is not a number ({as_text(raw_vals[i])!r}).")
        if finite:
            for i in np.flatnonzero(np.isinf(vals)):
                add(i, std, f"{orig_of[std]} must be finite, got {vals[i]}.")
            for i in np.flatnonzero(np.isfinite(vals) & (np.abs(vals) > MAX_MAGNITUDE)):
                add(i, std, _too_large(orig_of[std], vals[i]))
        vals[bad] = np.nan
        return vals

    def integer(std: str, allowed: str, ok: np.ndarray | None = None) -> np.ndarray:
        vals = numeric(std)
        present = ~np.isnan(vals)
        # |x| < 2**53: a whole number that float64 and int64 both hold exactly
        good = _is_integer(vals) & (np.abs(vals) < 2**53) & (ok if ok is not None else True)
        for i in np.flatnonzero(present & ~good):
            add(i, std, f"{orig_of[std]} must be {allowed}, got {vals[i]:g}.")
        return np.where(present & good, vals, 0).astype(np.int64)

    # TIME
    time, bad = _numbers(col_of["time"])
    time_raw = col_of["time"].to_numpy()
    for i in range(n):
        if bad[i]:
            add(i, "time", f"{orig_of['time']} is not a number ({as_text(time_raw[i])!r}).")
        elif np.isnan(time[i]):
            add(i, "time", f"{orig_of['time']} is missing.")
        elif not np.isfinite(time[i]):
            add(i, "time", f"{orig_of['time']} must be finite, got {time[i]}.")
        elif time[i] < 0:
            add(i, "time", f"{orig_of['time']} is negative ({time[i]:g}); times start at 0.")
        elif time[i] > MAX_MAGNITUDE:
            add(i, "time", _too_large(orig_of["time"], time[i]))
    time_ok = np.isfinite(time) & (time >= 0) & (time <= MAX_MAGNITUDE)

    dv = numeric("dv", finite=True)
    amt = numeric("amt", finite=True)
    lloq = numeric("lloq", finite=True)

    # EVID: 0 observation, 1 dose, 2 other; inferred from AMT when absent or blank.
    inferred = np.where(np.nan_to_num(amt, nan=0.0) > 0, 1, 0)
    if "evid" in col_of:
        ev = numeric("evid")
        for i in np.flatnonzero(np.isin(ev, (3, 4))):
            kind = "reset" if ev[i] == 3 else "reset-and-dose"
            add(
                i,
                "evid",
                f"EVID={int(ev[i])} ({kind}) is not supported: a patient's state cannot be "
                "reset. Split the record into separate patients (distinct IDs) instead.",
            )
        known = np.isin(ev, (0, 1, 2, 3, 4)) | np.isnan(ev)
        for i in np.flatnonzero(~known):
            add(i, "evid", f"EVID must be 0 (observation), 1 (dose) or 2 (other), got {ev[i]:g}.")
        evid = np.where(np.isin(ev, (0, 1, 2)), ev, inferred).astype(np.int64)
        evid[np.isnan(ev)] = inferred[np.isnan(ev)]
    else:
        evid = inferred.astype(np.int64)
    is_obs = evid == 0
    is_dose = evid == 1

    mdv = integer("mdv", "0 or 1", None) if "mdv" in col_of else np.zeros(n, np.int64)
    if "mdv" in col_of:
        for i in np.flatnonzero(~np.isin(mdv, (0, 1))):
            add(i, "mdv", f"MDV must be 0 or 1, got {mdv[i]}.")
            mdv[i] = 0
    cmt = integer("cmt", "a compartment number >= 0 (1-based)") if "cmt" in col_of else None
    if cmt is not None:
        for i in np.flatnonzero(cmt < 0):
            add(i, "cmt", f"CMT must be >= 0 (1-based compartment, 0 = default), got {cmt[i]}.")
    rate = np.nan_to_num(numeric("rate", finite=True), nan=0.0)
    dur = np.nan_to_num(numeric("dur", finite=True), nan=0.0)
    addl = integer("addl", "a whole number >= 0") if "addl" in col_of else np.zeros(n, np.int64)
    ii = np.nan_to_num(numeric("ii", finite=True), nan=0.0)
    ss = np.nan_to_num(numeric("ss"), nan=0.0)
    blq = integer("blq", "0 or 1") if "blq" in col_of else np.zeros(n, np.int64)
    output = _text_series(col_of["output"]).to_numpy() if "output" in col_of else None

    for i in range(n):
        if ss[i] != 0:
            add(
                i,
                "ss",
                f"SS={ss[i]:g}: steady-state dosing is not supported. Write the doses "
                "explicitly instead: one dose row at the first dose time with ADDL = number "
                "of further doses and II = dosing interval (enough doses, e.g. 5+ half-lives, "
                "before the first observation), and SS=0.",
            )
        if "blq" in col_of and blq[i] not in (0, 1):
            add(i, "blq", f"BLQ must be 0 or 1, got {blq[i]}.")
        if "lloq" in col_of and lloq[i] <= 0 and not np.isnan(lloq[i]):
            add(i, "lloq", f"LLOQ must be > 0, got {lloq[i]:g}.")
        if addl[i] < 0:
            add(i, "addl", f"ADDL must be >= 0, got {addl[i]}.")
        elif addl[i] > MAX_ADDL:
            add(
                i,
                "addl",
                f"ADDL={addl[i]} additional doses is more than {MAX_ADDL} (each is expanded "
                "into its own dose); check the value, or split the regimen into several rows.",
            )
        if ii[i] < 0:
            add(i, "ii", f"II must be >= 0, got {ii[i]:g}.")
        if is_dose[i]:
            _check_dose(i, add, amt, rate, dur, addl, ii, "amt" in col_of, "dur" in col_of)
        elif is_obs[i] and mdv[i] == 0:
            if blq[i] == 1 and np.isnan(lloq[i]):
                add(i, "blq", "BLQ=1 but no LLOQ is given: the censoring limit is unknown.")
            if output is not None and _missing(output[i]):
                add(i, "output", "observation has no output name.")

    # Build the normalised table.
    table = pd.DataFrame(index=pd.Index(labels, name="row"))
    table["id"] = pd.array(patient, dtype=object)
    table["time"] = time
    columns: dict[str, object] = {
        "dv": dv,
        "amt": amt,
        "evid": evid,
        "mdv": mdv,
        "cmt": cmt,
        "rate": rate,
        "dur": dur,
        "addl": addl,
        "ii": ii,
        "ss": ss,
        "output": output,
        "lloq": lloq,
        "blq": blq,
    }
    for std, vals in columns.items():
        if std in col_of or std in _ALWAYS:
            table[std] = vals
    for std, orig in spelled.items():
        if std not in STANDARD_COLUMNS:
            table[std] = _covariate(raw[orig], orig).array
            if pd.api.types.is_float_dtype(table[std].dtype):
                cov = table[std].to_numpy(dtype=float, na_value=np.nan)
                for i in np.flatnonzero(np.isinf(cov)):
                    log.add(labels[i], std, patient[i], f"{std} must be finite, got {cov[i]}.")
                for i in np.flatnonzero(np.isfinite(cov) & (np.abs(cov) > MAX_MAGNITUDE)):
                    log.add(labels[i], std, patient[i], _too_large(std, cov[i]))
    table["id"] = table["id"].astype(object)
    if "output" in table:
        table["output"] = table["output"].astype(object)

    _check_duplicates(table, labels, patient, log)
    table = _check_order(
        table, time_ok, patient, labels, log, sort, source, row_word, orig_of["time"]
    )
    log.raise_if_any()
    return table


def _too_large(name: str, value: float) -> str:
    return (
        f"{name} = {value:g} is too large (magnitude above {MAX_MAGNITUDE:g}, where "
        "arithmetic on it overflows); check the value and its unit."
    )


def _check_dose(
    i: int,
    add: Callable[[int, str, str], None],
    amt: np.ndarray,
    rate: np.ndarray,
    dur: np.ndarray,
    addl: np.ndarray,
    ii: np.ndarray,
    has_amt: bool,
    has_dur: bool,
) -> None:
    if not has_amt:
        add(i, "amt", "dose row (EVID=1) but the table has no AMT column.")
    elif np.isnan(amt[i]):
        add(i, "amt", "dose row (EVID=1) has no amount (AMT is missing).")
    elif amt[i] <= 0:
        add(i, "amt", f"dose row (EVID=1) needs AMT > 0, got {amt[i]:g}.")
    if rate[i] == -1:
        add(
            i,
            "rate",
            "RATE=-1 (infusion rate estimated by the model) is not supported; give RATE > 0, "
            "or RATE=-2 with DUR > 0.",
        )
    elif rate[i] < 0 and rate[i] != -2:
        add(i, "rate", f"RATE must be > 0 (infusion), 0 (bolus) or -2 (use DUR), got {rate[i]:g}.")
    elif rate[i] == -2 and not dur[i] > 0:
        add(i, "dur", f"infusion with RATE=-2 needs DUR > 0, got {dur[i]:g}.")
    elif rate[i] == 0 and has_dur and dur[i] != 0:
        add(
            i,
            "dur",
            f"DUR={dur[i]:g} is given but RATE is not -2, so it would be ignored; set RATE=-2 to "
            "infuse over DUR, or leave DUR empty for a bolus.",
        )
    if addl[i] > 0 and not ii[i] > 0:
        add(i, "ii", f"ADDL={addl[i]} additional doses need an interval II > 0, got {ii[i]:g}.")


def _covariate(s: pd.Series, name: str) -> pd.Series:
    """A covariate column: float when every present value is a number, else categorical."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = [as_text(c) for c in s.cat.categories]
        if all(not _missing(c) for c in cats) and len(set(cats)) == len(cats):
            text = _text_series(s)
            return pd.Series(pd.Categorical(text, categories=cats), index=s.index, name=name)
    vals, bad = _numbers(s)
    if not bad.any():
        return pd.Series(vals, index=s.index, name=name)
    text = _text_series(s)
    cats = sorted({str(v) for v in text.dropna()})
    return pd.Series(pd.Categorical(text, categories=cats), index=s.index, name=name)


def _check_duplicates(
    table: pd.DataFrame, labels: list[Hashable], patient: list[str | None], log: _Log
) -> None:
    hashes = pd.util.hash_pandas_object(table.reset_index(drop=True), index=False).to_numpy()
    first: dict[int, int] = {}
    for i, h in enumerate(hashes):
        j = first.setdefault(int(h), i)
        if j != i:
            log.add(
                labels[i],
                None,
                patient[i],
                f"row duplicates {log.row_word} {labels[j]} exactly; remove one of them.",
            )


def _check_order(
    table: pd.DataFrame,
    time_ok: np.ndarray,
    patient: list[str | None],
    labels: list[Hashable],
    log: _Log,
    sort: bool,
    source: str,
    row_word: str,
    time_name: str,
) -> pd.DataFrame:
    time = table["time"].to_numpy()
    last: dict[str, int] = {}
    unsorted: list[str] = []
    for i, p in enumerate(patient):
        if p is None or not time_ok[i]:
            continue
        j = last.get(p)
        if j is not None and time[i] < time[j]:
            if p not in unsorted:
                unsorted.append(p)
            if not sort:
                log.add(
                    labels[i],
                    time_name,
                    p,
                    f"time {time[i]:g} is earlier than time {time[j]:g} at {row_word} "
                    f"{labels[j]} of the same patient; times must not decrease within a "
                    "patient. Sort the table by ID then TIME, or call "
                    "read_cohort(..., sort=True).",
                )
                continue
        last[p] = i
    if not unsorted or not sort or log.problems:
        return table
    rank = {p: k for k, p in enumerate(dict.fromkeys(x for x in patient if x is not None))}
    key = pd.DataFrame(
        {"p": [rank.get(p, -1) for p in patient], "t": time, "pos": np.arange(len(patient))}
    )
    order = key.sort_values(["p", "t", "pos"], kind="stable")["pos"].to_numpy()
    shown = ", ".join(repr(p) for p in unsorted[:10]) + (" ..." if len(unsorted) > 10 else "")
    warnings.warn(
        f"{source}: rows of {len(unsorted)} patient(s) were not in time order and have been "
        f"sorted by time (stable): {shown}.",
        CohortWarning,
        stacklevel=4,
    )
    return table.iloc[order]
