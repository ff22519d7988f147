"""Dosing and input schedules: padded pytrees of boluses, infusions and measured signals.

A :class:`Schedule` describes everything that enters a patient from outside the model:
instantaneous doses (boluses, meals as carbohydrate boluses), zero-order infusions and
measured input signals (e.g. plasma insulin in an IVGTT) that the right-hand side reads
by interpolation. Arrays are padded to fixed sizes with boolean masks so that schedules of
different patients can be stacked along a leading patient axis and ``vmap``-ed.

Compartments follow NONMEM numbering: ``cmt`` is 1-based (``cmt = k`` targets the k-th
state of the model); ``cmt = 0`` means "the model's default dose compartment".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from twin_uq.errors import InputError

__all__ = [
    "Bolus",
    "Infusion",
    "PatientInputs",
    "Schedule",
    "Signal",
    "schedule_fields",
    "stack_schedules",
]


@dataclass(frozen=True)
class Bolus:
    """An instantaneous dose.

    Parameters
    ----------
    time
        Dose time, in the model's time unit.
    amount
        Amount added to the target state (model's amount unit, e.g. mg, g of carbohydrate, U).
    cmt
        1-based target compartment; 0 means the model's default dose compartment.
    """

    time: float
    amount: float
    cmt: int = 0

    def __post_init__(self) -> None:
        _check_finite("Bolus", time=self.time, amount=self.amount)
        if self.amount < 0:
            raise InputError(f"Bolus amount must be >= 0, got {self.amount} (at time {self.time}).")
        _check_cmt("Bolus", self.cmt)


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


@dataclass(frozen=True)
class Infusion:
    """A zero-order infusion from ``start`` to ``start + duration`` at constant ``rate``.

    Parameters
    ----------
    start
        Start time (model time unit).
    rate
        Amount per time unit (> 0).
    duration
        Length of the infusion (> 0, model time unit).
    cmt
        1-based target compartment; 0 means the model's default dose compartment.
    """

    start: float
    rate: float
    duration: float
    cmt: int = 0

    def __post_init__(self) -> None:
        _check_finite("Infusion", start=self.start, rate=self.rate, duration=self.duration)
        if self.rate <= 0 or self.duration <= 0:
            raise InputError(
                f"Infusion needs rate > 0 and duration > 0, got rate {self.rate}, duration {self.duration} "
                f"(starting at {self.start})."
            )
        _check_cmt("Infusion", self.cmt)

    @classmethod
    def from_amount(cls, start: float, amount: float, duration: float, cmt: int = 0) -> Infusion:
        """Infusion delivering ``amount`` evenly over ``duration``."""
        if duration <= 0:
            raise InputError(f"Infusion duration must be > 0, got {duration}.")
        return cls(start=start, rate=amount / duration, duration=duration, cmt=cmt)


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


class Schedule(eqx.Module):
    """Padded arrays describing one patient's inputs (or a batch, with a leading axis).

    Attributes
    ----------
    bolus_time, bolus_amount, bolus_cmt, bolus_mask
        Shape ``(n_bolus,)``. Masked-out entries are padding and have no effect.
    infusion_start, infusion_stop, infusion_rate, infusion_cmt, infusion_mask
        Shape ``(n_infusion,)``; ``rate`` in amount per time unit.
    signal_time
        Shape ``(n_knots,)``: knot times shared by all signals (padding repeats the last knot).
    signal_value
        Shape ``(n_knots, n_signals)``.
    signal_mask
        Shape ``(n_knots,)``.
    """

    bolus_time: Float[Array, "... nb"]
    bolus_amount: Float[Array, "... nb"]
    bolus_cmt: Int[Array, "... nb"]
    bolus_mask: Bool[Array, "... nb"]
    infusion_start: Float[Array, "... ni"]
    infusion_stop: Float[Array, "... ni"]
    infusion_rate: Float[Array, "... ni"]
    infusion_cmt: Int[Array, "... ni"]
    infusion_mask: Bool[Array, "... ni"]
    signal_time: Float[Array, "... ns"]
    signal_value: Float[Array, "... ns nsig"]
    signal_mask: Bool[Array, "... ns"]

    @classmethod
    def build(
        cls,
        boluses: Sequence[Bolus] = (),
        infusions: Sequence[Infusion] = (),
        signals: Sequence[Signal] = (),
        *,
        signal_names: Sequence[str] | None = None,
        n_bolus: int | None = None,
        n_infusion: int | None = None,
        n_knots: int | None = None,
    ) -> Schedule:
        """Build a schedule for one patient, padded to the requested sizes.

        Parameters
        ----------
        boluses, infusions, signals
            The inputs. Signals must share their knot times.
        signal_names
            Order of signals in ``signal_value``'s last axis (a model's ``signals``).
            Defaults to the order given.
        n_bolus, n_infusion, n_knots
            Padded sizes (at least the number given; at least 1 so arrays are never empty).
        """
        fields = schedule_fields(
            boluses,
            infusions,
            signals,
            signal_names=signal_names,
            n_bolus=n_bolus,
            n_infusion=n_infusion,
            n_knots=n_knots,
        )
        return cls(**{k: jnp.asarray(v) for k, v in fields.items()})

    @property
    def n_bolus(self) -> int:
        """Padded number of boluses."""
        return self.bolus_time.shape[-1]

    @property
    def n_infusion(self) -> int:
        """Padded number of infusions."""
        return self.infusion_start.shape[-1]

    @property
    def n_knots(self) -> int:
        """Padded number of signal knots."""
        return self.signal_time.shape[-1]

    def boluses(self) -> list[Bolus]:
        """Return the unpadded boluses of a single (unbatched) schedule."""
        m = np.asarray(self.bolus_mask)
        return [
            Bolus(float(t), float(a), int(c))
            for t, a, c in zip(
                np.asarray(self.bolus_time)[m],
                np.asarray(self.bolus_amount)[m],
                np.asarray(self.bolus_cmt)[m],
                strict=True,
            )
        ]

    def infusions(self) -> list[Infusion]:
        """Return the unpadded infusions of a single (unbatched) schedule."""
        m = np.asarray(self.infusion_mask)
        return [
            Infusion(float(s), float(r), float(e - s), int(c))
            for s, e, r, c in zip(
                np.asarray(self.infusion_start)[m],
                np.asarray(self.infusion_stop)[m],
                np.asarray(self.infusion_rate)[m],
                np.asarray(self.infusion_cmt)[m],
                strict=True,
            )
        ]

    def pad(self, n_bolus: int, n_infusion: int, n_knots: int) -> Schedule:
        """Return the same (unbatched) schedule padded to larger sizes."""

        def grow(x: Array, n: int, fill: Array) -> Array:
            extra = n - x.shape[0]
            if extra < 0:
                raise ValueError(f"Cannot pad an axis of {x.shape[0]} down to {n}.")
            return jnp.concatenate([x, jnp.broadcast_to(fill, (extra, *x.shape[1:]))])

        z = jnp.asarray(0.0)
        return Schedule(
            bolus_time=grow(self.bolus_time, n_bolus, z),
            bolus_amount=grow(self.bolus_amount, n_bolus, z),
            bolus_cmt=grow(self.bolus_cmt, n_bolus, jnp.asarray(0, self.bolus_cmt.dtype)),
            bolus_mask=grow(self.bolus_mask, n_bolus, jnp.asarray(False)),
            infusion_start=grow(self.infusion_start, n_infusion, z),
            infusion_stop=grow(self.infusion_stop, n_infusion, z),
            infusion_rate=grow(self.infusion_rate, n_infusion, z),
            infusion_cmt=grow(
                self.infusion_cmt, n_infusion, jnp.asarray(0, self.infusion_cmt.dtype)
            ),
            infusion_mask=grow(self.infusion_mask, n_infusion, jnp.asarray(False)),
            signal_time=grow(self.signal_time, n_knots, self.signal_time[-1]),
            signal_value=grow(self.signal_value, n_knots, self.signal_value[-1]),
            signal_mask=grow(self.signal_mask, n_knots, jnp.asarray(False)),
        )


class PatientInputs(NamedTuple):
    """What one patient brings to a solve besides its parameters (a pytree).

    The common argument of the solve paths (:func:`~twin_uq.simulate.exact.solve_exact`,
    :func:`~twin_uq.simulate.ode.solve_ode`,
    :func:`~twin_uq.simulate.fixed_step.solve_fixed_step`).

    Attributes
    ----------
    covariates
        Covariates in ``model.covariates`` order, ``(C,)``.
    schedule
        One patient's (unbatched) schedule.
    times
        Observation times ``>= 0``, shape ``(T,)``, any order, padding allowed.
    """

    covariates: Float[Array, " C"]
    schedule: Schedule
    times: Float[Array, " T"]


def schedule_fields(
    boluses: Sequence[Bolus] = (),
    infusions: Sequence[Infusion] = (),
    signals: Sequence[Signal] = (),
    *,
    signal_names: Sequence[str] | None = None,
    n_bolus: int | None = None,
    n_infusion: int | None = None,
    n_knots: int | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of :meth:`Schedule.build` as NumPy arrays, by field name.

    Cohort-sized code builds these and stacks them (:func:`stack_schedules`) without one
    JAX dispatch per patient.
    """
    nb = max(len(boluses), 1) if n_bolus is None else n_bolus
    ni = max(len(infusions), 1) if n_infusion is None else n_infusion
    if len(boluses) > nb or len(infusions) > ni:
        raise ValueError("Padded size smaller than the number of doses given.")
    bt = np.zeros(nb)
    ba = np.zeros(nb)
    bc = np.zeros(nb, dtype=np.int32)
    bm = np.zeros(nb, dtype=bool)
    for k, b in enumerate(sorted(boluses, key=lambda b: b.time)):
        if not np.isfinite(b.time) or not np.isfinite(b.amount):
            raise InputError(f"Bolus {k} has a non-finite time or amount: {b}.")
        bt[k], ba[k], bc[k], bm[k] = b.time, b.amount, b.cmt, True
    it = np.zeros(ni)
    ie = np.zeros(ni)
    ir = np.zeros(ni)
    ic = np.zeros(ni, dtype=np.int32)
    im = np.zeros(ni, dtype=bool)
    for k, inf in enumerate(sorted(infusions, key=lambda i: i.start)):
        if not (inf.rate > 0 and inf.duration > 0):
            raise InputError(f"Infusion {k} needs rate > 0 and duration > 0, got {inf}.")
        it[k], ie[k], ir[k], ic[k], im[k] = (
            inf.start,
            inf.start + inf.duration,
            inf.rate,
            inf.cmt,
            True,
        )
    names = list(signal_names) if signal_names is not None else [s.name for s in signals]
    by_name = {s.name: s for s in signals}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(f"Schedule lacks the measured signal(s) {missing}.")
    if names:
        knots = np.asarray(by_name[names[0]].times, dtype=float)
        for n in names:
            if not np.array_equal(np.asarray(by_name[n].times, dtype=float), knots):
                raise InputError("All signals of one schedule must share their knot times.")
        if knots.size == 0 or np.any(np.diff(knots) <= 0):
            raise InputError(f"Signal knot times must be strictly increasing: {knots}.")
        values = np.stack([np.asarray(by_name[n].values, dtype=float) for n in names], -1)
    else:
        knots = np.zeros(1)
        values = np.zeros((1, 0))
    ns = knots.size if n_knots is None else n_knots
    if knots.size > ns:
        raise ValueError("Padded size smaller than the number of signal knots.")
    st = np.full(ns, knots[-1])
    st[: knots.size] = knots
    sv = np.repeat(values[-1:], ns, axis=0)
    sv[: knots.size] = values
    sm = np.zeros(ns, dtype=bool)
    sm[: knots.size] = bool(names)
    return {
        "bolus_time": bt,
        "bolus_amount": ba,
        "bolus_cmt": bc,
        "bolus_mask": bm,
        "infusion_start": it,
        "infusion_stop": ie,
        "infusion_rate": ir,
        "infusion_cmt": ic,
        "infusion_mask": im,
        "signal_time": st,
        "signal_value": sv,
        "signal_mask": sm,
    }


