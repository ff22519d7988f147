"""Occasions (the ``OCC`` column) as per-patient segments, for inter-occasion variability.

An occasion is a stretch of a patient's record (a dosing period, a hospital stay) on which
some parameters take their own value (``log CL_ik = log CL_i + kappa_ik``). Read from the
rows in time order (ties in file order), an occasion starts at the time of its first
record, and the previous one ends there; the first occasion also covers the time before
its first record (from 0). Where records at one instant carry different occasions, the
last of them (file order) holds from that instant on. The result has the layout of
:class:`~twin_uq.data.covariate_path.CovariateSegments`, so the solvers split there with
the segment machinery of time-varying covariates (:mod:`twin_uq.simulate.segments`):

* ``time`` ``(P, S)``: start of each segment (model time unit); 0 first, ``+inf`` padding;
* ``index`` ``(P, S)``: which of the patient's occasions holds on the segment (``0 ..
  n_occasions[p] - 1``, numbered by the sorted distinct ``OCC`` values of the patient, so a
  patient returning to an earlier ``OCC`` value returns to its random effect); padding
  repeats the last real segment's;
* ``labels``: per patient, the ``OCC`` value of each occasion index.

As for any segment start, a quantity at exactly the start time (an observation recorded
then, whatever its own ``OCC``) is predicted with the new occasion's parameters; the state
is continuous there, so only an output that reads a parameter with occasion variability
(``conc = A / V`` with IOV on ``V``) can differ at that instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin_uq.data.segments import Segments
from twin_uq.errors import InputError

__all__ = ["OccasionSegments", "occasion_segments"]


@dataclass(frozen=True)
class OccasionSegments(Segments):
    """Per-patient occasion segments (see the module docstring).

    ``time`` holds the segment starts (:class:`~twin_uq.data.segments.Segments`).

    Attributes
    ----------
    index
        ``(P, S)`` int64 occasion index of each segment (padding repeats the last).
    labels
        ``P`` arrays: the ``OCC`` value of each of the patient's occasion indices.
    """

    index: np.ndarray
    labels: tuple[np.ndarray, ...]

    @property
    def n_occasions(self) -> int:
        """The most occasions of one patient ``M`` (the random effects' second axis)."""
        return max([len(lab) for lab in self.labels] + [1])

    def frame(self, p: int) -> pd.DataFrame:
        """Patient ``p``'s occasions: segment start (index ``time``), ``occ`` and ``index``."""
        n = int(self.n_live[p])
        idx = self.index[p, :n]
        return pd.DataFrame(
            {"occ": self.labels[p][idx], "index": idx},
            index=pd.Index(self.time[p, :n], name="time"),
        )


def occasion_segments(table: pd.DataFrame, ids: Sequence[str]) -> OccasionSegments:
    """Cut every patient's time at the changes of its ``OCC`` (see the module docstring).

    Parameters
    ----------
    table
        The cohort's normalised long table (``id``, ``time``, ``occ``).
    ids
        Patient ids, in the order of the output's first axis.

    Raises
    ------
    InputError
        Without an ``occ`` column (inter-occasion variability needs the ``OCC`` column).
    """
    if "occ" not in table.columns:
        raise InputError(
            "Inter-occasion variability (iov=...) needs an OCC column in the data: the "
            "integer occasion of every row. Add it, or fit without iov."
        )
    sub = pd.DataFrame(
        {
            "id": table["id"].astype(str).to_numpy(),
            "time": table["time"].to_numpy(dtype=float),
            "occ": table["occ"].to_numpy(dtype=np.int64),
        }
    ).sort_values("time", kind="stable")
    groups = {str(pid): g for pid, g in sub.groupby("id", sort=False)}
    per_patient: list[tuple[list[float], list[int], np.ndarray]] = []
    for pid in (str(i) for i in ids):
        g = groups.get(pid)
        if g is None:  # a patient without rows: one occasion
            per_patient.append(([0.0], [0], np.zeros(1, np.int64)))
            continue
        occ, times = g["occ"].to_numpy(), g["time"].to_numpy()
        labels = np.unique(occ)
        code = np.searchsorted(labels, occ)
        starts, index = [0.0], [int(code[0])]
        for t, c in zip(times[1:], code[1:], strict=True):
            if c == index[-1]:
                continue
            if t == starts[-1]:
                index[-1] = int(c)  # several records at one instant: the last one's holds
                continue
            starts.append(float(t))
            index.append(int(c))
        per_patient.append((starts, index, labels))
    S = max(len(s) for s, _, _ in per_patient) if per_patient else 1
    P = len(per_patient)
    time = np.full((P, S), np.inf)
    index = np.zeros((P, S), dtype=np.int64)
    for p, (starts, idx, _) in enumerate(per_patient):
        time[p, : len(starts)] = starts
        index[p, : len(idx)] = idx
        index[p, len(idx) :] = idx[-1]
    return OccasionSegments(time, index, tuple(lab for _, _, lab in per_patient))
