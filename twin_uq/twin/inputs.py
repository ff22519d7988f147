"""Checks and conversions of what a user hands a twin: intervals, times, dosing regimens."""

from __future__ import annotations

import dataclasses

import numpy as np

from twin_uq.errors import InputError
from twin_uq.model.base import Model
from twin_uq.simulate.schedule import Bolus, Infusion, Schedule

__all__ = ["check_doses", "check_interval", "check_times", "scaled_schedule"]


def check_interval(interval: float) -> float:
    interval = float(interval)
    if not 0.0 < interval < 1.0:
        raise InputError(f"interval must lie strictly between 0 and 1, got {interval}.")
    return interval


def check_times(times: object) -> np.ndarray:
    t = np.asarray(times, dtype=float).reshape(-1) if np.ndim(times) <= 1 else None
    if t is None or t.size == 0:
        raise InputError(f"times must be a non-empty 1-D sequence of times >= 0; got {times!r}.")
    if not np.all(np.isfinite(t)):
        raise InputError("times must be finite (found NaN or inf).")
    if np.any(t < 0):
        raise InputError(
            f"times must be >= 0 (simulation starts at t = 0); got {t[t < 0][:3].tolist()}."
        )
    return t


def check_doses(schedule: Schedule, model: Model, label: str) -> None:
    """Refuse doses a patient cannot receive: amounts, rates or times <= 0 / non-finite.

    Names the regimen (``label``), the dose and the offending value; a negative dose would
    otherwise be simulated as a removal of drug and reported as a prediction.
    """
    n_states = len(model.states)
    for k, b in enumerate(schedule.boluses(), 1):
        where = f"{label}, bolus {k} (time {b.time:g})"
        if not (np.isfinite(b.amount) and b.amount > 0):
            raise InputError(f"{where}: dose amount must be finite and > 0, got {b.amount:g}.")
        if not (np.isfinite(b.time) and b.time >= 0):
            raise InputError(f"{where}: dose time must be finite and >= 0, got {b.time:g}.")
        if not 0 <= b.cmt <= n_states:
            raise InputError(f"{where}: compartment {b.cmt} outside 1..{n_states} (0 = default).")
    for k, i in enumerate(schedule.infusions(), 1):
        where = f"{label}, infusion {k} (start {i.start:g})"
        if not (np.isfinite(i.rate) and i.rate > 0):
            raise InputError(f"{where}: infusion rate must be finite and > 0, got {i.rate:g}.")
        if not (np.isfinite(i.duration) and i.duration > 0):
            raise InputError(f"{where}: duration must be finite and > 0, got {i.duration:g}.")
        if not (np.isfinite(i.start) and i.start >= 0):
            raise InputError(f"{where}: start time must be finite and >= 0, got {i.start:g}.")
        if not 0 <= i.cmt <= n_states:
            raise InputError(f"{where}: compartment {i.cmt} outside 1..{n_states} (0 = default).")


def scaled_schedule(schedule: Schedule, amount: float) -> Schedule:
    """The schedule with every dose's amount replaced by ``amount`` (signals kept)."""
    boluses = [Bolus(b.time, amount, b.cmt) for b in schedule.boluses()]
    infusions = [
        Infusion.from_amount(i.start, amount, i.duration, i.cmt) for i in schedule.infusions()
    ]
    if not boluses and not infusions:
        raise InputError("The dosing template has no doses to scale; pass candidates as schedules.")
    new = Schedule.build(
        boluses, infusions, n_bolus=schedule.n_bolus, n_infusion=schedule.n_infusion
    )
    return dataclasses.replace(
        new,
        signal_time=schedule.signal_time,
        signal_value=schedule.signal_value,
        signal_mask=schedule.signal_mask,
    )
