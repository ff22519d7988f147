"""Validation and normalisation of a long NONMEM-style cohort table.

:func:`normalise` turns the raw table (any column case, strings or numbers) into the
normalised table that :class:`~twin_uq.data.cohort.Cohort` is built from, or raises one
:class:`CohortError` listing every problem found (up to :data:`MAX_PROBLEMS`), each naming
the file, the row, the column and the patient. It runs a fixed sequence of small steps
(column names, blank rows, required columns, IDs, each standard column, the checks of
each row, covariates, duplicates, order); problems are listed in the order the steps find
them, and the row checks in row order.

Rows are referred to by a *label*: for a CSV file the 1-based line number in the file
(the header is line 1, so the first data row is line 2), for a Parquet file the 1-based row
number, for a DataFrame its index label.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from twin_uq.data.cells import as_text, covariate_values, is_missing, text_series
from twin_uq.data.columns import MAX_MAGNITUDE, Columns, StandardFields, read_fields, too_large
from twin_uq.data.names import STANDARD_COLUMNS, reserved_advice
from twin_uq.data.problems import (
    MAX_PROBLEMS,
    CohortError,
    CohortWarning,
    Problem,
    ProblemLog,
)
from twin_uq.data.row_checks import MAX_ADDL, check_rows

__all__ = [
    "MAX_ADDL",
    "MAX_MAGNITUDE",
    "MAX_PROBLEMS",
    "STANDARD_COLUMNS",
    "CohortError",
    "CohortWarning",
    "Problem",
    "as_text",
    "normalise",
    "select_columns",
]

# Columns that are always present in the normalised table (inferred when absent).
_ALWAYS = ("id", "time", "evid", "mdv")
# Names a covariate may not take: the exclusion table adds a ``reason`` column.
_RESERVED = ("reason",)


# ---- the steps of normalise ----------------------------------------------------------------


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
    log = ProblemLog(source, row_word)
    labels = list(labels)
    if raw.shape[1] == 0:
        raise log.fatal(None, "the table has no columns (empty file?).")
    spelled = _standard_names(raw, log)
    raw, labels = _drop_blank_rows(raw, labels, log)
    _require_columns(raw, spelled, log)
    log.raise_if_any()  # column-name problems: nothing below can be read reliably

    ids = text_series(raw[spelled["id"]]).to_numpy()
    cols = Columns(
        col_of={std: raw[orig] for std, orig in spelled.items()},
        # The original spelling of each column (for messages) once renamed.
        orig_of={std: str(orig).strip() for std, orig in spelled.items()},
        labels=labels,
        patient=[None if is_missing(i) else str(i) for i in ids],
        log=log,
    )
    _check_ids(cols)
    fields = read_fields(cols)
    check_rows(cols, fields)
    table = _standard_table(cols, fields)
    _add_covariates(table, raw, spelled, cols)
    _check_duplicates(table, labels, cols.patient, log)
    # Called from here (not from a helper) so that the sort warning's stacklevel points at
    # the user's read_cohort call.
    table = _check_order(
        table,
        fields.time_ok,
        cols.patient,
        labels,
        log,
        sort,
        source,
        row_word,
        cols.orig_of["time"],
    )
    log.raise_if_any()
    return table


def _standard_names(raw: pd.DataFrame, log: ProblemLog) -> dict[str, Hashable]:
    """Map each column to its standard name (case-insensitive) or its own spelling.

    Logs columns given twice, reserved names (with what to do) and NONMEM names that are
    not read; the result maps the standard (or covariate) name to the raw column label.
    """
    spelled: dict[str, Hashable] = {}
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
        advice = reserved_advice(key)
        if advice is not None:
            log.add(
                None,
                name,
                None,
                f"{name!r} is a reserved NONMEM/Monolix name, never read as a covariate: {advice}.",
            )
            continue
        spelled[key if key in STANDARD_COLUMNS else name] = col
    return spelled


def select_columns(
    raw: pd.DataFrame,
    *,
    rename: Mapping[str, str] | None,
    ignore: Sequence[str],
    source: str,
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Apply ``read_cohort``'s ``rename`` and ``ignore`` to the raw table.

    Names match columns without regard to case (and surrounding blanks). Returns the table
    with ``ignore``'s columns dropped and ``rename``'s renamed, and the dropped columns as
    spelled in the input.

    Raises
    ------
    CohortError
        A name in ``rename`` or ``ignore`` that is no column, or a column both renamed and
        ignored.
    """
    log = ProblemLog(source, "line")
    by_key = {str(c).strip().lower(): c for c in raw.columns}
    renamed = {str(k).strip().lower(): str(v) for k, v in (rename or {}).items()}
    dropped = [str(c).strip().lower() for c in ignore]
    for what, keys in (("rename", renamed), ("ignore", dropped)):
        for key in keys:
            if key not in by_key:
                log.add(
                    None,
                    key,
                    None,
                    f"read_cohort({what}=...) names column {key!r}, which the table does not "
                    f"have (columns: {', '.join(map(str, raw.columns))}).",
                )
    for key in set(renamed) & set(dropped):
        log.add(None, key, None, f"column {key!r} is both renamed and ignored; choose one.")
    log.raise_if_any()
    out = raw.drop(columns=[by_key[k] for k in dropped])
    out = out.rename(columns={by_key[k]: v for k, v in renamed.items()})
    return out, tuple(str(by_key[k]).strip() for k in dropped)


