"""Plain-language numbers and sentences for clinician-facing reports.

Numbers are rounded to the fewest significant figures that keep an interval's ends
distinct (two by default): a clinician reads "between 1.1 and 1.6 mg/L", not
"1.0873 to 1.6412". No sentence states a prediction without its interval.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "format_estimate",
    "format_interval",
    "format_number",
    "format_time",
    "interval_sentence",
    "percent",
    "ratio_sentence",
]


def format_number(x: float, sig: int = 2) -> str:
    """``x`` to ``sig`` significant figures, without exponent for everyday magnitudes."""
    x = float(x)
    if not math.isfinite(x):
        return "not available"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag < -4 or mag >= 6:
        return f"{x:.{sig - 1}e}"
    digits = sig - 1 - mag
    return f"{round(x, digits):,.{max(digits, 0)}f}"


def _sig_needed(lower: float, upper: float, sig: int = 2) -> int:
    for s in range(sig, 6):
        if format_number(lower, s) != format_number(upper, s):
            return s
    return 5


def format_time(t: float) -> str:
    """A time without trailing zeros: ``14.0`` → ``"14"``, ``0.25`` → ``"0.25"``."""
    return f"{round(float(t), 3):g}"


def format_interval(lower: float, upper: float, sig: int = 2) -> tuple[str, str]:
    """Both ends with the fewest significant figures (>= ``sig``, <= 5) that tell them apart."""
    s = _sig_needed(lower, upper, sig)
    return format_number(lower, s), format_number(upper, s)


def format_estimate(median: float, lower: float, upper: float, sig: int = 2) -> tuple[str, str]:
    """``("1.3", "1.1 to 1.6")``: a median and its interval at the interval's precision."""
    s = _sig_needed(lower, upper, sig)
    return format_number(median, s), f"{format_number(lower, s)} to {format_number(upper, s)}"


def percent(level: float) -> str:
    """``0.9`` → ``"90%"`` (one decimal only when needed, e.g. ``"97.5%"``)."""
    p = 100 * float(level)
    return f"{p:.0f}%" if abs(p - round(p)) < 1e-9 else f"{p:.1f}%"


def interval_sentence(
    output: str,
    time: float,
    time_unit: str,
    lower: float,
    upper: float,
    unit: str,
    interval: float,
    *,
    prefix: str = "",
) -> str:
    """E.g. "With 90% probability, concentration at 14 h will be between 1.1 and 1.6 mg/L."."""
    lo, hi = format_interval(lower, upper)
    return (
        f"With {percent(interval)} probability, {prefix}{output} at {format_time(time)} "
        f"{time_unit} will be between {lo} and {hi} {unit}."
    ).replace(" .", ".")


def _change(r: float) -> tuple[str, str]:
    """Size and direction of a ratio ``r`` in words: ("20%", "higher")."""
    if r >= 2.0:
        return f"{format_number(r, 2)} times", "as high as"
    if r >= 1.0:
        return f"{100 * (r - 1):.0f}%", "higher"
    return f"{100 * (1 - r):.0f}%", "lower"


def ratio_sentence(name: str, draws: np.ndarray, interval: float, reference: str) -> str:
    """How a patient's parameter compares with a reference, in plain words, with its interval.

    Parameters
    ----------
    name
        What the parameter is, e.g. ``"Clearance"``.
    draws
        Per posterior draw, the patient's value divided by the reference's (paired draws).
    interval
        Central interval, e.g. 0.9.
    reference
        E.g. ``"a typical patient with the same covariates"``.
    """
    r = np.asarray(draws, float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return f"{name}: no comparison available (no valid posterior draws)."
    a = (1 - interval) / 2
    med, lo, hi = np.median(r), np.quantile(r, a), np.quantile(r, 1 - a)
    p = percent(interval)
    size, direction = _change(med)
    if lo > 1.0 or hi < 1.0:
        s_lo, d_lo = _change(lo)
        s_hi, d_hi = _change(hi)
        if direction == "lower":  # report the smaller decrease first
            s_lo, s_hi = s_hi, s_lo
            d_lo, d_hi = d_hi, d_lo
        lo_text = s_lo if d_lo == d_hi else f"{s_lo} {d_lo}"
        head = f"{name} is about {size} {direction} than {reference}"
        if direction == "as high as":
            head = f"{name} is about {size} as high as for {reference}"
        return f"{head} ({p} interval {lo_text} to {s_hi} {d_hi})."
    s_lo, d_lo = _change(lo)
    s_hi, d_hi = _change(hi)
    if abs(med - 1.0) < 0.05:
        head = f"{name} is close to that of {reference}"
    elif direction == "as high as":
        head = f"{name} is about {size} as high as for {reference}"
    else:
        head = f"{name} is about {size} {direction} than {reference}"
    return (
        f"{head}, but the data cannot rule out no difference ({p} interval from "
        f"{s_lo} {d_lo} to {s_hi} {d_hi})."
    )
