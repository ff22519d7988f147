"""The dose and input records a user writes: boluses, infusions, modelled infusions, resets.

These are the user-facing, validated records; :class:`~twin_uq.simulate.schedule.Schedule`
turns them into padded arrays. Their meaning is NONMEM's (``docs``: the dose semantics
table): a record's amount enters at ``time + ALAG`` scaled by ``F`` when the model declares
a lag or a bioavailability for its compartment (:class:`twin_uq.DoseParameters`).

Compartments follow NONMEM numbering: ``cmt`` is 1-based (``cmt = k`` targets the k-th
state of the model); ``cmt = 0`` means "the model's default dose compartment".

Steady state (NONMEM ``SS``, ``II``): ``ss=1`` resets every state and running infusion at
the record's time and sets the periodic steady state of this same dose given every ``ii``
before it, then gives the dose; ``ss=2`` adds that steady state without a reset. ``ii`` is
only meaningful with ``ss != 0`` (``ADDL`` is expanded into separate records before).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from twin_uq.errors import InputError

__all__ = ["Bolus", "Infusion", "ModelledInfusion", "Reset", "Signal"]


def _check_finite(kind: str, **values: float) -> None:
    for name, v in values.items():
        try:
            ok = math.isfinite(float(v))
        except (TypeError, ValueError):
            raise InputError(f"{kind} {name} must be a number, got {v!r}.") from None
        if not ok:
            raise InputError(f"{kind} {name} must be finite, got {v}.")


def _check_cmt(kind: str, cmt: int) -> None:
    if isinstance(cmt, bool) or int(cmt) != cmt or cmt < 0:
        raise InputError(
            f"{kind} compartment must be a whole number >= 1 (or 0 for the model's default), got {cmt!r}."
        )


def _check_steady(
    kind: str, at: str, ss: int, ii: float, *, constant_infusion: bool = False
) -> None:
    """Refuse ``ss`` outside {0, 1, 2}, ``ss != 0`` without ``ii > 0``, ``ii`` without ``ss``.

    A constant infusion (``constant_infusion``) is the one steady state with ``ii = 0``.
    """
    if isinstance(ss, bool) or ss not in (0, 1, 2):
        raise InputError(
            f"{kind} {at}: ss must be 0 (no steady state), 1 (reset to steady state, then dose) "
            f"or 2 (add the steady state), got {ss!r}."
        )
    _check_finite(f"{kind} {at}:", ii=ii)
    if ii < 0:
        raise InputError(f"{kind} {at}: ii (interdose interval) must be >= 0, got {ii}.")
    if ss == 0 and ii != 0:
        raise InputError(
            f"{kind} {at}: ii={ii} is given without ss; ii is the interdose interval of a "
            "steady-state dose (ss=1 or 2). Repeated doses (ADDL) are separate records."
        )
    if ss != 0 and ii == 0 and not constant_infusion:
        raise InputError(
            f"{kind} {at}: a steady-state dose (ss={ss}) needs its interdose interval ii > 0 "
            "(only a constant infusion, duration=math.inf, has ii=0)."
        )


@dataclass(frozen=True)
class Bolus:
    """An instantaneous dose.

    Parameters
    ----------
    time
        Dose time, in the model's time unit (a declared lag is added to it).
    amount
        Amount (model's amount unit, e.g. mg, g of carbohydrate, U), >= 0; a declared
        bioavailability scales it.
    cmt
        1-based target compartment; 0 means the model's default dose compartment.
    ss
        Steady state: 0 none, 1 reset to the steady state of this dose then dose, 2 add
        that steady state (NONMEM ``SS``).
    ii
        Interdose interval of the steady state (model time unit), > 0 when ``ss != 0``.
    """

    time: float
    amount: float
    cmt: int = 0
    ss: int = 0
    ii: float = 0.0

    def __post_init__(self) -> None:
        _check_finite("Bolus", time=self.time, amount=self.amount)
        if self.amount < 0:
            raise InputError(f"Bolus amount must be >= 0, got {self.amount} (at time {self.time}).")
        _check_cmt("Bolus", self.cmt)
        _check_steady("Bolus", f"at time {self.time}", self.ss, self.ii)


@dataclass(frozen=True)
class Infusion:
    """A zero-order infusion from ``start`` to ``start + duration`` at constant ``rate``.

    The NONMEM record ``AMT, RATE > 0`` is ``Infusion(start, RATE, AMT / RATE)``; with a
    declared bioavailability ``F`` it delivers ``F·AMT`` at ``RATE``, over ``F·AMT/RATE``.

    Parameters
    ----------
    start
        Start time (model time unit; a declared lag is added to it).
    rate
        Amount per time unit (> 0).
    duration
        Length of the infusion (> 0, model time unit). ``math.inf`` only for a constant
        steady-state infusion (``ss`` 1 or 2 with ``ii=0``; NONMEM ``SS=1, AMT=0, RATE>0,
        II=0``), which runs until a :class:`Reset` or another steady-state reset.
    cmt
        1-based target compartment; 0 means the model's default dose compartment.
    ss, ii
        Steady state and its interdose interval, as for :class:`Bolus`.
    """

    start: float
    rate: float
    duration: float
    cmt: int = 0
    ss: int = 0
    ii: float = 0.0

    def __post_init__(self) -> None:
        _check_finite("Infusion", start=self.start, rate=self.rate)
        at = f"starting at {self.start}"
        constant = self.duration == math.inf
        if not constant:
            _check_finite("Infusion", duration=self.duration)
        if self.rate <= 0 or self.duration <= 0:
            raise InputError(
                f"Infusion needs rate > 0 and duration > 0, got rate {self.rate}, duration {self.duration} "
                f"({at})."
            )
        _check_cmt("Infusion", self.cmt)
        _check_steady("Infusion", at, self.ss, self.ii, constant_infusion=constant)
        if constant and (self.ss == 0 or self.ii != 0):
            raise InputError(
                f"Infusion {at}: an infinite duration is only the constant steady-state "
                f"infusion (ss=1 or 2, ii=0); got ss={self.ss}, ii={self.ii}. Give a finite "
                "duration otherwise."
            )

    @property
    def is_constant(self) -> bool:
        """Whether this is a constant steady-state infusion (infinite duration)."""
        return self.duration == math.inf

    @classmethod
    def from_amount(
        cls,
        start: float,
        amount: float,
        duration: float,
        cmt: int = 0,
        *,
        ss: int = 0,
        ii: float = 0.0,
    ) -> Infusion:
        """Infusion delivering ``amount`` evenly over ``duration``."""
        if not duration > 0 or not math.isfinite(duration):
            raise InputError(f"Infusion duration must be finite and > 0, got {duration}.")
        return cls(start=start, rate=amount / duration, duration=duration, cmt=cmt, ss=ss, ii=ii)


_BY = ("rate", "duration")


@dataclass(frozen=True)
class ModelledInfusion:
    """An infusion whose rate or duration comes from the model (NONMEM ``RATE=-1``/``-2``).

    ``by="rate"`` (``RATE=-1``): the model's rate parameter ``R`` declared for ``cmt``, over
    ``F·amount / R``. ``by="duration"`` (``RATE=-2``): over the model's duration parameter
    ``D``, at ``F·amount / D``. A model without that declaration for the compartment is
    refused when the schedule meets the model (declare one with
    :func:`twin_uq.with_dose_parameters`).

    Parameters
    ----------
    start
        Start time (model time unit; a declared lag is added to it).
    amount
        Amount infused (>= 0), scaled by a declared bioavailability.
    cmt
        1-based target compartment; 0 means the model's default dose compartment.
    by
        ``"rate"`` (``RATE=-1``) or ``"duration"`` (``RATE=-2``).
    ss, ii
        Steady state and its interdose interval, as for :class:`Bolus`.
    """

    start: float
    amount: float
    cmt: int = 0
    by: Literal["rate", "duration"] = "duration"
    ss: int = 0
    ii: float = 0.0

    def __post_init__(self) -> None:
        _check_finite("ModelledInfusion", start=self.start, amount=self.amount)
        at = f"starting at {self.start}"
        if self.amount < 0:
            raise InputError(f"ModelledInfusion amount must be >= 0, got {self.amount} ({at}).")
        _check_cmt("ModelledInfusion", self.cmt)
        if self.by not in _BY:
            raise InputError(
                f"ModelledInfusion {at}: by must be 'rate' (RATE=-1: rate R from the model) or "
                f"'duration' (RATE=-2: duration D from the model), got {self.by!r}."
            )
        _check_steady("ModelledInfusion", at, self.ss, self.ii)

    @property
    def nonmem_rate(self) -> int:
        """The NONMEM ``RATE`` of this record: -1 (``by="rate"``) or -2 (``by="duration"``)."""
        return -1 if self.by == "rate" else -2


@dataclass(frozen=True)
class Reset:
    """Every state and running infusion set to 0 at ``time`` (NONMEM ``EVID=3``).

    ``EVID=4`` (reset and dose) is a ``Reset(t)`` and the dose at ``t``: at one time, a
    reset acts before doses and observations.
    """

    time: float

    def __post_init__(self) -> None:
        _check_finite("Reset", time=self.time)


@dataclass(frozen=True)
class Signal:
    """A measured input signal, linearly interpolated between knots.

    Parameters
    ----------
    name
        Signal name as the model's ``signals`` declares it (e.g. ``"insulin"``).
    times
        Knot times, strictly increasing, shape ``(n,)``.
    values
        Values at the knots, shape ``(n,)``. Held constant outside the knot range.
    """

    name: str
    times: Sequence[float]
    values: Sequence[float]
