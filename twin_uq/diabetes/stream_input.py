"""Reading a continuous glucose monitor (CGM) stream: readings with meal and insulin events.

A stream is a CSV file, a DataFrame or an iterable of ``(time, value[, carbs[, insulin]])``
tuples (or of mappings with those keys). Columns:

``time``
    minutes on the twin's clock (the time axis of the fit), non-decreasing; required.
``glucose`` (the model's output name; ``value`` is accepted too)
    the reading, mg/dL; blank on a row that only carries an event.
``carbs``
    grams of carbohydrate eaten at ``time`` (a meal bolus into the gut).
``insulin``
    units of rapid-acting insulin injected at ``time`` (a bolus into the subcutaneous depot).

Nothing is guessed: an unknown column, a non-number, a negative amount, two readings at one
time or a time going backwards is refused with its row and column. Rows are numbered as a
text editor shows a CSV (header = line 1) or, for an iterable, from 0 ("item 3").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from twin_uq.errors import InputError

__all__ = ["EVENT_STATES", "read_stream", "stream_rows"]

#: Which model state each event column doses (by state name; resolved per model).
EVENT_STATES = {"carbs": "gut_1", "insulin": "insulin_sc"}

_COLUMNS = ("time", "value", "carbs", "insulin")


def _frame(source, output: str) -> tuple[pd.DataFrame, str, str]:
    """``(frame, where, row_word)``: the raw table with its rows labelled for messages."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"CGM stream file {path} does not exist.")
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise InputError(
                f"{path}: cannot read as CSV ({' '.join(str(err).split())})."
            ) from None
        frame.index = range(2, len(frame) + 2)  # header = line 1
        return frame, str(path), "line"
    if isinstance(source, pd.DataFrame):
        return source.copy(), "CGM stream", "row"
    if isinstance(source, Iterable):
        items = list(source)
        if items and all(isinstance(x, Mapping) for x in items):
            return pd.DataFrame(items), "CGM stream", "item"
        rows = []
        for j, x in enumerate(items):
            if isinstance(x, str | bytes) or not isinstance(x, Iterable):
                raise InputError(
                    f"CGM stream item {j}: expected (time, value[, carbs[, insulin]])."
                )
            x = tuple(x)
            if not 2 <= len(x) <= 4:
                raise InputError(
                    f"CGM stream item {j}: expected 2 to 4 fields (time, value[, carbs[, "
                    f"insulin]]), got {len(x)}."
                )
            rows.append(dict(zip(("time", output, "carbs", "insulin"), x, strict=False)))
        return pd.DataFrame(rows), "CGM stream", "item"
    raise TypeError("A CGM stream is a CSV path, a DataFrame or an iterable of tuples.")


def _numbers(frame: pd.DataFrame, col: str, where: str, word: str, required: bool) -> np.ndarray:
    """A column as floats (blank: NaN); a non-number or a required blank named by row."""
    out = np.full(len(frame), np.nan)
    for j, (label, v) in enumerate(frame[col].items()):
        blank = not v.strip() if isinstance(v, str) else bool(pd.isna(v))
        if not blank:
            try:
                out[j] = float(v)
            except (TypeError, ValueError):
                raise InputError(
                    f"{where} {word} {label}, column {col}: {v!r} is not a number."
                ) from None
        if (blank and required) or (not blank and not np.isfinite(out[j])):
            raise InputError(f"{where} {word} {label}, column {col}: needs a finite number.")
    return out


def read_stream(source, output: str = "glucose", after: float | None = None) -> pd.DataFrame:
    """Validated stream rows: columns ``time``, ``value``, ``carbs``, ``insulin`` (NaN: none).

    ``after``: the twin's last observation time; a reading at or before it is refused
    (the stream continues the record, it does not rewrite it). Each row keeps its label
    (CSV line, row or item number) as index, for messages.
    """
    frame, where, word = _frame(source, output)
    names = {str(c).strip().lower(): c for c in frame.columns}
    allowed = {"time": "time", output.lower(): "value", "value": "value"}
    allowed |= {"carbs": "carbs", "insulin": "insulin"}
    unknown = [c for n, c in names.items() if n not in allowed]
    if unknown:
        raise InputError(
            f"{where}: unknown column {unknown[0]!r}; a CGM stream has columns time, "
            f"{output} (or value), carbs (g), insulin (U)."
        )
    mapped = {allowed[n]: c for n, c in names.items()}
    if len({allowed[n] for n in names}) < len(names):
        raise InputError(f"{where}: both {output!r} and 'value' given; use one.")
    if "time" not in mapped:
        raise InputError(f"{where}: a CGM stream needs a time column.")
    if frame.empty:
        raise InputError(f"{where}: no rows.")
    out = pd.DataFrame(index=frame.index)
    for col in _COLUMNS:
        if col in mapped:
            out[col] = _numbers(frame, mapped[col], where, word, col == "time")
        else:
            out[col] = np.nan
    for col in ("carbs", "insulin"):
        bad = out.index[out[col] < 0]
        if len(bad):
            raise InputError(
                f"{where} {word} {bad[0]}, column {mapped[col]}: amounts must be >= 0."
            )
    empty = out.index[out[["value", "carbs", "insulin"]].isna().all(axis=1)]
    if len(empty):
        raise InputError(f"{where} {word} {empty[0]}: neither a reading nor an event.")
    t = out["time"].to_numpy()
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        j = back[0] + 1
        raise InputError(
            f"{where} {word} {out.index[j]}, column {mapped['time']}: time {t[j]:g} is before "
            f"the previous row's {t[j - 1]:g}; a stream must be in time order."
        )
    readings = out[out["value"].notna()]
    dup = readings.index[readings["time"].duplicated()]
    if len(dup):
        raise InputError(
            f"{where} {word} {dup[0]}, column {mapped['time']}: a second reading at time "
            f"{readings.loc[dup[0], 'time']:g}."
        )
    if after is not None and len(readings) and readings["time"].iloc[0] <= after:
        raise InputError(
            f"{where} {word} {readings.index[0]}, column {mapped['time']}: reading at "
            f"{readings['time'].iloc[0]:g}, not after the twin's last observation ({after:g})."
        )
    return out


def stream_rows(rows: pd.DataFrame, patient_id: str, model, output: str) -> pd.DataFrame:
    """Stream rows as cohort-table rows for ``twin.update``: readings and dose events."""
    states = list(model.states)
    records = []
    for label, r in rows.iterrows():
        for col, state in EVENT_STATES.items():
            if np.isfinite(r[col]) and r[col] > 0:
                if state not in states:
                    raise InputError(
                        f"Stream row {label}, column {col}: model {model.name!r} has no state "
                        f"{state!r} to dose."
                    )
                cmt = states.index(state) + 1
                records.append(dict(time=r["time"], amt=r[col], cmt=cmt, evid=1))
        if np.isfinite(r["value"]):
            records.append(dict(time=r["time"], dv=r["value"], evid=0, output=output))
    frame = pd.DataFrame.from_records(records)
    frame.insert(0, "id", patient_id)
    return frame
