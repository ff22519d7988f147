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

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

import twin_uq as tq
from twin_uq.errors import InputError, UnavailableError

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
    # lag (eigenvalues -1/(RC) and -200/s), a ratio of ~300. An explicit solver is stable
    # for steps below ~14 ms (RK4: |λh| < 2.78), and the inflow's knots (every 5-10 ms)
    # bound every step anyway: the steps are set by the data, not by stability, so an
    # implicit solver would buy nothing. Adaptive Tsit5 stops at every knot too, and its
    # step-size machinery and forward sensitivities cost 16 times more per gradient than
    # classical RK4 on the grid of knots (9.9 ms against 0.63 ms for a 6-patient cohort
    # of two beats, 2026-12-08). So: RK4 with steps of at most 5 ms (and a point at every
    # knot and sample). Its largest error over two beats is 0.004-0.01 mmHg against a
    # Tsit5 solve at rtol 1e-11 (R·C from 0.4 to 4 s), under 1 % of a transducer's 2 mmHg;
    # a fit re-solves some draws with the adaptive reference (rtol/atol below) and reports
    # the difference.
    solver = tq.SolverSettings(
        method="rk4", fixed_step=0.0025, rtol=1e-6, atol=1e-6, max_steps=16384
    )

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


def resistance_what_if(
    twin,
    factor: float,
    inflow: tq.Signal,
    period: float,
    *,
    beats: int = 12,
    interval: float = 0.9,
    threshold: float | None = None,
    draws: int | None = None,
) -> dict:
    """Pressure once a change of peripheral resistance has settled, for every posterior draw.

    Each of the twin's draws is simulated twice from the patient's starting pressure ``P0``
    under the periodic ``inflow``: as fitted, and with ``R`` multiplied by ``factor`` (e.g.
    0.8, a vasodilator lowering resistance by 20 %). The last of ``beats`` beats is read
    (12 beats at 0.8 s are about 6 ``R·C``: the start has settled) for its systolic
    (maximum), diastolic (minimum) and mean pressure (mmHg), noise-free: the intervals are
    those of the parameters, not of a measurement. A change of the model's parameter, not a
    model of the drug.

    Parameters
    ----------
    twin
        A ``windkessel3`` twin (``post.twin(pid)``).
    factor
        Multiplier of ``R`` (> 0).
    inflow
        The aortic inflow (mL/s) over at least ``beats · period`` s (e.g.
        :func:`half_sine_inflow`, or the patient's measured beat repeated).
    period
        Beat period (s).
    beats, interval, draws
        Beats simulated, central interval in (0, 1), posterior draws used (default all).
    threshold
        Mean pressure (mmHg): adds the probability that the mean pressure after the change
        is below it, with its Monte Carlo standard error ``sqrt(p (1 - p) / ess)``: ``ess``
        the effective sample size of the indicator over the chains when every draw is used
        and solved, else the number of draws used.

    Returns
    -------
    dict
        ``before`` and ``after``: ``{"systolic"|"diastolic"|"mean": (median, lower,
        upper)}``; ``n_draws`` (draws with a successful solve in both), ``n_failed``
        (excluded and counted, never imputed); with ``threshold``: ``p_below``, ``mcse``,
        ``ess``.
    """
    import arviz_stats as azs  # the library's ESS, as the twin's own probabilities use

    if not factor > 0:
        raise InputError(f"resistance_what_if: factor must be > 0, got {factor!r}.")
    if int(beats) < 1 or not period > 0:
        raise InputError(
            f"resistance_what_if: need beats >= 1 and period > 0 s, got {beats!r}, {period!r}."
        )
    end = beats * period
    if float(np.max(inflow.times)) < end - 1e-9:
        raise InputError(
            f"resistance_what_if: the inflow ends at {float(np.max(inflow.times)):g} s, before "
            f"the {beats} beats ({end:g} s) to simulate."
        )
    schedule = tq.Schedule.build(signals=[inflow], signal_names=twin.model.signals)
    times = np.linspace((beats - 1) * period, end, 161)
    k_r = twin.model.parameter_names.index("R")
    summaries = []
    for f in (1.0, factor):
        theta = np.array(twin.theta, dtype=float)
        theta[:, k_r] *= f
        changed = type(twin)(dataclasses.replace(twin.posterior, theta=theta))
        ds = changed.predict(times, schedule=schedule, interval=interval, draws=draws)
        asked = int(ds.attrs["n_draws"] + ds.attrs["n_failed_draws"])
        # Rows of draws not asked for or whose solve failed stay NaN.
        p = np.full((twin.n_draws, times.size), np.nan)
        p[ds["draw"].values] = ds["f"].sel(output="pressure").values
        summaries.append(
            np.stack([p.max(axis=1), p.min(axis=1), np.trapezoid(p, times, axis=1) / period], 1)
        )
    good = np.isfinite(summaries[0]).all(axis=1) & np.isfinite(summaries[1]).all(axis=1)
    if not good.any():
        raise UnavailableError(
            f"Patient {twin.patient_id}: the solve failed at every posterior draw of the what-if."
        )
    a = (1.0 - interval) / 2.0
    out = {"factor": float(factor), "n_draws": int(good.sum())}
    out["n_failed"] = asked - int(good.sum())
    for name, x in zip(("before", "after"), summaries, strict=True):
        q = np.quantile(x[good], [0.5, a, 1.0 - a], axis=0)
        out[name] = {
            k: tuple(float(v) for v in q[:, j])
            for j, k in enumerate(("systolic", "diastolic", "mean"))
        }
    if threshold is not None:
        hit = (summaries[1][good, 2] < threshold).astype(float)
        prob = float(hit.mean())
        ess = float(hit.size)
        chains = int(twin.n_chains)
        # The chains' autocorrelation counts only with every draw in its place.
        if good.all() and hit.size % chains == 0 and 0.0 < prob < 1.0:
            est = float(azs.ess(hit.reshape(chains, -1)))
            ess = min(est, ess) if np.isfinite(est) else ess
        mcse = float(np.sqrt(prob * (1 - prob) / ess))
        out.update(threshold=float(threshold), p_below=prob, mcse=mcse, ess=ess)
    return out
