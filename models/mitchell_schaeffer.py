"""Mitchell-Schaeffer model of the cardiac action potential, paced by stimulus boluses.

Two variables: a dimensionless membrane potential ``v`` (0 at rest, about 1 at the peak)
and an inactivation gate ``h`` of the inward current. Time is in ms.

Pacing: each stimulus is a **bolus into compartment 1** (``v``): an instantaneous
depolarisation of amplitude ~0.2-0.3, i.e. a very short stimulus current ``J_stim``
integrated over its duration. :func:`pacing_schedule` builds a regular train. (A short
infusion into compartment 1, e.g. rate 0.1/ms for 2 ms, works too: it is ``J_stim``
itself; boluses are exact and cheaper for the solver.)

The gate switches between opening and closing when ``v`` crosses ``v_gate``. A hard
switch makes the right-hand side discontinuous, which an adaptive solver can only handle
by repeatedly rejecting steps at every crossing (and gradients through it are undefined).
It is replaced by a steep logistic switch of width ``GATE_WIDTH`` = 0.005 in ``v``; ``v``
crosses this band within about a millisecond during repolarisation, so action potential
durations change by much less than a millisecond.

Helpers: :func:`action_potential_durations` (APD at a threshold, APD90 by default),
:func:`restitution_curve` (steady-state APD against pacing cycle length by simulation) and
:func:`restitution_theory` (the closed-form restitution curve of Mitchell & Schaeffer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import twin_uq as tq

#: Width (in units of v) of the logistic switch that replaces the hard gate threshold.
GATE_WIDTH = 0.005


class MitchellSchaeffer(tq.Model):
    """Two-variable Mitchell-Schaeffer cardiac action potential model."""

    name = "mitchell_schaeffer"
    states = (
        "v",  # cmt 1: membrane potential (dimensionless, 0 rest, ~1 peak); stimuli go here
        "h",  # cmt 2: inactivation gate of the inward current (dimensionless, 0..1)
    )
    default_dose_cmt = 1

    parameters = (
        tq.Parameter(
            "tau_in", "ms", 0.3, "time constant of the inward (depolarising) current",
            prior_sd=0.3, bsv_prior_scale=0.2, valid_range=(0.05, 1.0),
        ),
        tq.Parameter(
            "tau_out", "ms", 6.0, "time constant of the outward (repolarising) current",
            prior_sd=0.3, bsv_prior_scale=0.2, valid_range=(1.0, 20.0),
        ),
        tq.Parameter(
            "tau_open", "ms", 120.0, "recovery (opening) time constant of the gate",
            prior_sd=0.4, bsv_prior_scale=0.3, valid_range=(30.0, 400.0),
        ),
        tq.Parameter(
            "tau_close", "ms", 150.0,
            "inactivation (closing) time constant of the gate; sets the APD",
            prior_sd=0.4, bsv_prior_scale=0.3, valid_range=(30.0, 400.0),
        ),
        tq.Parameter(
            "v_gate", "1", 0.13, "membrane potential at which the gate switches",
            prior_sd=0.3, bsv_prior_scale=0.2, valid_range=(0.05, 0.3),
        ),
    )
    outputs = (
        tq.Output(
            "v", "1", "membrane potential, rescaled (0 = rest, 1 = peak)",
            error="additive", clinical_range=(0.0, 1.0), sigma_prior_scale=(0.05, 0.05),
        ),
    )
    # Stiff: on the plateau (v ≈ 1) the inward current relaxes v with rate ~h/tau_in
    # ≈ 3/ms, while the action potential lasts ~200 ms; an explicit method would be held to
    # sub-millisecond steps for the whole plateau. The implicit Kvaerno5 steps through it.
    # v and h are O(1): rtol 1e-6 with atol 1e-8. A beat takes a few hundred steps.
    solver = tq.SolverSettings(method="kvaerno5", rtol=1e-6, atol=1e-8, max_steps=4096)

    card = tq.ModelCard(
        summary="Mitchell-Schaeffer two-variable cardiac action potential with pacing.",
        equations=(
            "dv/dt = h·v²·(1 - v)/tau_in - v/tau_out (+ J_stim: boluses into v)\n"
            "dh/dt = s(v)·(1 - h)/tau_open - (1 - s(v))·h/tau_close\n"
            f"s(v) = 1/(1 + exp((v - v_gate)/{GATE_WIDTH}))   "
            "(smooth form of: s = 1 if v < v_gate else 0)\n"
            "start: v = 0, h = 1 (rested cell)\n"
            "max APD ≈ tau_close·ln(tau_out/(4·tau_in)); "
            "APD(DI) ≈ tau_close·ln[(1 - (1 - h_min)·exp(-DI/tau_open))/h_min], "
            "h_min = 4·tau_in/tau_out"
        ),
        time_unit="ms",
        assumptions=(
            "One heart cell (or a small, uniformly activated piece of tissue).",
            "All ionic currents are lumped into one inward and one outward current.",
            "Potential is rescaled to 0 (rest) .. 1 (peak); it is not in millivolts.",
            "Each stimulus is an instantaneous depolarisation strong enough to excite a "
            "recovered cell.",
        ),
        limitations=(
            "Cannot say which ion channel is responsible for a change: drug or genetic "
            "effects must be mapped onto the four time constants.",
            "Describes one cell: no conduction, no wave propagation, no ECG.",
            "Potential is dimensionless; mapping to millivolts needs a separate scale.",
            "Calcium handling, and the alternans and arrhythmias that come from it, are "
            "not represented.",
        ),
        references=(
            "Mitchell CC, Schaeffer DG. A two-current model for the dynamics of cardiac "
            "membrane. Bull Math Biol. 2003;65(5):767-793.",
            "Nolasco JB, Dahlen RW. A graphic method for the study of alternation in "
            "cardiac action potentials. J Appl Physiol. 1968;25(2):191-196.",
            "Relan J, Chinchapatnam P, Sermesant M, et al. Coupled personalization of "
            "cardiac electrophysiology models for prediction of ischaemic ventricular "
            "tachycardia. Interface Focus. 2011;1(3):396-407.",
        ),
    )

    def rhs(self, t, y, theta, inputs, covariates):
        v, h = y[0], y[1]
        dv = h * v**2 * (1.0 - v) / theta["tau_in"] - v / theta["tau_out"]
        opening = jax.nn.sigmoid((theta["v_gate"] - v) / GATE_WIDTH)
        dh = opening * (1.0 - h) / theta["tau_open"] - (1.0 - opening) * h / theta["tau_close"]
        return jnp.stack([dv, dh])

    def y0(self, theta, covariates):
        one = jnp.ones_like(jnp.asarray(theta["tau_in"]))
        return jnp.stack([0.0 * one, one])

    def observe(self, y, theta):
        return y[:1]


def pacing_schedule(
    bcl: float, n_beats: int, amplitude: float = 0.3, start: float = 10.0
) -> tq.Schedule:
    """Regular pacing: ``n_beats`` stimulus boluses into ``v`` every ``bcl`` ms.

    Parameters
    ----------
    bcl
        Basic cycle length (ms), the interval between stimuli.
    n_beats
        Number of stimuli.
    amplitude
        Depolarisation per stimulus (dimensionless); must exceed the excitation threshold
        of a recovered cell (v with v·(1 - v) = tau_in/tau_out, ≈ 0.05 for typical
        values) with a margin, as the gate is not fully recovered at fast pacing.
    start
        Time of the first stimulus (ms).
    """
    return tq.Schedule.build(
        boluses=[tq.Bolus(start + k * bcl, amplitude, 1) for k in range(n_beats)]
    )


def action_potential_durations(
    times: Sequence[float] | np.ndarray,
    v: Sequence[float] | np.ndarray,
    repolarisation: float = 0.9,
    amplitude: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Durations of the action potentials in a sampled trace (APD90 by default).

    An action potential lasts from the upward to the next downward crossing of the level
    ``rest + (1 - repolarisation)·(peak - rest)``; crossing times are linearly interpolated
    between samples. A trace that starts above the level counts from its first sample; an
    action potential still running at the end of the trace is not counted.

    Parameters
    ----------
    times
        Sample times (ms), increasing, shape ``(n,)``.
    v
        Membrane potential at ``times``, shape ``(n,)``.
    repolarisation
        Fraction of repolarisation defining the end (0.9 gives APD90).
    amplitude
        ``(rest, peak)`` of the potential; the Mitchell-Schaeffer scale is (0, 1).

    Returns
    -------
    numpy.ndarray
        APDs in ms, one per complete action potential, in order.
    """
    t = np.asarray(times, dtype=float)
    x = np.asarray(v, dtype=float)
    rest, peak = amplitude
    level = rest + (1.0 - repolarisation) * (peak - rest)
    above = x > level
    ups: list[float] = [t[0]] if above[0] else []
    downs: list[float] = []
    for k in np.flatnonzero(above[1:] != above[:-1]):
        frac = (level - x[k]) / (x[k + 1] - x[k])
        crossing = t[k] + frac * (t[k + 1] - t[k])
        (ups if above[k + 1] else downs).append(crossing)
    apds: list[float] = []
    it = iter(downs)
    for u in ups:
        for d in it:
            if d > u:
                apds.append(d - u)
                break
    return np.asarray(apds)


