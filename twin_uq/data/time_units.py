"""Units of TIME: a cohort's declared unit checked against a model's, never assumed.

A cohort read with ``read_cohort(..., time_unit="min")`` carries its unit; matching it to a
model whose card says ``time_unit="h"`` is refused with the conversion to apply (divide
TIME, II and DUR by 60, multiply RATE by 60), because a model in hours fed minutes is wrong
by a factor 60 everywhere without any error.

A cohort without a declared unit is taken to be in the model's unit, and that is never
silent: the load summary says "assumed h" (``cohort.summary(model=...)``), a fit records it
in ``attrs["data_time_unit"]`` and warns (:class:`TimeUnitAssumedWarning`), and the pre-fit
check (:mod:`twin_uq.inference.data_checks`) names a likely mismatch from the data.
"""

from __future__ import annotations

import warnings

from twin_uq.data.problems import CohortError, Problem, TimeUnitAssumedWarning

__all__ = [
    "SECONDS",
    "canonical_time_unit",
    "check_time_unit",
    "describe_time_unit",
    "known_time_unit",
    "warn_assumed_time_unit",
]

#: Length of each canonical unit in seconds.
SECONDS: dict[str, float] = {
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "week": 604800.0,
}

_SPELLINGS: dict[str, str] = {
    "ms": "ms",
    "msec": "ms",
    "millisecond": "ms",
    "milliseconds": "ms",
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "min": "min",
    "mins": "min",
    "minute": "min",
    "minutes": "min",
    "h": "h",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "week",
    "wk": "week",
    "week": "week",
    "weeks": "week",
}


def canonical_time_unit(unit: str) -> str:
    """The canonical spelling of a time unit (``"hours"`` -> ``"h"``).

    Raises
    ------
    CohortError
        For a unit it does not know, listing those it does.
    """
    key = str(unit).strip().lower()
    if key not in _SPELLINGS:
        msg = (
            f"time_unit={unit!r} is not a unit of time twin_uq knows; use one of "
            f"{', '.join(SECONDS)} (or a spelling such as 'hours', 'minutes')."
        )
        raise CohortError(msg, [Problem(None, "TIME", None, msg)])
    return _SPELLINGS[key]


def known_time_unit(unit: str) -> str | None:
    """The canonical spelling of ``unit``, or ``None`` for a unit twin_uq does not know."""
    return _SPELLINGS.get(str(unit).strip().lower())


def describe_time_unit(data_unit: str | None, model_unit: str) -> str:
    """How a cohort's TIME is read for a model: ``"h (declared)"`` or ``"assumed h ..."``.

    The text the load summary, the fit's provenance (``attrs["data_time_unit"]``) and the
    command line show, so that an undeclared unit is never taken silently.
    """
    if data_unit is not None:
        return f"{data_unit} (declared)"
    return f"assumed {model_unit} (the model's unit; not declared)"


def warn_assumed_time_unit(
    data_unit: str | None, model_unit: str, *, model: str, source: str, checked: bool
) -> None:
    """Warn that an undeclared time unit is taken to be the model's (nothing when declared).

    ``checked``: whether the pre-fit check compares the data's time scale with the model's
    (then a likely mismatch is named by it; the warning says so).
    """
    if data_unit is not None:
        return
    how = (
        "the pre-fit check compares the data's time scale with the model's and names a "
        "likely hours/minutes/days mismatch"
        if checked
        else "nothing checks it (prior_check='off')"
    )
    unit = known_time_unit(model_unit) or model_unit
    warnings.warn(
        f"Cohort {source!r} declares no time unit: TIME (and II, DUR, RATE) are taken to be "
        f"in {model_unit!r}, the unit of model {model!r}; {how}. Declare it: "
        f"read_cohort(..., time_unit={unit!r}) or twin-uq fit --time-unit {unit}.",
        TimeUnitAssumedWarning,
        stacklevel=5,
    )


def check_time_unit(data_unit: str | None, model_unit: str, *, model: str, source: str) -> None:
    """Refuse a cohort whose declared time unit is not the model's (with the conversion).

    ``data_unit`` ``None`` (not declared) passes: the cohort is then taken to be in the
    model's unit, which the load summary states and a fit warns about
    (:func:`warn_assumed_time_unit`). A model unit twin_uq does not know is
    compared as written.
    """
    if data_unit is None:
        return
    key = str(model_unit).strip().lower()
    wanted = _SPELLINGS.get(key, key)
    if data_unit == wanted:
        return
    if wanted in SECONDS:
        factor = SECONDS[data_unit] / SECONDS[wanted]
        how = (
            f"multiply TIME, II and DUR by {factor:g} and divide RATE by {factor:g} "
            f"(1 {data_unit} = {factor:g} {wanted})"
        )
    else:
        how = f"convert TIME, II, DUR and RATE to {model_unit!r}"
    msg = (
        f"the cohort's time unit is {data_unit!r} but model {model!r} works in "
        f"{model_unit!r}: {how}, then read it with time_unit={wanted!r}."
    )
    raise CohortError(f"Cohort {source!r}: {msg}", [Problem(None, "TIME", None, msg)], source)
