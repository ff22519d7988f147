"""Plain-words sentences for the audit: disparities found, none found, groups too small."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Metric", "disparity_sentence", "small_group_sentence"]


@dataclass(frozen=True)
class Metric:
    """A per-patient metric compared between groups.

    Attributes
    ----------
    name
        Column of the per-patient table.
    label
        Words for tables and sentences.
    stat
        Group statistic: ``"mean"`` or ``"median"`` (over patients).
    binary
        0/1 per patient (shares; Jeffreys pseudo-patients in the bootstrap).
    unit
        ``"proportion"`` (sentences in percentage points) or an output unit.
    key
        Compared in the findings (others are in the tables only).
    """

    name: str
    label: str
    stat: str
    binary: bool
    unit: str
    key: bool = True


def _amount(x: float, unit: str) -> str:
    if unit == "proportion":
        return f"{100 * x:.0f} percentage points"
    return f"{x:.3g} {unit}".rstrip()


def _num(x: float, unit: str) -> str:
    return f"{100 * x:.0f}" if unit == "proportion" else f"{x:.3g}"


_WORDS = {
    # metric name: (text when group > reference, text when group < reference)
    "flagged": ("more often", "less often"),
    "data_flagged": ("more often", "less often"),
    "width": ("wider", "narrower"),
    "coverage": ("higher", "lower"),
    "mae": ("higher", "lower"),
}


#: Sentence of a detected difference, per metric name: ``{a} {word}`` is its size and
#: direction ("12 percentage points more often"), ``{ci}`` its interval, ``{pi}`` the
#: predictive interval audited ("90%"). Values are substituted once (braces in a group name
#: stay as they are).
_DETECTED = {
    "flagged": (
        "Patients in group {group} are flagged 'limited' or worse {a} {word} than group "
        "{reference} {ci}."
    ),
    "data_flagged": (
        "The twins of patients in group {group} are partly or un-informed by their own data "
        "{a} {word} than in group {reference} {ci}, whatever the fit's own verdict."
    ),
    "width": (
        "The {pi} predictive intervals of patients in group {group} are {a} {word} (median "
        "width) than in group {reference} {ci}."
    ),
    "coverage": (
        "Held-out coverage of the {pi} interval is {a} {word} in group {group} than in group "
        "{reference} {ci}."
    ),
    "mae": (
        "Prediction error (mean absolute error) is {a} {word} in group {group} than in group "
        "{reference} {ci}."
    ),
}
_DETECTED_OTHER = "{label} is {a} {word} in group {group} than in group {reference} {ci}."


def disparity_sentence(
    metric: Metric,
    group: str,
    reference: str,
    diff: float,
    lower: float,
    upper: float,
    level: float,
    interval: float,
) -> str:
    """One sentence on ``group`` minus ``reference`` for ``metric``.

    A difference is *detected* when the ``level`` interval excludes zero; the sentence then
    gives its size and direction with the interval in the same direction. Otherwise it
    says no difference was detected and how large a difference the data cannot rule out.
    """
    pct = f"{100 * level:g}%"
    u = metric.unit
    if not np.isfinite(diff) or not (np.isfinite(lower) and np.isfinite(upper)):
        return f"{metric.label.capitalize()} could not be compared between {group} and {reference} (no values)."
    if lower > 0 or upper < 0:
        up = diff > 0
        mag, lo, hi = (diff, lower, upper) if up else (-diff, -upper, -lower)
        word = _WORDS.get(metric.name, ("higher", "lower"))[0 if up else 1]
        ci = f"({pct} interval {_num(lo, u)} to {_num(hi, u)})"
        template = _DETECTED.get(metric.name, _DETECTED_OTHER)
        return template.format(
            label=metric.label.capitalize(),
            group=group,
            reference=reference,
            a=_amount(mag, u),
            word=word,
            ci=ci,
            pi=f"{100 * interval:g}%",
        )
    bound = max(abs(lower), abs(upper))
    return (
        f"No difference detected in {metric.label} between group {group} and group {reference} "
        f"(difference {_num(diff, u)}, {pct} interval {_num(lower, u)} to {_num(upper, u)}"
        f"{' percentage points' if u == 'proportion' else ' ' + u}); the data cannot rule out "
        f"a difference of up to {_amount(bound, u)}."
    ).replace("  ", " ")


def small_group_sentence(group: str, n: int, min_size: int) -> str:
    """The sentence for a group too small to judge (its numbers stay in the tables)."""
    return (
        f"Group {group} has {n} patient{'s' if n != 1 else ''}: too small to judge (fewer than "
        f"{min_size}); its numbers are in the tables but no comparison is drawn."
    )