def restitution_theory(
    di: float | np.ndarray, theta: dict[str, float] | None = None
) -> np.ndarray:
    """Closed-form APD restitution curve of Mitchell & Schaeffer (2003).

    ``APD(DI) = tau_close·ln[(1 - (1 - h_min)·exp(-DI/tau_open))/h_min]`` with
    ``h_min = 4·tau_in/tau_out``; asymptotically exact for ``tau_in ≪ tau_out``. At the
    typical values (``tau_in/tau_out = 0.05``) it underestimates the simulated APD90 by
    about 15-20%: use it for the shape of the curve, not for numbers.

    Parameters
    ----------
    di
        Diastolic interval(s) preceding the beat (ms).
    theta
        Parameters (defaults: the typical values).
    """
    th = _theta(theta)
    h_min = 4.0 * th["tau_in"] / th["tau_out"]
    di = np.asarray(di, dtype=float)
    return th["tau_close"] * np.log((1.0 - (1.0 - h_min) * np.exp(-di / th["tau_open"])) / h_min)


def restitution_curve(
    bcls: Sequence[float],
    theta: dict[str, float] | None = None,
    *,
    n_beats: int = 6,
    n_points: int = 400,
    amplitude: float = 0.3,
    simulate: Callable[..., Any] | None = None,
) -> dict[str, np.ndarray]:
    """Steady-state APD90 and diastolic interval at each pacing cycle length, by simulation.

    Each cycle length is paced for ``n_beats`` beats from rest; the last beat is sampled at
    ``n_points`` times (the same number for every ``bcl``, so one compiled solver serves
    all of them) and its APD90 measured.

    Parameters
    ----------
    bcls
        Basic cycle lengths (ms).
    theta
        Parameters (defaults: the typical values).
    n_beats, n_points, amplitude
        Beats paced, samples of the last beat, stimulus amplitude.
    simulate
        ``simulate(model, theta, schedule, times)`` returning an object with ``.outputs``
        of shape ``(n_points, 1)``; defaults to :func:`twin_uq.simulate`.

    Returns
    -------
    dict
        ``bcl``, ``apd`` and ``di`` (= ``bcl - apd``) arrays (ms).
    """
    if simulate is None:
        simulate = tq.simulate  # type: ignore[attr-defined]
    model = MitchellSchaeffer()
    th = {k: jnp.asarray(v) for k, v in _theta(theta).items()}
    start = 10.0
    apds = []
    for bcl in bcls:
        schedule = pacing_schedule(bcl, n_beats, amplitude, start)
        last = start + (n_beats - 1) * bcl
        times = jnp.linspace(last, last + bcl, n_points)
        v = np.asarray(simulate(model, th, schedule, times).outputs)[:, 0]
        found = action_potential_durations(np.asarray(times), v)
        apds.append(found[0] if found.size else np.nan)
    bcl_arr = np.asarray(bcls, dtype=float)
    apd_arr = np.asarray(apds)
    return {"bcl": bcl_arr, "apd": apd_arr, "di": bcl_arr - apd_arr}


def _theta(theta: dict[str, float] | None) -> dict[str, float]:
    typical = {p.name: p.typical for p in MitchellSchaeffer.parameters}
    return typical | dict(theta or {})
