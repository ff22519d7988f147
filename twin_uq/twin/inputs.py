"""Checks and conversions of what a user hands a twin: intervals, times, dosing regimens."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from twin_uq.errors import InputError
from twin_uq.model.base import Model
from twin_uq.model.scales import to_natural, to_unconstrained
from twin_uq.posterior.patient import PatientPosterior
from twin_uq.posterior.population import design_row, flat_draws
from twin_uq.simulate.schedule import Bolus, Infusion, Schedule

__all__ = [
    "ScheduleLike",
    "check_doses",
    "check_interval",
    "check_times",
    "scaled_schedule",
    "with_future_covariates",
]

#: A dosing regimen as a twin accepts it: a :class:`Schedule` or a list of doses.
ScheduleLike = Schedule | Sequence[Bolus | Infusion]


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
        _check_dose_value(b.amount, where, "dose amount", zero_allowed=False)
        _check_dose_value(b.time, where, "dose time", zero_allowed=True)
        _check_compartment(b.cmt, where, n_states)
    for k, i in enumerate(schedule.infusions(), 1):
        where = f"{label}, infusion {k} (start {i.start:g})"
        _check_dose_value(i.rate, where, "infusion rate", zero_allowed=False)
        _check_dose_value(i.duration, where, "duration", zero_allowed=False)
        _check_dose_value(i.start, where, "start time", zero_allowed=True)
        _check_compartment(i.cmt, where, n_states)


def _check_dose_value(value: float, where: str, what: str, *, zero_allowed: bool) -> None:
    """Refuse a non-finite ``value``, or one below 0 (``zero_allowed``) or at or below 0."""
    if not (np.isfinite(value) and (value >= 0 if zero_allowed else value > 0)):
        bound = ">= 0" if zero_allowed else "> 0"
        raise InputError(f"{where}: {what} must be finite and {bound}, got {value:g}.")


def _check_compartment(cmt: int, where: str, n_states: int) -> None:
    if not 0 <= cmt <= n_states:
        raise InputError(f"{where}: compartment {cmt} outside 1..{n_states} (0 = default).")


def scaled_schedule(schedule: Schedule, amount: float) -> Schedule:
    """The schedule with every dose's amount replaced by ``amount``.

    Everything else stays: dose times and compartments, infusion durations, modelled
    infusions (``RATE=-1/-2``: the model still gives their rate or duration), steady-state
    flags and intervals, resets and measured signals. A constant steady-state infusion has
    a rate, not an amount, and is refused.
    """
    infusions = schedule.infusions()
    constant = [i for i in infusions if i.is_constant]
    if constant:
        raise InputError(
            f"The dosing template has a constant steady-state infusion (rate {constant[0].rate:g} "
            f"from time {constant[0].start:g}), which has no amount to scale; pass the "
            "candidate regimens as schedules."
        )
    boluses = [dataclasses.replace(b, amount=amount) for b in schedule.boluses()]
    infusions = [
        Infusion.from_amount(i.start, amount, i.duration, i.cmt, ss=i.ss, ii=i.ii)
        for i in infusions
    ]
    modelled = [dataclasses.replace(m, amount=amount) for m in schedule.modelled_infusions()]
    if not boluses and not infusions and not modelled:
        raise InputError("The dosing template has no doses to scale; pass candidates as schedules.")
    new = Schedule.build(
        boluses,
        infusions,
        modelled=modelled,
        resets=schedule.resets(),
        n_bolus=schedule.n_bolus,
        n_infusion=schedule.n_infusion,
        n_modelled=schedule.n_modelled,
        n_reset=schedule.n_reset,
        n_steady=schedule.n_steady,
    )
    return dataclasses.replace(
        new,
        signal_time=schedule.signal_time,
        signal_value=schedule.signal_value,
        signal_mask=schedule.signal_mask,
    )


def with_future_covariates(
    post, patient: PatientPosterior, future: Mapping[float, Mapping[str, object]]
) -> PatientPosterior:
    """``patient`` with covariate values given for times after its record (a what-if).

    ``future`` maps a time to the covariates that change then (``{48.0: {"WT": 3.4}}``);
    covariates not named keep their value. Each time starts a new segment of the
    parameters, computed per draw as in the fit: the latent parameters move by the change
    of the covariate model (effects with the draw's ``beta``, allometry) from baseline.

    Raises
    ------
    InputError
        For a time not after the record's last covariate change (or negative), or a
        covariate name the fit does not know.
    """
    if patient.has_occasions:  # the future segments would drop the occasion effect
        raise InputError(
            f"Patient {patient.patient_id!r}: future_covariates are not available for a fit "
            "with inter-occasion variability (iov) yet; refit with the covariate rows."
        )
    model = patient.model
    known = {str(c) for c in post.cohort.covariate_names}
    change = patient.change_time if patient.time_varying else np.zeros(1)
    path = patient.theta_path if patient.time_varying else patient.theta[:, None, :]
    current = dict(patient.baseline)
    if patient.covariate_path is not None:
        current.update(patient.covariate_path.iloc[-1].to_dict())
    base_row, base_allo = design_row(post, patient.baseline)
    beta = flat_draws(post).get("beta")
    design = post.covariate_design
    names = model.parameter_names
    latent = to_unconstrained(model, patient.theta)
    times, thetas, rows = list(change), [path], []
    for t in sorted(future):
        if not np.isfinite(t) or t <= times[-1]:
            raise InputError(
                f"Future covariate values at time {t:g}: times must come after the record's "
                f"last covariate change (time {times[-1]:g}) and after each other."
            )
        unknown = sorted(set(future[t]) - known)
        if unknown:
            raise InputError(
                f"Future covariate values at time {t:g}: unknown covariate(s) {unknown}; the "
                f"cohort's covariates are {sorted(known)}."
            )
        current.update(future[t])
        row, allo = design_row(post, current)
        shift = np.broadcast_to(allo - base_allo, latent.shape).copy()
        if beta is not None:
            for e, (p, term) in enumerate(design.effects):
                q = design.terms.index(term)
                shift[:, names.index(p)] += beta[:, e] * (row[q] - base_row[q])
        thetas.append(np.asarray(to_natural(model, latent + shift))[:, None, :])
        times.append(float(t))
        rows.append({"time": float(t), **dict(current)})
    covariate_path = patient.covariate_path
    if rows:
        extra = pd.DataFrame(rows).set_index("time")
        cols = list(covariate_path.columns) if covariate_path is not None else list(extra.columns)
        covariate_path = (
            pd.concat([covariate_path, extra[cols]]) if covariate_path is not None else extra
        )
    return dataclasses.replace(
        patient,
        change_time=np.asarray(times, dtype=float),
        theta_path=np.concatenate(thetas, axis=1),
        covariate_path=covariate_path,
    )
