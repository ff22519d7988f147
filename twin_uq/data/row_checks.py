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


def _constant_infusion(f: StandardFields) -> np.ndarray:
    """Rows of a NONMEM constant steady-state infusion: ``SS=1, RATE>0, II=0``."""
    return (f.ss == 1) & (f.rate > 0) & (f.ii == 0)


def _check_ss(f: StandardFields) -> _Found:
    if "ss" not in f.present:
        return
    for i in np.flatnonzero(f.ss != 0):
        if f.ss[i] not in (1, 2):
            yield (
                i,
                "ss",
                f"SS must be 0, 1 (reset to steady state) or 2 (add steady state), got {f.ss[i]}.",
            )
        elif not f.is_dose[i]:
            yield (
                i,
                "ss",
                f"SS={f.ss[i]} on a row that is not a dose (EVID={f.evid[i]}); steady state "
                "belongs on the dose row (EVID=1 or 4).",
            )
        elif f.ii[i] > 0 or _constant_infusion(f)[i]:
            continue
        elif f.ss[i] == 2:
            yield (
                i,
                "ii",
                f"SS=2 (add steady state) needs the dosing interval II > 0, got {f.ii[i]:g}.",
            )
        else:
            yield (
                i,
                "ii",
                f"SS=1 needs the dosing interval II > 0, got {f.ii[i]:g} (a constant "
                "steady-state infusion is SS=1, AMT=0, RATE > 0, II=0).",
            )


