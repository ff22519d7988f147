"""Dosing and input schedules: padded pytrees of doses, resets and measured signals.

A :class:`Schedule` describes everything that enters a patient from outside the model:
instantaneous doses (boluses, meals as carbohydrate boluses), zero-order infusions, infusions
whose rate or duration the model gives (NONMEM ``RATE=-1/-2``), resets (``EVID=3``) and
measured input signals (e.g. plasma insulin in an IVGTT) that the right-hand side reads by
interpolation. Arrays are padded to fixed sizes with boolean masks so that schedules of
different patients can be stacked along a leading patient axis and ``vmap``-ed. The records
themselves (:class:`Bolus`, :class:`Infusion`, :class:`ModelledInfusion`, :class:`Reset`,
:class:`Signal`) live in :mod:`twin_uq.simulate.records`.

Compartments follow NONMEM numbering: ``cmt`` is 1-based (``cmt = k`` targets the k-th
state of the model); ``cmt = 0`` means "the model's default dose compartment".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from twin_uq.errors import InputError
from twin_uq.simulate.records import Bolus, Infusion, ModelledInfusion, Reset, Signal

__all__ = [
    "STEADY_BOLUS",
    "STEADY_INFUSION",
    "STEADY_MODELLED",
    "Bolus",
    "Infusion",
    "ModelledInfusion",
    "PatientInputs",
    "Reset",
    "Schedule",
    "Signal",
    "as_schedule",
    "schedule_fields",
    "stack_schedules",
]

STEADY_BOLUS, STEADY_INFUSION, STEADY_MODELLED = 0, 1, 2
"""Values of :attr:`Schedule.steady_kind`: which array a steady-state dose's slot is in."""


def _padded_size(field: str, what: str) -> property:
    """A read-only property: the padded number of ``what``, the last axis of ``field``."""
    return property(lambda self: getattr(self, field).shape[-1], doc=f"Padded number of {what}.")


