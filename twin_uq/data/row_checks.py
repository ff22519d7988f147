"""The checks of each row of a cohort table (dose, observation and code rules).

Each check looks at the parsed standard columns (:class:`StandardFields`) and yields
``(row position, standard column, message)`` in row order, at most one per row;
:func:`check_rows` logs them row by row, within a row in the order of :data:`ROW_CHECKS`,
which is the order a reader scanning the table meets them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from twin_uq.data.cells import is_missing
from twin_uq.data.columns import Columns, StandardFields

__all__ = ["MAX_ADDL", "ROW_CHECKS", "check_rows"]

#: Most additional doses (``ADDL``) one dose row may ask for: each is expanded into a dose,
#: so a mistyped huge value would otherwise exhaust memory. 10,000 is 27 years of daily doses.
MAX_ADDL = 10_000

_Found = Iterator[tuple[int, str, str]]


def _check_ss(f: StandardFields) -> _Found:
    for i in np.flatnonzero(f.ss != 0):
        yield (
            i,
            "ss",
            f"SS={f.ss[i]:g}: steady-state dosing is not supported. Write the doses "
            "explicitly instead: one dose row at the first dose time with ADDL = number "
            "of further doses and II = dosing interval (enough doses, e.g. 5+ half-lives, "
            "before the first observation), and SS=0.",
        )


def _check_blq_flag(f: StandardFields) -> _Found:
    if "blq" in f.present:
        for i in np.flatnonzero(~np.isin(f.blq, (0, 1))):
            yield i, "blq", f"BLQ must be 0 or 1, got {f.blq[i]}."


def _check_lloq(f: StandardFields) -> _Found:
    if "lloq" in f.present:
        for i in np.flatnonzero((f.lloq <= 0) & ~np.isnan(f.lloq)):
            yield i, "lloq", f"LLOQ must be > 0, got {f.lloq[i]:g}."


def _check_addl(f: StandardFields) -> _Found:
    for i in np.flatnonzero((f.addl < 0) | (f.addl > MAX_ADDL)):
        if f.addl[i] < 0:
            yield i, "addl", f"ADDL must be >= 0, got {f.addl[i]}."
        else:
            yield (
                i,
                "addl",
                f"ADDL={f.addl[i]} additional doses is more than {MAX_ADDL} (each is expanded "
                "into its own dose); check the value, or split the regimen into several rows.",
            )


def _check_ii(f: StandardFields) -> _Found:
    for i in np.flatnonzero(f.ii < 0):
        yield i, "ii", f"II must be >= 0, got {f.ii[i]:g}."


def _check_dose_amount(f: StandardFields) -> _Found:
    if "amt" not in f.present:
        for i in np.flatnonzero(f.is_dose):
            yield i, "amt", "dose row (EVID=1) but the table has no AMT column."
        return
    for i in np.flatnonzero(f.is_dose & ~(f.amt > 0)):
        if np.isnan(f.amt[i]):
            yield i, "amt", "dose row (EVID=1) has no amount (AMT is missing)."
        else:
            yield i, "amt", f"dose row (EVID=1) needs AMT > 0, got {f.amt[i]:g}."


def _check_dose_rate(f: StandardFields) -> _Found:
    rate, dur = f.rate, f.dur
    has_dur = "dur" in f.present
    for i in np.flatnonzero(f.is_dose):
        if rate[i] == -1:
            yield (
                i,
                "rate",
                "RATE=-1 (infusion rate estimated by the model) is not supported; give RATE > 0, "
                "or RATE=-2 with DUR > 0.",
            )
        elif rate[i] < 0 and rate[i] != -2:
            yield (
                i,
                "rate",
                f"RATE must be > 0 (infusion), 0 (bolus) or -2 (use DUR), got {rate[i]:g}.",
            )
        elif rate[i] == -2 and not dur[i] > 0:
            yield i, "dur", f"infusion with RATE=-2 needs DUR > 0, got {dur[i]:g}."
        elif rate[i] == 0 and has_dur and dur[i] != 0:
            yield (
                i,
                "dur",
                f"DUR={dur[i]:g} is given but RATE is not -2, so it would be ignored; set RATE=-2 "
                "to infuse over DUR, or leave DUR empty for a bolus.",
            )


def _check_dose_interval(f: StandardFields) -> _Found:
    for i in np.flatnonzero(f.is_dose & (f.addl > 0) & ~(f.ii > 0)):
        yield (
            i,
            "ii",
            f"ADDL={f.addl[i]} additional doses need an interval II > 0, got {f.ii[i]:g}.",
        )


def _check_blq_limit(f: StandardFields) -> _Found:
    for i in np.flatnonzero(f.is_observed & (f.blq == 1) & np.isnan(f.lloq)):
        yield i, "blq", "BLQ=1 but no LLOQ is given: the censoring limit is unknown."


def _check_output_name(f: StandardFields) -> _Found:
    if f.output is not None:
        for i in np.flatnonzero(f.is_observed):
            if is_missing(f.output[i]):
                yield i, "output", "observation has no output name."


ROW_CHECKS: tuple[Callable[[StandardFields], _Found], ...] = (
    _check_ss,
    _check_blq_flag,
    _check_lloq,
    _check_addl,
    _check_ii,
    _check_dose_amount,
    _check_dose_rate,
    _check_dose_interval,
    _check_blq_limit,
    _check_output_name,
)


def check_rows(cols: Columns, f: StandardFields) -> None:
    """Log the problems of every row: row by row, within a row in the order of the checks."""
    found = [
        (int(i), rank, std, msg)
        for rank, check in enumerate(ROW_CHECKS)
        for i, std, msg in check(f)
    ]
    found.sort(key=lambda p: (p[0], p[1]))
    for i, _, std, msg in found:
        cols.add(i, std, msg)
