"""Schedule extraction: doses and measured signals of one patient from the normalised table.

Dose rows (``EVID=1``) become :class:`Bolus` / :class:`Infusion` records with ``ADDL``
expanded; a time-varying covariate column becomes a :class:`Signal`; both become the padded
NumPy fields of a :class:`~twin_uq.simulate.schedule.Schedule`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from twin_uq.data.validate import CohortError, Problem
from twin_uq.simulate.schedule import Bolus, Infusion, Signal, schedule_fields

__all__ = ["doses_by_patient", "patient_doses", "patient_schedule_fields", "patient_signal"]

Doses = tuple[tuple[Bolus, ...], tuple[Infusion, ...]]


def patient_doses(rows: pd.DataFrame) -> Doses:
    """Boluses and infusions of the dose rows ``rows``, each in time order, ``ADDL`` expanded.

    ``cmt`` is the CMT column (1-based) or 0 without one; an infusion is ``RATE > 0`` (lasting
    ``AMT/RATE``) or ``RATE = -2`` (lasting ``DUR``), anything else a bolus.
    """
    bol: list[Bolus] = []
    inf: list[Infusion] = []
    has = rows.columns
    for _, r in rows.iterrows():
        cmt = int(r["cmt"]) if "cmt" in has else 0
        rate = float(r["rate"]) if "rate" in has else 0.0
        addl = int(r["addl"]) if "addl" in has else 0
        ii = float(r["ii"]) if "ii" in has else 0.0
        amt = float(r["amt"])
        for k in range(addl + 1):
            t = float(r["time"]) + k * ii
            if rate > 0:
                inf.append(Infusion(t, rate, amt / rate, cmt))
            elif rate == -2:
                inf.append(Infusion.from_amount(t, amt, float(r["dur"]), cmt))
            else:
                bol.append(Bolus(t, amt, cmt))
    bol.sort(key=lambda b: b.time)
    inf.sort(key=lambda i: i.start)
    return tuple(bol), tuple(inf)


def doses_by_patient(
    t: pd.DataFrame, ids: Sequence[str]
) -> tuple[tuple[tuple[Bolus, ...], ...], tuple[tuple[Infusion, ...], ...]]:
    """Per patient of ``ids`` (in that order), its boluses and its infusions."""
    dose_rows = t[t["evid"].to_numpy() == 1]
    per_patient = {p: patient_doses(g) for p, g in dose_rows.groupby("id", sort=False)}
    empty: Doses = ((), ())
    boluses = tuple(per_patient.get(p, empty)[0] for p in ids)
    infusions = tuple(per_patient.get(p, empty)[1] for p in ids)
    return boluses, infusions


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
        signal_names=[s.name for s in signals],
        n_bolus=n_bolus,
        n_infusion=n_infusion,
        n_knots=n_knots,
    )
