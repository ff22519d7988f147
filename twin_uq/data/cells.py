"""Reading the cells of a raw cohort table: missing values, text, numbers, covariates.

A raw table comes from a CSV file (every cell text), a Parquet file or a DataFrame (typed
columns, possibly categorical). These functions give one reading of a cell or column
whatever its origin; ``validate.normalise`` decides what is wrong with the result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["as_text", "covariate_values", "is_integer", "is_missing", "numbers", "text_series"]


def is_missing(v: object) -> bool:
    """Whether a cell is missing (NaN, None, NA); non-scalars are values, not missing."""
    try:
        return bool(pd.isna(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):  # lists and other non-scalars are values, not missing
        return False


def as_text(v: object) -> object:
    """A cell as stripped text (integral numbers without ``.0``), or NaN when missing."""
    if is_missing(v):
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


def text_series(s: pd.Series) -> pd.Series:
    """:func:`as_text` of every cell of ``s`` (object dtype, NaN where missing)."""
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


def numbers(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column as float; returns ``(values, not_a_number)`` (missing -> NaN, not bad)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        vals = np.array(s.to_numpy(dtype=float, na_value=np.nan), dtype=float, copy=True)
        return vals, np.zeros(len(s), dtype=bool)
    text = text_series(s)
    num = np.array(
        pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan), copy=True
    )
    bad = text.notna().to_numpy() & np.isnan(num)
    return num, bad


def is_integer(x: np.ndarray) -> np.ndarray:
    """Elementwise: finite and a whole number."""
    return np.isfinite(x) & (np.floor(x) == x)


def covariate_values(s: pd.Series, name: str) -> pd.Series:
    """A covariate column: float when every present value is a number, else categorical."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = [as_text(c) for c in s.cat.categories]
        if all(not is_missing(c) for c in cats) and len(set(cats)) == len(cats):
            text = text_series(s)
            return pd.Series(pd.Categorical(text, categories=cats), index=s.index, name=name)
    vals, bad = numbers(s)
    if not bad.any():
        return pd.Series(vals, index=s.index, name=name)
    text = text_series(s)
    cats = sorted({str(v) for v in text.dropna()})
    return pd.Series(pd.Categorical(text, categories=cats), index=s.index, name=name)