def _check_reset(f: StandardFields) -> _Found:
    for i in np.flatnonzero(f.evid == 3):
        if f.amt[i] > 0:
            yield (
                i,
                "amt",
                f"EVID=3 resets the patient without a dose, so AMT={f.amt[i]:g} would be "
                "ignored; use EVID=4 to reset and dose, or leave AMT empty.",
            )
        elif f.ss[i] != 0 or f.addl[i] != 0 or f.rate[i] != 0:
            yield (
                i,
                "evid",
                "EVID=3 resets the patient without a dose; SS, ADDL and RATE must be empty "
                "on it (use EVID=4 to reset and dose).",
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
            yield i, "amt", f"dose row (EVID={f.evid[i]}) but the table has no AMT column."
        return
    constant = _constant_infusion(f)
    for i in np.flatnonzero(f.is_dose & ~(f.amt > 0)):
        if constant[i] and (np.isnan(f.amt[i]) or f.amt[i] == 0):
            continue  # NONMEM's constant infusion: the amount is RATE per unit time, no AMT
        if np.isnan(f.amt[i]):
            yield i, "amt", f"dose row (EVID={f.evid[i]}) has no amount (AMT is missing)."
        else:
            yield i, "amt", f"dose row (EVID={f.evid[i]}) needs AMT > 0, got {f.amt[i]:g}."
    for i in np.flatnonzero(f.is_dose & constant & (f.amt > 0)):
        yield (
            i,
            "amt",
            f"a constant steady-state infusion (SS=1, RATE > 0, II=0) has AMT=0, got "
            f"{f.amt[i]:g}; give II > 0 for a steady state of repeated infusions.",
        )


def _check_dose_rate(f: StandardFields) -> _Found:
    rate, dur = f.rate, f.dur
    for i in np.flatnonzero(f.is_dose):
        if rate[i] == -1:
            if f.dur_given[i]:
                yield (
                    i,
                    "dur",
                    f"DUR={dur[i]:g} is given but RATE=-1 takes the rate from the model; "
                    "leave DUR empty, or use RATE=-2 to infuse over DUR.",
                )
        elif rate[i] < 0 and rate[i] != -2:
            yield (
                i,
                "rate",
                "RATE must be > 0 (infusion), 0 (bolus), -1 (rate from the model) or -2 "
                f"(duration from the model or DUR), got {rate[i]:g}.",
            )
        elif rate[i] == -2 and f.dur_given[i] and not dur[i] > 0:
            yield i, "dur", f"infusion with RATE=-2 needs DUR > 0 (or DUR empty), got {dur[i]:g}."
        elif rate[i] >= 0 and f.dur_given[i] and dur[i] != 0:
            yield (
                i,
                "dur",
                f"DUR={dur[i]:g} is given but RATE is not -2, so it would be ignored; set RATE=-2 "
                "to infuse over DUR, or leave DUR empty.",
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


def _check_cens(f: StandardFields) -> _Found:
    """CENS on observations only, with DV as the limit and LIMIT on the other side."""
    if "limit" in f.present and "cens" not in f.present:
        rows = np.flatnonzero(~np.isnan(f.limit))
        if rows.size:
            yield (
                rows[0],
                "limit",
                "LIMIT is given but the table has no CENS column: LIMIT is the other bound "
                "of a censored observation (CENS=1 or -1). Add CENS, or drop LIMIT.",
            )
        return
    for i in np.flatnonzero(f.cens != 0):
        c = f.cens[i]
        if f.evid[i] != 0:
            yield i, "cens", f"CENS={c} on a row that is not an observation (EVID={f.evid[i]})."
        elif f.mdv[i] == 1:
            continue  # not data: a prediction time
        elif np.isnan(f.dv[i]):
            yield (
                i,
                "dv",
                f"CENS={c} needs DV = the quantification limit (NONMEM/Monolix convention), "
                "but DV is missing.",
            )
        elif c == 1 and f.limit[i] >= f.dv[i]:
            yield (
                i,
                "limit",
                f"CENS=1 is the interval LIMIT < value < DV, but LIMIT={f.limit[i]:g} is not "
                f"below DV={f.dv[i]:g}.",
            )
        elif c == -1 and f.limit[i] <= f.dv[i]:
            yield (
                i,
                "limit",
                f"CENS=-1 is the interval DV < value < LIMIT, but LIMIT={f.limit[i]:g} is not "
                f"above DV={f.dv[i]:g}.",
            )


def _check_cens_against_blq(f: StandardFields) -> _Found:
    """Where CENS and the project's BLQ/LLOQ are both given, they must say the same."""
    if "cens" not in f.present or not ({"blq", "lloq"} & f.present):
        return
    has_blq = "blq" in f.present
    with np.errstate(invalid="ignore"):
        below = np.isfinite(f.lloq) & ((f.dv < f.lloq) | np.isnan(f.dv))
    flagged = (f.blq == 1) | below
    for i in np.flatnonzero(f.is_observed):
        c = f.cens[i]
        if c == 0 and flagged[i]:
            why = (
                "BLQ=1"
                if f.blq[i] == 1
                else f"DV is below (or has no value under) LLOQ={f.lloq[i]:g}"
            )
            yield i, "cens", f"CENS=0 but {why}; the censoring columns disagree: correct one."
        elif c == 1 and has_blq and f.blq[i] == 0:
            yield i, "cens", "CENS=1 but BLQ=0; the censoring columns disagree: correct one."
        elif c == 1 and np.isfinite(f.lloq[i]) and f.dv[i] != f.lloq[i]:
            yield (
                i,
                "lloq",
                f"CENS=1 says DV={f.dv[i]:g} is the limit, but LLOQ={f.lloq[i]:g}; the "
                "censoring columns disagree: correct one.",
            )
        elif c == -1 and flagged[i]:
            yield (
                i,
                "cens",
                "CENS=-1 (above the limit) but BLQ/LLOQ say below the limit; the censoring "
                "columns disagree: correct one.",
            )


def _check_output_name(f: StandardFields) -> _Found:
    if f.output is not None:
        for i in np.flatnonzero(f.is_observed):
            named = f.dvid_names is not None and not is_missing(f.dvid_names[i])
            if is_missing(f.output[i]) and not named:
                yield i, "output", "observation has no output name."


def _check_dvid(f: StandardFields) -> _Found:
    """Every observation names its output; a DVID of names agrees with ``output``."""
    if f.dvid is not None:
        for i in np.flatnonzero(f.is_observed & (f.dvid == 0)):
            yield i, "dvid", "observation has no DVID (1-based output index or output name)."
    if f.dvid_names is not None:
        for i in np.flatnonzero(f.is_observed):
            name = f.dvid_names[i]
            if is_missing(name):
                if f.output is None:
                    yield i, "dvid", "observation has no DVID (output name)."
            elif f.output is not None and not is_missing(f.output[i]) and f.output[i] != name:
                yield (
                    i,
                    "dvid",
                    f"DVID={name!r} but output={f.output[i]!r}; the two name the observed "
                    "output and disagree: correct one.",
                )


ROW_CHECKS: tuple[Callable[[StandardFields], _Found], ...] = (
    _check_ss,
    _check_reset,
    _check_blq_flag,
    _check_lloq,
    _check_addl,
    _check_ii,
    _check_dose_amount,
    _check_dose_rate,
    _check_dose_interval,
    _check_blq_limit,
    _check_cens,
    _check_cens_against_blq,
    _check_output_name,
    _check_dvid,
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