_FIELDS = tuple(Schedule.__dataclass_fields__)


def stack_schedules(schedules: Sequence[Schedule | Mapping[str, np.ndarray]]) -> Schedule:
    """Pad unbatched schedules to common sizes and stack them along a new leading axis.

    Each item is a :class:`Schedule` or its :func:`schedule_fields` mapping.
    """
    if not schedules:
        raise InputError("stack_schedules needs at least one schedule.")
    items = [
        s if isinstance(s, Mapping) else {k: getattr(s, k) for k in _FIELDS} for s in schedules
    ]
    nb = max(np.shape(s["bolus_time"])[0] for s in items)
    ni = max(np.shape(s["infusion_start"])[0] for s in items)
    ns = max(np.shape(s["signal_time"])[0] for s in items)
    # Padded and stacked in NumPy, then moved to JAX once: per-patient jnp operations and
    # a jnp.stack of P operands cost minutes of dispatch and compilation at 10 000 patients.
    sizes = {"bolus": nb, "infusion": ni, "signal": ns}
    fields: dict[str, np.ndarray] = {}
    for name in _FIELDS:
        n = sizes[name.split("_")[0]]
        parts = [np.asarray(s[name]) for s in items]
        out = np.empty((len(parts), n, *parts[0].shape[1:]), dtype=parts[0].dtype)
        for i, x in enumerate(parts):
            m = x.shape[0]
            out[i, :m] = x
            # Masks and amounts pad with zeros/False; signal knots repeat their last
            # value so that interpolation past the last knot stays flat.
            fill = x[-1] if name in ("signal_time", "signal_value") and m else 0
            out[i, m:] = fill
        fields[name] = out
    return Schedule(**{k: jnp.asarray(v) for k, v in fields.items()})
