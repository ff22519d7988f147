"""Writing CSV tables that are safe to open in a spreadsheet, atomically.

Patient ids, covariate values, regimen names and other user text end up in the CSV files
twin_uq writes (predictions, trust tables, audit tables). A cell that starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return is run as a *formula* by Excel, LibreOffice
and Google Sheets (CSV injection, e.g. ``=cmd|' /C calc'!A0``). Following the OWASP
recommendation, such text cells are written with a leading single quote (``'=cmd...``),
which spreadsheets show as text; numbers (``-1.5``, ``+3``) and numeric columns are left
as they are. The file is written under a temporary name and renamed into place, so a
failed write never leaves half a table behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from twin_uq._atomic import atomic_write

if TYPE_CHECKING:  # pandas loads on first use: the CLI imports this module at start-up
    import pandas as pd

__all__ = ["FORMULA_PREFIXES", "neutralise", "neutralise_frame", "write_csv"]

#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula.

    Non-text values, and text that is a plain number (``"-1.5"``), are returned unchanged.
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def _neutralise_index(index: pd.Index) -> pd.Index:
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        levels = [_neutralise_index(level) for level in index.levels]
        names = [neutralise(n) for n in index.names]
        return index.set_levels(levels).set_names(names)
    if index.dtype.kind in "biufcmM":
        return index.rename(neutralise(index.name))
    return pd.Index([neutralise(v) for v in index], name=neutralise(index.name))


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells, column names and index labels are neutralised."""
    import numpy as np
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        if s.dtype.kind not in "biufcmM":  # text, objects, mixed
            out[col] = np.array([neutralise(v) for v in s], dtype=object)
    out.columns = _neutralise_index(out.columns)
    out.index = _neutralise_index(out.index)
    return out


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], **to_csv: object) -> Path:
    """Write ``frame`` to ``path`` as CSV, formula-safe and atomically.

    Parameters
    ----------
    frame
        The table.
    path
        Destination; its folder is created.
    **to_csv
        Passed to :meth:`pandas.DataFrame.to_csv` (e.g. ``index=False``).

    Returns
    -------
    Path
        ``path``.
    """
    safe = neutralise_frame(frame)

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            safe.to_csv(fh, **to_csv)  # type: ignore[arg-type]

    return atomic_write(path, write)