def _drop_blank_rows(
    raw: pd.DataFrame, labels: list[Hashable], log: ProblemLog
) -> tuple[pd.DataFrame, list[Hashable]]:
    """Drop rows without any value (e.g. empty CSV lines); refuse a table left empty."""
    keep = ~raw.isna().all(axis=1).to_numpy()
    raw = raw.loc[keep].reset_index(drop=True)
    labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
    if raw.shape[0] == 0:
        raise log.fatal(None, "the table has no rows.")
    return raw, labels


def _require_columns(raw: pd.DataFrame, spelled: dict[str, Hashable], log: ProblemLog) -> None:
    """Refuse a table without ID, TIME, or both DV and AMT."""
    missing = [c.upper() for c in ("id", "time") if c not in spelled]
    if "dv" not in spelled and "amt" not in spelled:
        missing.append("DV or AMT")
    if missing:
        raise log.fatal(
            None,
            f"required column(s) {', '.join(missing)} missing; the table has "
            f"{', '.join(map(str, raw.columns))}.",
        )


def _check_ids(cols: Columns) -> None:
    for i in range(cols.n):
        if cols.patient[i] is None:
            cols.add(i, "id", "patient ID is missing.")


# ---- building the table --------------------------------------------------------------------


def _standard_table(cols: Columns, f: StandardFields) -> pd.DataFrame:
    """The standard columns in :data:`STANDARD_COLUMNS` order, index = row labels."""
    table = pd.DataFrame(index=pd.Index(cols.labels, name="row"))
    table["id"] = pd.array(cols.patient, dtype=object)
    table["time"] = f.time
    # A DVID column of names is the ``output`` column under its NONMEM name.
    output = f.output if f.output is not None else f.dvid_names
    if f.output is not None and f.dvid_names is not None:
        gaps = np.array([is_missing(v) for v in f.output], dtype=bool)
        output = np.where(gaps, f.dvid_names, f.output)
    columns: dict[str, object] = {
        "dv": f.dv,
        "amt": f.amt,
        "evid": f.evid,
        "mdv": f.mdv,
        "cmt": f.cmt,
        "rate": f.rate,
        "dur": f.dur,
        "addl": f.addl,
        "ii": f.ii,
        "ss": f.ss,
        "dvid": f.dvid,
        "output": output,
        "cens": f.cens,
        "limit": f.limit,
        "lloq": f.lloq,
        "blq": f.blq,
        "occ": f.occ,
    }
    for std, vals in columns.items():
        if vals is not None and (std in cols or std in _ALWAYS or std == "output"):
            table[std] = vals
    table["id"] = table["id"].astype(object)
    if "output" in table:
        table["output"] = table["output"].astype(object)
    return table


def _add_covariates(
    table: pd.DataFrame, raw: pd.DataFrame, spelled: dict[str, Hashable], cols: Columns
) -> None:
    """Append the covariate columns (as spelled) to ``table``; log infinite or huge values."""
    for std, orig in spelled.items():
        if std in STANDARD_COLUMNS:
            continue
        table[std] = covariate_values(raw[orig], orig).array
        if pd.api.types.is_float_dtype(table[std].dtype):
            cov = table[std].to_numpy(dtype=float, na_value=np.nan)
            for i in np.flatnonzero(np.isinf(cov)):
                cols.log.add(
                    cols.labels[i], std, cols.patient[i], f"{std} must be finite, got {cov[i]}."
                )
            for i in np.flatnonzero(np.isfinite(cov) & (np.abs(cov) > MAX_MAGNITUDE)):
                cols.log.add(cols.labels[i], std, cols.patient[i], too_large(std, cov[i]))


def _check_duplicates(
    table: pd.DataFrame, labels: list[Hashable], patient: list[str | None], log: ProblemLog
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
    log: ProblemLog,
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
