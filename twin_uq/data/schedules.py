"""Schedule extraction: doses and measured signals of one patient from the normalised table.

Dose rows (``EVID=1`` and ``4``) become :class:`Bolus` / :class:`Infusion` /
:class:`ModelledInfusion` records with ``ADDL`` expanded, reset rows (``EVID=3`` and ``4``)
:class:`Reset` records; a time-varying covariate column becomes a :class:`Signal`; both become the padded
NumPy fields of a :class:`~twin_uq.simulate.schedule.Schedule`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from twin_uq.data.validate import CohortError, Problem
from twin_uq.simulate.schedule import (
    Bolus,
    Infusion,
    ModelledInfusion,
    Reset,
    Signal,
    schedule_fields,
)

__all__ = ["doses_by_patient", "patient_doses", "patient_schedule_fields", "patient_signal"]

Doses = tuple[
    tuple[Bolus, ...], tuple[Infusion, ...], tuple[ModelledInfusion, ...], tuple[Reset, ...]
]


def _dose(
    t: float, amt: float, rate: float, dur: float, cmt: int, ss: int, ii: float
) -> Bolus | Infusion | ModelledInfusion:
    """The record of one dose (NONMEM meaning of RATE; ``dur`` 0 means no DUR given)."""
    if ss == 1 and rate > 0 and ii == 0:  # NONMEM's constant infusion at steady state
        return Infusion(t, rate, math.inf, cmt, ss=1, ii=0.0)
    if rate > 0:
        return Infusion(t, rate, amt / rate, cmt, ss=ss, ii=ii)
    if rate == -2 and dur > 0:  # the project's DUR column: the duration is data
        return Infusion.from_amount(t, amt, dur, cmt, ss=ss, ii=ii)
    if rate in (-1, -2):
        by = "rate" if rate == -1 else "duration"
        return ModelledInfusion(t, amt, cmt, by, ss=ss, ii=ii)
    return Bolus(t, amt, cmt, ss=ss, ii=ii)


def patient_doses(rows: pd.DataFrame) -> Doses:
    """The dose and reset records of the rows ``rows`` (any rows; dose and reset rows used).

    Each kind in time order (stable). ``cmt`` is the CMT column (1-based) or 0 without
    one. ``EVID=3`` is a :class:`Reset`; ``EVID=4`` a reset and the row's dose. A dose is an
    infusion when ``RATE > 0`` (lasting ``AMT/RATE``) or ``RATE = -2`` with ``DUR`` (lasting
    ``DUR``), a :class:`ModelledInfusion` for ``RATE = -1`` and ``RATE = -2`` without
    ``DUR``, else a bolus. ``SS`` and ``II`` go on the row's dose; ``ADDL`` adds further
    doses every ``II`` that are not steady-state doses (NONMEM).
    """
    bol: list[Bolus] = []
    inf: list[Infusion] = []
    mod: list[ModelledInfusion] = []
    resets: list[Reset] = []
    has = rows.columns
    for _, r in rows.iterrows():
        evid = int(r["evid"])
        if evid in (3, 4):
            resets.append(Reset(float(r["time"])))
        if evid not in (1, 4):
            continue
        cmt = int(r["cmt"]) if "cmt" in has else 0
        rate = float(r["rate"]) if "rate" in has else 0.0
        dur = float(r["dur"]) if "dur" in has else 0.0
        addl = int(r["addl"]) if "addl" in has else 0
        ii = float(r["ii"]) if "ii" in has else 0.0
        ss = int(r["ss"]) if "ss" in has else 0
        amt = float(r["amt"]) if not np.isnan(r["amt"]) else 0.0
        for k in range(addl + 1):
            ss_k = ss if k == 0 else 0
            rec = _dose(float(r["time"]) + k * ii, amt, rate, dur, cmt, ss_k, ii if ss_k else 0.0)
            {Bolus: bol, Infusion: inf, ModelledInfusion: mod}[type(rec)].append(rec)
    bol.sort(key=lambda b: b.time)
    inf.sort(key=lambda i: i.start)
    mod.sort(key=lambda m: m.start)
    resets.sort(key=lambda x: x.time)
    return tuple(bol), tuple(inf), tuple(mod), tuple(resets)


def doses_by_patient(t: pd.DataFrame, ids: Sequence[str]) -> tuple[tuple, tuple, tuple, tuple]:
    """Per patient of ``ids`` (in that order): boluses, infusions, modelled infusions, resets."""
    rows = t[np.isin(t["evid"].to_numpy(), (1, 3, 4))]
    per_patient = {p: patient_doses(g) for p, g in rows.groupby("id", sort=False)}
    empty: Doses = ((), (), (), ())
    return tuple(tuple(per_patient.get(p, empty)[k] for p in ids) for k in range(4))  # type: ignore[return-value]


def patient_signal(
    table: pd.DataFrame, pid: str, name: str, col: str, *, source: str, row_word: str
) -> Signal:
    """The measured signal ``name`` of patient ``pid``, built from the table's column ``col``.

    Knots are the times where the column has a value; repeated identical values at one time
    count once.

    Raises
    ------
    CohortError
        For a non-numeric column, a patient without any value, or two different values at
        one time (naming the rows).
    """
    if isinstance(table[col].dtype, pd.CategoricalDtype):
        raise CohortError(f"Signal {name!r} (column {col!r}) is not numeric.", [], source)
    rows = table[(table["id"] == pid) & table[col].notna()]
    pairs = rows[["time", col]].drop_duplicates()
    if pairs.empty:
        raise CohortError(
            f"Patient {pid!r} has no value of signal {name!r} (column {col!r}).",
            [Problem(None, col, pid, f"no value of signal {name!r}")],
            source,
        )
    times = pairs["time"].to_numpy(dtype=float)
    dup = pairs["time"].duplicated(keep=False).to_numpy()
    if dup.any():
        labels = list(pairs.index[dup])
        raise CohortError(
            f"Patient {pid!r}: signal {name!r} (column {col!r}) has different values at "
            f"the same time {times[dup][0]:g} ({row_word}s {labels}).",
            [Problem(lab, col, pid, "two values at one time") for lab in labels],
            source,
        )
    return Signal(name, tuple(times), tuple(pairs[col].to_numpy(dtype=float)))


def patient_schedule_fields(
    boluses: Sequence[Bolus],
    infusions: Sequence[Infusion],
    signals: Sequence[Signal],
    *,
    modelled: Sequence[ModelledInfusion] = (),
    resets: Sequence[Reset] = (),
    n_bolus: int | None = None,
    n_infusion: int | None = None,
    n_knots: int | None = None,
) -> dict[str, np.ndarray]:
    """Padded schedule fields (NumPy, by field name) of one patient's doses and signals.

    When several signals have different knot times, every signal is evaluated (linear
    interpolation, constant outside its knots) on the union of the knot times, which leaves
    each piecewise-linear signal unchanged. The signal axis follows the order of ``signals``.
    """
    sigs = list(signals)
    if len(sigs) > 1:
        knots = np.unique(np.concatenate([np.asarray(s.times) for s in sigs]))
        sigs = [
            Signal(s.name, tuple(knots), tuple(np.interp(knots, s.times, s.values))) for s in sigs
        ]
    return schedule_fields(
        boluses,
        infusions,
        sigs,
        modelled=modelled,
        resets=resets,
        signal_names=[s.name for s in signals],
        n_bolus=n_bolus,
        n_infusion=n_infusion,
        n_knots=n_knots,
    )