class Schedule(eqx.Module):
    """Padded arrays describing one patient's inputs (or a batch, with a leading axis).

    Attributes
    ----------
    bolus_time, bolus_amount, bolus_cmt, bolus_mask, bolus_ss, bolus_ii
        Shape ``(n_bolus,)``. Masked-out entries are padding and have no effect. ``ss``
        (0, 1, 2) and ``ii`` as in :class:`Bolus`.
    infusion_start, infusion_stop, infusion_rate, infusion_cmt, infusion_mask,
    infusion_ss, infusion_ii
        Shape ``(n_infusion,)``; ``rate`` in amount per time unit; ``stop`` is ``inf`` for
        a constant steady-state infusion.
    modelled_start, modelled_amount, modelled_cmt, modelled_by, modelled_mask,
    modelled_ss, modelled_ii
        Shape ``(n_modelled,)``: :class:`ModelledInfusion` records; ``by`` is the NONMEM
        ``RATE`` (-1 rate from the model, -2 duration from the model; 0 padding).
    reset_time, reset_mask
        Shape ``(n_reset,)``: :class:`Reset` times.
    steady_kind, steady_index, steady_mask
        Shape ``(n_steady,)``: the steady-state doses (``ss != 0``), each the array it is
        in (``STEADY_BOLUS``, ``STEADY_INFUSION``, ``STEADY_MODELLED``) and its position
        there. The dose itself is an ordinary entry of that array; this list only sizes
        the steady-state events statically (``n_steady`` is 0 without steady state).
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
    bolus_ss: Int[Array, "... nb"]
    bolus_ii: Float[Array, "... nb"]
    infusion_ss: Int[Array, "... ni"]
    infusion_ii: Float[Array, "... ni"]
    modelled_start: Float[Array, "... nm"]
    modelled_amount: Float[Array, "... nm"]
    modelled_cmt: Int[Array, "... nm"]
    modelled_by: Int[Array, "... nm"]
    modelled_mask: Bool[Array, "... nm"]
    modelled_ss: Int[Array, "... nm"]
    modelled_ii: Float[Array, "... nm"]
    reset_time: Float[Array, "... nr"]
    reset_mask: Bool[Array, "... nr"]
    steady_kind: Int[Array, "... nss"]
    steady_index: Int[Array, "... nss"]
    steady_mask: Bool[Array, "... nss"]

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Schedule:
        """Build a schedule for one patient, padded to the requested sizes.

        Takes the arguments of :func:`schedule_fields` (documented there), which builds the
        arrays; this only moves them to JAX.
        """
        return cls.from_fields(schedule_fields(*args, **kwargs))

    @classmethod
    def from_fields(cls, fields: Mapping[str, np.ndarray]) -> Schedule:
        """The schedule of :func:`schedule_fields`-style NumPy arrays, moved to JAX once."""
        return cls(**{k: jnp.asarray(v) for k, v in fields.items()})

    n_bolus = _padded_size("bolus_time", "boluses")
    n_infusion = _padded_size("infusion_start", "infusions")
    n_knots = _padded_size("signal_time", "signal knots")
    n_modelled = _padded_size("modelled_start", "modelled infusions")
    n_reset = _padded_size("reset_time", "resets")
    n_steady = _padded_size("steady_kind", "steady-state doses")

    def _rows(self, group: str, names: tuple[str, ...]) -> zip:
        """The unpadded entries of fields ``{group}_{name}``, one tuple per entry (NumPy)."""
        m = np.asarray(getattr(self, f"{group}_mask"))
        return zip(*(np.asarray(getattr(self, f"{group}_{n}"))[m] for n in names), strict=True)

    def boluses(self) -> list[Bolus]:
        """Return the unpadded boluses of a single (unbatched) schedule."""
        return [
            Bolus(float(t), float(a), int(c), int(s), float(i))
            for t, a, c, s, i in self._rows("bolus", ("time", "amount", "cmt", "ss", "ii"))
        ]

    def infusions(self) -> list[Infusion]:
        """Return the unpadded infusions of a single (unbatched) schedule."""
        names = ("start", "stop", "rate", "cmt", "ss", "ii")
        return [
            Infusion(float(s), float(r), float(e - s), int(c), int(ss), float(ii))
            for s, e, r, c, ss, ii in self._rows("infusion", names)
        ]

    def modelled_infusions(self) -> list[ModelledInfusion]:
        """Return the unpadded modelled infusions of a single (unbatched) schedule."""
        names = ("start", "amount", "cmt", "by", "ss", "ii")
        return [
            ModelledInfusion(
                float(s), float(a), int(c), "rate" if by == -1 else "duration", int(ss), float(ii)
            )
            for s, a, c, by, ss, ii in self._rows("modelled", names)
        ]

    def resets(self) -> list[Reset]:
        """Return the unpadded resets of a single (unbatched) schedule."""
        return [Reset(float(t)) for t in np.asarray(self.reset_time)[np.asarray(self.reset_mask)]]

    def pad(
        self,
        n_bolus: int,
        n_infusion: int,
        n_knots: int,
        *,
        n_modelled: int | None = None,
        n_reset: int | None = None,
        n_steady: int | None = None,
    ) -> Schedule:
        """Return the same (unbatched) schedule padded to larger sizes.

        ``n_modelled``, ``n_reset``, ``n_steady`` default to the current sizes.
        """
        sizes = {
            "bolus": n_bolus,
            "infusion": n_infusion,
            "signal": n_knots,
            "modelled": self.n_modelled if n_modelled is None else n_modelled,
            "reset": self.n_reset if n_reset is None else n_reset,
            "steady": self.n_steady if n_steady is None else n_steady,
        }
        fields = {}
        for name in _FIELDS:
            x = getattr(self, name)
            extra = sizes[_group(name)] - x.shape[0]
            if extra < 0:
                raise ValueError(
                    f"Cannot pad {name} of length {x.shape[0]} down to {extra + x.shape[0]}."
                )
            fill = x[-1] if name in _REPEAT_LAST else jnp.zeros((), x.dtype)
            fields[name] = jnp.concatenate([x, jnp.broadcast_to(fill, (extra, *x.shape[1:]))])
        return Schedule(**fields)


def _group(field: str) -> str:
    """The padded-size group of a field: its name up to the first underscore."""
    return field.split("_")[0]


# Signal knots repeat their last value so that interpolation past the last knot stays flat;
# everything else (masks, amounts, times) pads with zeros / False.
_REPEAT_LAST = ("signal_time", "signal_value")


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
    change_time
        ``(S,)`` starts of the segments of piecewise-constant parameters (time-varying
        covariates, :mod:`twin_uq.simulate.segments`), or ``None``: one parameter vector.
    """

    covariates: Float[Array, " C"]
    schedule: Schedule
    times: Float[Array, " T"]
    change_time: Float[Array, " S"] | None = None


