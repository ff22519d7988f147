"""Three-element Windkessel model of arterial pressure driven by measured aortic inflow.

Inflow choice: the blood flow ejected by the heart into the aorta, ``Q(t)`` in mL/s, is a
*measured signal* named ``inflow`` (e.g. from Doppler ultrasound or phase-contrast MRI),
linearly interpolated between samples. For simulation studies without a measured flow,
:func:`half_sine_inflow` builds an idealised signal (half-sine ejection of a given stroke
volume at a given heart rate) that can be passed to the schedule.

The pressure drop across the characteristic impedance ``Z`` is proportional to the flow
itself, but an observation function sees only the states. The inflow therefore passes a
fast first-order lag (``TAU_FLOW`` = 5 ms, much shorter than systole, comparable to the
resolution of clinical flow measurements) whose output is a state: pressure is
``P = Pc + Z·Qf``. The whole model is the exact three-element Windkessel driven by ``Qf``.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
import numpy as np

import twin_uq as tq

#: Time constant (s) of the lag through which the measured inflow enters the model.
TAU_FLOW = 0.005


def half_sine_inflow(
    stroke_volume: float = 70.0,
    heart_rate: float = 75.0,
    ejection_time: float = 0.3,
    n_beats: int = 10,
    dt: float = 0.01,
) -> tq.Signal:
    """Idealised aortic inflow: one half-sine ejection per beat, zero flow in diastole.

    Parameters
    ----------
    stroke_volume
        Volume ejected per beat (mL).
    heart_rate
        Beats per minute.
    ejection_time
        Duration of ejection (systole) per beat (s); must be shorter than the beat.
    n_beats
        Number of beats, starting at time 0.
    dt
        Sampling interval of the signal (s).

    Returns
    -------
    Signal
        ``inflow`` in mL/s sampled every ``dt`` s from 0 to ``n_beats`` beat periods. The
        amplitude is set so that each sampled beat ejects ``stroke_volume`` exactly under
        linear interpolation.
    """
    period = 60.0 / heart_rate
    if not 0 < ejection_time < period:
        raise ValueError(
            f"ejection_time must lie in (0, {period:.3f}) s for {heart_rate} bpm, "
            f"got {ejection_time}."
        )
    n = round(n_beats * period / dt)
    times = np.linspace(0.0, n_beats * period, n + 1)
    phase = np.mod(times, period)
    shape = np.where(phase < ejection_time, np.sin(np.pi * phase / ejection_time), 0.0)
    # Normalise on one sampled beat so the trapezoidal volume per beat is exact.
    beat = times <= period
    per_beat = np.trapezoid(shape[beat], times[beat])
    return tq.Signal("inflow", tuple(times), tuple(stroke_volume * shape / per_beat))


class Windkessel3(tq.Model):
    """Three-element Windkessel (Z, R, C) driven by measured aortic inflow."""

    name = "windkessel3"
    states = (
        "pressure_c",  # cmt 1: pressure across the compliance (mmHg)
        "inflow_lagged",  # cmt 2: inflow after the 5 ms input lag (mL/s)
    )
    default_dose_cmt = 1
    signals = ("inflow",)
    covariates = ("P0",)
    covariate_defaults: ClassVar = {"P0": 80.0}

    parameters = (
        tq.Parameter(
            "R", "mmHg·s/mL", 1.0, "total peripheral resistance",
            prior_sd=0.4, bsv_prior_scale=0.3, valid_range=(0.4, 3.0),
        ),
        tq.Parameter(
            "C", "mL/mmHg", 1.5, "total arterial compliance",
            prior_sd=0.5, bsv_prior_scale=0.4, valid_range=(0.3, 4.0),
        ),
        tq.Parameter(
            "Z", "mmHg·s/mL", 0.05, "characteristic impedance of the proximal aorta",
            prior_sd=0.6, bsv_prior_scale=0.4, valid_range=(0.01, 0.2),
        ),
    )
    outputs = (
        tq.Output(
            "pressure", "mmHg", "arterial (aortic root) blood pressure",
            error="additive", clinical_range=(60.0, 140.0), sigma_prior_scale=(3.0, 0.05),
        ),
    )
    # Non-stiff: the slowest time constant is R·C ≈ 1.5 s and the fastest the 5 ms input
    # lag, a ratio of ~300 that the explicit Tsit5 handles with steps of a few ms (the
    # inflow samples every ~10 ms bound the step size anyway). Pressure is O(100) mmHg and
    # flow O(100) mL/s: atol 1e-6 is negligible, rtol 1e-6 governs. A recording of
    # ~10 beats needs ~1000 steps.
    solver = tq.SolverSettings(method="tsit5", rtol=1e-6, atol=1e-6, max_steps=16384)

    card = tq.ModelCard(
        summary="Three-element Windkessel: arterial pressure from measured aortic inflow.",
        equations=(
            "dQf/dt = (Q(t) - Qf)/tau_f,  tau_f = 5 ms       (lagged inflow, mL/s)\n"
            "dPc/dt = (Qf - Pc/R)/C                          (compliance pressure, mmHg)\n"
            "P = Pc + Z·Qf                                   (arterial pressure, mmHg)\n"
            "Q(t): measured aortic inflow (signal 'inflow', mL/s)\n"
            "start: Pc(0) = P0 (covariate), Qf(0) = 0"
        ),
        time_unit="s",
        assumptions=(
            "The arterial tree behaves as one elastic chamber (compliance C) emptying "
            "through the small vessels (resistance R), behind the aortic impedance Z.",
            "Resistance and compliance are constant over the recording (pressure-"
            "independent).",
            "Venous pressure is negligible compared with arterial pressure.",
            "The measured inflow is the flow through the aortic valve.",
        ),
        limitations=(
            "Does not show pulse wave travel and reflections, so pressure wave shapes "
            "(e.g. the dicrotic notch, augmentation index) are only roughly reproduced.",
            "Does not model the heart itself: a change in heart function must be given "
            "as a changed inflow.",
            "Resistance and compliance are lumped over the whole body; regional changes "
            "(e.g. one narrowed artery) are not represented.",
            "The first beats after the start settle from the starting pressure P0 "
            "(about R·C ≈ 1.5 s); use several beats before comparing with data.",
        ),
        references=(
            "Westerhof N, Lankhaar JW, Westerhof BE. The arterial Windkessel. Med Biol "
            "Eng Comput. 2009;47(2):131-141.",
            "Westerhof N, Elzinga G, Sipkema P. An artificial arterial system for pumping "
            "hearts. J Appl Physiol. 1971;31(5):776-781.",
            "Stergiopulos N, Westerhof BE, Westerhof N. Total arterial inertance as the "
            "fourth element of the windkessel model. Am J Physiol. 1999;276(1):H81-H88.",
        ),
    )

    def rhs(self, t, y, theta, inputs, covariates):
        pc, qf = y[0], y[1]
        dqf = (inputs["inflow"] - qf) / TAU_FLOW
        dpc = (qf - pc / theta["R"]) / theta["C"]
        return jnp.stack([dpc, dqf])

    def y0(self, theta, covariates):
        p0 = jnp.asarray(covariates["P0"], dtype=jnp.asarray(theta["R"]).dtype)
        return jnp.stack([p0, jnp.zeros_like(p0)])

    def observe(self, y, theta):
        return jnp.stack([y[0] + theta["Z"] * y[1]])
