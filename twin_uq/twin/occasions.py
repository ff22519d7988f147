"""Twins of a fit with inter-occasion variability: forecasts within a known or a new occasion.

A fitted patient's parameters differ between its occasions by the occasion random effects
``omega_occ * kappa`` (:class:`~twin_uq.posterior.PatientPosterior` ``occasions``,
``theta_path``). After the record the last occasion's effect holds, which is right for a
forecast within that occasion (the rest of a dosing period). A forecast for a *new*
occasion (the next hospital stay, the next course) cannot know its effect: each posterior
draw gets a fresh ``kappa ~ N(0, 1)`` times its own ``omega_occ``, so the forecast carries
the between-occasion variance and is wider (:func:`with_new_occasion`). The prediction's
``attrs`` say which of the two a forecast is (:func:`occasion_attrs`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from twin_uq.errors import InputError
from twin_uq.model.scales import to_natural, to_unconstrained
from twin_uq.posterior.patient import PatientPosterior

__all__ = ["NEW_OCCASION_SEED", "occasion_attrs", "with_new_occasion"]

#: Seed of the fresh occasion effects of :func:`with_new_occasion` (fixed: the same twin
#: gives the same forecast every time).
NEW_OCCASION_SEED = 20261207


def with_new_occasion(
    patient: PatientPosterior, at: float, seed: int = NEW_OCCASION_SEED
) -> PatientPosterior:
    """``patient`` whose parameters from time ``at`` on are those of a new occasion.

    Each draw ``s`` gets ``log theta_s + omega_occ_s * kappa_s`` with ``kappa_s ~ N(0, 1)``
    (one per parameter with occasion variability), from ``at`` on.

    Raises
    ------
    InputError
        For a fit without inter-occasion variability, or ``at`` not after the patient's
        last occasion start and record.
    """
    if not patient.has_occasions:
        raise InputError(
            "new_occasion_at needs a fit with inter-occasion variability "
            "(tq.PopulationModel(..., iov=[...])); this fit has none."
        )
    last_record = float(patient.table["time"].max()) if len(patient.table) else 0.0
    last_start = float(patient.change_time[-1])
    at = float(at)
    if not np.isfinite(at) or at <= last_start or at < last_record:
        raise InputError(
            f"Patient {patient.patient_id!r}: new_occasion_at={at:g} must come after the "
            f"start of its last recorded occasion (time {last_start:g}) and its last record "
            f"(time {last_record:g})."
        )
    model = patient.model
    rng = np.random.default_rng(seed)
    kappa = rng.standard_normal(patient.theta.shape)
    latent = to_unconstrained(model, patient.theta) + patient.omega_occ * kappa
    fresh = np.asarray(to_natural(model, latent))[:, None, :]
    return dataclasses.replace(
        patient,
        change_time=np.append(patient.change_time, at),
        theta_path=np.concatenate([patient.theta_path, fresh], axis=1),
        new_occasion_at=at,
    )


def occasion_attrs(patient: PatientPosterior) -> dict[str, object]:
    """What a prediction's ``attrs`` say about occasions (nothing without IOV).

    ``new_occasion_at`` (NaN: none) and ``occasion_note``, a sentence for readers. A new
    patient (no recorded occasion) is on a new occasion from time 0.
    """
    if not patient.has_occasions:
        return {}
    if patient.new_occasion_at is None:
        last = patient.occasions["occ"].iloc[-1]
        note = (
            f"Within known occasions: after the record, occasion {last} (the last recorded) "
            "holds with its estimated occasion effect."
        )
        return {"new_occasion_at": float("nan"), "occasion_note": note}
    note = (
        f"From time {patient.new_occasion_at:g} on, a new occasion: its occasion effect is "
        "unknown and drawn from N(0, omega_occ) at each posterior draw (between-occasion "
        "variability included)."
    )
    return {"new_occasion_at": float(patient.new_occasion_at), "occasion_note": note}
