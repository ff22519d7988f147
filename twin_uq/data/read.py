"""Reading a long NONMEM-style cohort table (CSV, Parquet or DataFrame) into a Cohort."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from twin_uq.data.cohort import Cohort, build_cohort
from twin_uq.data.names import STANDARD_COLUMNS
from twin_uq.data.time_units import canonical_time_unit
from twin_uq.data.validate import CohortError, Problem, normalise, select_columns

__all__ = ["read_cohort"]

_CSV = {".csv": ",", ".tsv": "\t", ".txt": ","}
_PARQUET = (".parquet", ".pq")


def read_cohort(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    sort: bool = False,
    name: str | None = None,
    time_unit: str | None = None,
    rename: Mapping[str, str] | None = None,
    ignore: Sequence[str] = (),
) -> Cohort:
    """Read and validate a cohort table.

    One row per observation, dose or other event, NONMEM conventions; every column and
    every rule is documented on the *Data format* page of the docs. Column names are
    case-insensitive:

    ``ID`` (number or text, kept as text, patients in order of first appearance),
    ``TIME`` (>= 0, finite, in ``time_unit``), ``DV`` (observed value), ``AMT`` (dose
    amount), ``EVID`` (0 observation, 1 dose, 2 other/covariate-only row, 3 reset, 4 reset
    and dose; when absent, a row with ``AMT > 0`` is a dose and any other row an
    observation), ``MDV`` (1 on an observation row: kept in the table as a prediction time,
    not data, listed in ``cohort.excluded``), ``CMT`` (1-based compartment; 0 or absent = the
    model's default dose compartment), ``RATE`` (> 0: zero-order infusion lasting
    ``AMT/RATE``; -1: rate from the model; -2: duration from the model, or ``DUR`` when
    given; 0 or absent: bolus), ``DUR`` (twin_uq's own duration column of ``RATE=-2``),
    ``ADDL`` and ``II`` (``ADDL`` further doses every ``II``, expanded), ``SS`` (1: reset to
    the steady state of this dose repeated every ``II``, then dose; 2: add that steady
    state; ``SS=1, AMT=0, RATE>0, II=0`` is a constant infusion at steady state; with
    ``ADDL`` the further doses are not steady-state doses), ``CENS`` (1: the value is below
    the limit in ``DV``; -1: above it; M3) with ``LIMIT`` (the interval's other bound, e.g.
    0 for M4), ``DVID`` (the observed output: 1-based index into the model's outputs, or
    its name; ``output`` is twin_uq's spelling for names), ``OCC`` (integer occasion of
    every row), ``lloq`` and ``blq`` (twin_uq's spelling of ``CENS=1``: an observation with
    an ``lloq`` and a value below it, no value, or ``blq = 1`` is censored below ``lloq``).
    Reserved NONMEM/Monolix names that are not read (``L1``, ``L2``, ``DATE``, ``DAT1-3``,
    ``TAD``, ``YTYPE``, ...) are refused with what to do. Every other column is a covariate:
    numeric when every value is a number, else categorical; it may change over time
    (``covariate_series``). Empty cells and ``.`` are missing values; blank lines are
    skipped. ``cohort.summary()`` lists how every column was read.

    **Sorting policy.** Times must not decrease within a patient (rows of different
    patients may interleave). By default an unsorted table is refused, naming each
    offending patient and row, because a silently re-ordered table may hide a data-entry
    error (a wrong date or swapped rows). With ``sort=True`` each patient's rows are sorted
    by time (stable: rows at equal times keep their order, so a dose written before an
    observation at the same time stays before it) and grouped by patient, and a
    :class:`~twin_uq.data.validate.CohortWarning` names the patients that were re-ordered.

    **Row numbers in messages.** For a CSV file, the 1-based line number in the file with
    the header as line 1 (so the first data row is line 2, what a text editor shows); for
    Parquet, the 1-based row number; for a DataFrame, the index label.

    Parameters
    ----------
    source
        Path to a ``.csv`` / ``.tsv`` / ``.txt`` (comma-separated) or ``.parquet`` file,
        or a pandas DataFrame.
    sort
        Sort unsorted patients by time (with a warning) instead of refusing them.
    name
        Name used for the cohort's ``source`` and in messages (default: the path as given,
        or ``"DataFrame"``).
    time_unit
        Unit of ``TIME`` (``"h"``, ``"min"``, ``"s"``, ``"ms"``, ``"d"``, ``"week"`` or
        spellings such as ``"hours"``). A model refuses a cohort whose declared unit differs
        from its own (``model.card.time_unit``), saying the conversion to apply; a cohort
        without a declared unit is taken to be in the model's unit, which the load summary
        says.
    rename
        Input column -> name to use (e.g. ``{"weight_kg": "WT"}`` to match a model's
        covariate, or ``{"CONC": "DV"}``), matched without regard to case.
    ignore
        Input columns to read past (listed as ignored in the load summary), e.g. a
        ``DATE`` column kept for the record.

    Returns
    -------
    Cohort

    Raises
    ------
    CohortError
        When the file cannot be read or the table is invalid; the message lists every
        problem found (up to 20) with file, row, column and patient, and ``.problems``
        holds them all.
    """
    unit = None if time_unit is None else canonical_time_unit(time_unit)
    if isinstance(source, pd.DataFrame):
        label = name or "DataFrame"
        _check_column_labels(source, label)
        raw = source.reset_index(drop=True)
        labels = list(source.index)
        row_word = "index"
    else:
        path = Path(source)
        label = name or str(source)
        raw, row_word = _read_file(path, label)
        labels = list(raw.index + 2) if row_word == "line" else list(raw.index + 1)
    raw, ignored = select_columns(raw, rename=rename, ignore=ignore, source=label)
    table = normalise(raw, labels, source=label, row_word=row_word, sort=sort)
    understood = tuple(
        (str(c).strip(), str(c).strip().lower())
        for c in raw.columns
        if str(c).strip().lower() in STANDARD_COLUMNS
    )
    return build_cohort(
        table,
        source=label,
        row_word=row_word,
        understood=understood,
        ignored=ignored,
        time_unit=unit,
    )


def _check_column_labels(frame: pd.DataFrame, label: str) -> None:
    """Refuse column labels that cannot name a column (lists, dicts: pandas cannot index them)."""
    for k, col in enumerate(frame.columns):
        try:
            hash(col)
        except TypeError:
            msg = f"column {k + 1} is labelled {col!r}, which is not a column name; use text."
            raise CohortError(
                f"Cohort table {label!r}: {msg}", [Problem(None, None, None, msg)], label
            ) from None


def _read_file(path: Path, label: str) -> tuple[pd.DataFrame, str]:
    """Read a file into a raw DataFrame (cells as text for CSV) and the row word."""

    def fail(msg: str) -> CohortError:
        return CohortError(
            f"Cannot read cohort file {label!r}: {msg}", [Problem(None, None, None, msg)], label
        )

    if not path.exists():
        raise fail("no such file.")
    if path.is_dir():
        raise fail("it is a directory, not a file.")
    suffix = path.suffix.lower()
    try:
        if suffix in _PARQUET:
            raw = pd.read_parquet(path)
        elif suffix in _CSV:
            raw = pd.read_csv(
                path,
                sep=_CSV[suffix],
                dtype=str,
                na_values=["."],
                skip_blank_lines=False,  # keeps row i on line i + 2
                encoding="utf-8-sig",
            )
    except pd.errors.EmptyDataError:
        raise fail("the file is empty.") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise fail(f"{type(e).__name__}: {e}") from None
    except Exception as e:  # pyarrow raises its own error types for corrupt files
        raise fail(f"{type(e).__name__}: {e}") from None
    if suffix in _PARQUET:
        # A stored row index (e.g. of a filtered DataFrame) is not data; a named one is.
        if not isinstance(raw.index, pd.RangeIndex):
            named = any(n is not None for n in raw.index.names)
            raw = raw.reset_index(drop=not named)
        return raw.reset_index(drop=True), "row"
    if suffix in _CSV:
        if not isinstance(raw.index, pd.RangeIndex):
            # pandas turns the surplus leading fields into a row index when the first data
            # line has more fields than the header: refuse instead of misreading.
            raise fail(
                f"line 2 has more fields than the header (line 1, {raw.shape[1]} column(s)); "
                "name every column in the header, and quote values that contain the "
                f"separator {_CSV[suffix]!r}."
            )
        return raw, "line"
    raise fail(
        f"unknown file type {suffix or '(no extension)'!r}; use .csv, .tsv, .txt or .parquet, "
        "or pass a pandas DataFrame."
    )