def _padded(n_given: int, requested: int | None, what: str, minimum: int) -> int:
    n = max(n_given, minimum) if requested is None else requested
    if n_given > n:
        raise ValueError(f"Padded size {n} smaller than the number of {what} given ({n_given}).")
    return n


def _check_records(kind: type, records: Sequence[object], what: str) -> None:
    for k, r in enumerate(records):
        if not isinstance(r, kind):
            raise InputError(
                f"{what} item {k} must be a twin_uq.{kind.__name__}, got {type(r).__name__} ({r!r:.80})."
            )


def schedule_fields(
    boluses: Sequence[Bolus] = (),
    infusions: Sequence[Infusion] = (),
    signals: Sequence[Signal] = (),
    *,
    modelled: Sequence[ModelledInfusion] = (),
    resets: Sequence[Reset] = (),
    signal_names: Sequence[str] | None = None,
    n_bolus: int | None = None,
    n_infusion: int | None = None,
    n_knots: int | None = None,
    n_modelled: int | None = None,
    n_reset: int | None = None,
    n_steady: int | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of :meth:`Schedule.build` as NumPy arrays, by field name.

    Cohort-sized code builds these and stacks them (:func:`stack_schedules`) without one
    JAX dispatch per patient. Each kind of record is sorted by time (stably).

    Parameters
    ----------
    boluses, infusions, signals
        The inputs. Signals must share their knot times.
    modelled
        Infusions whose rate or duration the model gives (NONMEM ``RATE=-1/-2``).
    resets
        Resets of every state and running infusion (NONMEM ``EVID=3``).
    signal_names
        Order of signals in ``signal_value``'s last axis (a model's ``signals``).
        Defaults to the order given.
    n_bolus, n_infusion, n_knots
        Padded sizes (at least the number given; at least 1 so arrays are never empty).
    n_modelled, n_reset, n_steady
        Padded sizes of the modelled infusions, resets and steady-state doses (at least
        the number given; default exactly that, 0 when there are none).
    """
    _check_records(Bolus, boluses, "boluses")
    _check_records(Infusion, infusions, "infusions")
    _check_records(ModelledInfusion, modelled, "modelled")
    _check_records(Reset, resets, "resets")
    nb = _padded(len(boluses), n_bolus, "boluses", 1)
    ni = _padded(len(infusions), n_infusion, "infusions", 1)
    nm = _padded(len(modelled), n_modelled, "modelled infusions", 0)
    nr = _padded(len(resets), n_reset, "resets", 0)
    steady: list[tuple[int, int]] = []
    records = {
        **_record_fields("bolus", sorted(boluses, key=lambda b: b.time), nb, steady),
        **_record_fields("infusion", sorted(infusions, key=lambda i: i.start), ni, steady),
        **_record_fields("modelled", sorted(modelled, key=lambda m: m.start), nm, steady),
    }
    rt = np.zeros(nr)
    rt[: len(resets)] = sorted(r.time for r in resets)
    rm = np.arange(nr) < len(resets)
    nss = _padded(len(steady), n_steady, "steady-state doses", 0)
    sk = np.zeros(nss, dtype=np.int32)
    si = np.zeros(nss, dtype=np.int32)
    if steady:
        sk[: len(steady)], si[: len(steady)] = np.asarray(steady, dtype=np.int32).T
    sm = np.arange(nss) < len(steady)
    fields = {
        **records,
        **_signal_fields(signals, signal_names, n_knots),
        "reset_time": rt,
        "reset_mask": rm,
        "steady_kind": sk,
        "steady_index": si,
        "steady_mask": sm,
    }
    return {name: fields[name] for name in _FIELDS}


# The padded columns of each record group: (field suffix, dtype). A column holds the
# record's attribute of that name, except the derived columns below. Every dose record
# carries a compartment and a steady state.
_DOSE_COLUMNS = (("cmt", np.int32), ("ss", np.int32), ("ii", np.float64))
_COLUMNS = {
    "bolus": (("time", np.float64), ("amount", np.float64), *_DOSE_COLUMNS),
    "infusion": (("start", np.float64), ("stop", np.float64), ("rate", np.float64), *_DOSE_COLUMNS),
    "modelled": (("start", np.float64), ("amount", np.float64), ("by", np.int32), *_DOSE_COLUMNS),
}
# A constant infusion (duration inf) stops at inf, the rest at start + duration; a modelled
# infusion's column ``by`` is its NONMEM RATE code (-1 or -2), not the label.
_DERIVED = {
    "stop": lambda i: math.inf if i.is_constant else i.start + i.duration,
    "by": lambda m: m.nonmem_rate,
}
_STEADY_KIND = {"bolus": STEADY_BOLUS, "infusion": STEADY_INFUSION, "modelled": STEADY_MODELLED}


def _record_fields(
    group: str, records: Sequence[Bolus | Infusion | ModelledInfusion], n: int, steady: list
) -> dict[str, np.ndarray]:
    """The ``(n,)`` padded arrays ``{group}_*`` and ``{group}_mask`` of sorted ``records``.

    Appends ``(kind, slot)`` to ``steady`` for every steady-state record, in slot order.
    """
    columns = _COLUMNS[group]
    out = {f"{group}_{name}": np.zeros(n, dtype=dtype) for name, dtype in columns}
    mask = np.zeros(n, dtype=bool)
    for k, record in enumerate(records):
        for name, _ in columns:
            value = _DERIVED[name](record) if name in _DERIVED else getattr(record, name)
            out[f"{group}_{name}"][k] = value
        mask[k] = True
        if record.ss:
            steady.append((_STEADY_KIND[group], k))
    out[f"{group}_mask"] = mask
    return out


def _signal_fields(
    signals: Sequence[Signal], signal_names: Sequence[str] | None, n_knots: int | None
) -> dict[str, np.ndarray]:
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
    return {"signal_time": st, "signal_value": sv, "signal_mask": sm}


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
    missing = sorted(set(_FIELDS) - set(items[0]))
    if missing:
        raise InputError(f"stack_schedules: schedule fields {missing} are missing.")
    # One padded size per group of fields (bolus_*, infusion_*, ...): the longest.
    sizes: dict[str, int] = {}
    for name in _FIELDS:
        group = _group(name)
        n = max(np.shape(s[name])[0] for s in items)
        sizes[group] = max(sizes.get(group, 0), n)
    # Padded and stacked in NumPy, then moved to JAX once: per-patient jnp operations and
    # a jnp.stack of P operands cost minutes of dispatch and compilation at 10 000 patients.
    fields: dict[str, np.ndarray] = {}
    for name in _FIELDS:
        n = sizes[_group(name)]
        parts = [np.asarray(s[name]) for s in items]
        out = np.empty((len(parts), n, *parts[0].shape[1:]), dtype=parts[0].dtype)
        for i, x in enumerate(parts):
            m = x.shape[0]
            out[i, :m] = x
            fill = x[-1] if name in _REPEAT_LAST and m else 0
            out[i, m:] = fill
        fields[name] = out
    return Schedule.from_fields(fields)


def as_schedule(
    doses: Schedule | Sequence[Bolus | Infusion],
    signals: Sequence[Signal] = (),
    *,
    signal_names: Sequence[str] | None = None,
) -> Schedule:
    """One patient's schedule from a :class:`Schedule` (returned as it is) or a list of doses.

    A list may mix :class:`Bolus` and :class:`Infusion` in any order; ``signals`` and
    ``signal_names`` go to :meth:`Schedule.build` with them. Anything else in the list is
    refused (``TypeError`` naming its type), never dropped.
    """
    if isinstance(doses, Schedule):
        return doses
    items = list(doses)
    bad = [x for x in items if not isinstance(x, Bolus | Infusion)]
    if bad:
        raise TypeError(
            f"schedule must be a Schedule or a list of Bolus/Infusion; got {type(bad[0]).__name__}."
        )
    return Schedule.build(
        [x for x in items if isinstance(x, Bolus)],
        [x for x in items if isinstance(x, Infusion)],
        signals,
        signal_names=signal_names,
    )
