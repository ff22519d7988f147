"""Virtual arteries from the four-element Windkessel: beat-resolved aortic pressure test data.

A model structurally different from (and more detailed than) the three-element Windkessel
that twin_uq fits (``windkessel3``: impedance ``Z`` in series with ``R || C``), for
validating pressure-waveform fits, their intervals and what-if predictions against a known
truth. It is the parallel four-element Windkessel of

* Stergiopulos N, Westerhof BE, Westerhof N. Total arterial inertance as the fourth
  element of the windkessel model. Am J Physiol. 1999;276(1):H81-H88,

in which the total arterial inertance ``L`` sits in parallel with ``Z``: at the high
frequencies of ejection the flow passes ``Z``, at low frequencies ``L`` short-circuits it.
With ``Q(t)`` the prescribed aortic inflow (mL/s), ``Pc`` the pressure across the
compliance and ``QL`` the flow through the inertance::

    C·dPc/dt = Q - Pc/R
    L·dQL/dt = Z·(Q - QL)
    P = Pc + Z·(Q - QL)          (aortic pressure, mmHg)

Both states obey linear first-order equations with the flow as input; each is advanced
exactly for a flow linear within a step (first-order hold) on a fine grid (default
``dt`` = 0.1 ms, on which a half-sine ejection of 300 ms is linear to 1e-7 of its peak), so
the waveform is the solution of these equations, not of a numerical scheme of the fitted
model's kind. The flow is a half-sine ejection per beat (:func:`half_sine_flow`, exact in
continuous time); pacing continues from rest until the beats repeat (periodic steady
state) before the recording starts.

Units: time s, pressure mmHg, flow mL/s, ``R`` and ``Z`` mmHg·s/mL, ``C`` mL/mmHg,
``L`` mmHg·s²/mL. This is test data: no gradients are needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

__all__ = [
    "PARAMETER_NAMES",
    "TYPICAL",
    "VARIABILITY",
    "PressureCohort",
    "cohort_table",
    "half_sine_flow",
    "simulate_pressure_cohort",
    "wk4_pressure",
]

PARAMETER_NAMES: tuple[str, ...] = ("R", "C", "Z", "L")

#: Typical adult values (Stergiopulos et al. 1999, Table 2, order of magnitude): R·C about
#: 1.4 s, L/Z about 0.13 s.
TYPICAL: Mapping[str, float] = {"R": 1.0, "C": 1.4, "Z": 0.045, "L": 0.006}

#: Between-patient variability (log-normal SD) of each parameter.
VARIABILITY: Mapping[str, float] = {"R": 0.25, "C": 0.3, "Z": 0.3, "L": 0.3}


def half_sine_flow(
    t: np.ndarray, stroke_volume: float, heart_rate: float, ejection_time: float
) -> np.ndarray:
    """Aortic inflow (mL/s) at times ``t`` (s): a half-sine ejection at each beat's start.

    The amplitude ``pi·SV/(2·T_ej)`` ejects exactly ``stroke_volume`` mL per beat.
    """
    period = 60.0 / heart_rate
    phase = np.mod(t, period)
    peak = np.pi * stroke_volume / (2.0 * ejection_time)
    return np.where(phase < ejection_time, peak * np.sin(np.pi * phase / ejection_time), 0.0)


def _first_order(q: np.ndarray, x0: float, tau: float, gain: float, dt: float) -> np.ndarray:
    """Exact solution of ``dx/dt = -x/tau + gain·Q`` on a grid, ``Q`` linear within steps."""
    e = np.exp(-dt / tau)
    # x1 = e·x0 + gain·tau·[Q0·(1 - e) + (Q1 - Q0)·(1 - tau·(1 - e)/dt)]
    c1 = gain * tau * (1.0 - tau * (1.0 - e) / dt)
    c0 = gain * tau * (1.0 - e) - c1
    # x[k] = e·x[k-1] + c1·q[k] + c0·q[k-1] as an IIR filter; the initial condition of its
    # transposed direct form, x0 - c1·q[0], makes x[0] = x0 and the recursion exact after.
    x, _ = lfilter([c1, c0], [1.0, -e], q, zi=[x0 - c1 * q[0]])
    return x


def wk4_pressure(
    params: Mapping[str, float],
    duration: float,
    *,
    stroke_volume: float = 70.0,
    heart_rate: float = 75.0,
    ejection_time: float = 0.3,
    dt: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodic-steady-state aortic pressure of one four-element Windkessel.

    The recording starts at the start of a beat, in the periodic steady state: for each
    state ``x`` (linear, first order, periodic input) one beat from ``x = 0`` gives the
    forced response ``x_P``, and the periodic start is ``x_P / (1 - exp(-period/tau))``
    (exact for the discrete recursion, the beat being a whole number of steps), as if
    paced from rest for ever.

    Parameters
    ----------
    params
        ``R``, ``C``, ``Z``, ``L`` (units in the module text).
    duration
        Length of the recording (s).
    dt
        Step (s); the beat period is rounded to a whole number of steps.

    Returns
    -------
    times, pressure, flow
        ``(T,)`` grid from 0 to ``duration`` every ``dt`` s, the pressure (mmHg) and the
        inflow (mL/s) there.
    """
    n_beat = round(60.0 / heart_rate / dt)
    period = n_beat * dt
    R, C, Z, L = (float(params[k]) for k in PARAMETER_NAMES)
    flow = {"stroke_volume": stroke_volume, "heart_rate": 60.0 / period}
    t = np.arange(round(duration / dt) + 1) * dt
    q = half_sine_flow(t, ejection_time=ejection_time, **flow)
    beat = half_sine_flow(np.arange(n_beat + 1) * dt, ejection_time=ejection_time, **flow)
    states = []
    for tau, gain in ((R * C, 1.0 / C), (L / Z, Z / L)):
        forced = _first_order(beat, 0.0, tau, gain, dt)[-1]
        start = forced / -np.expm1(-period / tau)
        states.append(_first_order(q, start, tau, gain, dt))
    pc, ql = states
    return t, pc + Z * (q - ql), q


@dataclass(frozen=True)
class PressureCohort:
    """A simulated pressure-waveform study.

    Attributes
    ----------
    data
        Long table ``id, time, output, dv, P0``: ``time`` in s from the start of the
        recording, ``dv`` the measured aortic pressure (mmHg) with autocorrelated noise,
        ``output`` = ``"pressure"``, ``P0`` the first measured pressure (the starting
        pressure the fitted model needs, as a covariate).
    inflow
        ``(times, values)`` of the measured inflow (mL/s), sampled every ``flow_dt`` s over
        the recording: the signal ``inflow`` of ``windkessel3``.
    truth
        One row per patient: ``R``, ``C``, ``Z``, ``L``; the noise-free ``mean_pressure``,
        ``systolic`` and ``diastolic`` (mmHg, over the recording); and for the what-if
        (resistance multiplied by ``whatif_factor``) ``whatif_mean_pressure``,
        ``whatif_systolic``, ``whatif_diastolic``.
    noise_sd, noise_tau, whatif_factor
        The noise (SD mmHg, correlation time s) and the factor of the what-if.
    """

    data: pd.DataFrame
    inflow: tuple[np.ndarray, np.ndarray]
    truth: pd.DataFrame
    noise_sd: float
    noise_tau: float
    whatif_factor: float


def simulate_pressure_cohort(
    n_patients: int,
    *,
    seed: int = 0,
    n_beats: int = 3,
    sample_dt: float = 0.01,
    flow_dt: float = 0.005,
    noise_sd: float = 2.0,
    noise_tau: float = 0.03,
    whatif_factor: float = 0.8,
    stroke_volume: float = 70.0,
    heart_rate: float = 75.0,
    ejection_time: float = 0.3,
    variability: Mapping[str, float] | None = None,
    typical: Mapping[str, float] | None = None,
) -> PressureCohort:
    """Beat-resolved aortic pressure of ``n_patients`` virtual patients, with the truth.

    Each patient's four elements are log-normal around ``typical`` (:data:`TYPICAL`) with
    SDs ``variability`` (:data:`VARIABILITY`); all share the prescribed inflow (a
    half-sine ejection of ``stroke_volume`` mL at ``heart_rate`` bpm). Pressure is
    recorded over ``n_beats`` beats at periodic steady state, every ``sample_dt`` s, with
    Gaussian noise of SD ``noise_sd`` mmHg correlated as an Ornstein-Uhlenbeck process
    (correlation ``exp(-dt/noise_tau)``), as the filtering of a pressure transducer and
    beat-to-beat variation produce. The what-if truth repeats the simulation with ``R``
    multiplied by ``whatif_factor`` (a vasodilator), all else equal.
    """
    rng = np.random.default_rng(seed)
    spread = dict(VARIABILITY if variability is None else variability)
    centre = dict(TYPICAL if typical is None else typical)
    params = {
        k: centre[k] * np.exp(spread.get(k, 0.0) * rng.standard_normal(n_patients))
        for k in PARAMETER_NAMES
    }
    duration = n_beats * 60.0 / heart_rate
    flow = dict(stroke_volume=stroke_volume, heart_rate=heart_rate, ejection_time=ejection_time)
    n_obs = round(duration / sample_dt)
    obs_times = np.arange(n_obs) * sample_dt
    rho = np.exp(-sample_dt / noise_tau)
    rows, truth = [], []
    for i in range(n_patients):
        th = {k: float(params[k][i]) for k in PARAMETER_NAMES}
        t, p, _ = wk4_pressure(th, duration, **flow)
        t_w, p_w, _ = wk4_pressure({**th, "R": th["R"] * whatif_factor}, duration, **flow)
        clean = np.interp(obs_times, t, p)
        # Stationary AR(1) on the equally spaced grid: the OU process sampled every sample_dt.
        eps = np.empty(n_obs)
        eps[0] = rng.standard_normal()
        for j in range(1, n_obs):
            eps[j] = rho * eps[j - 1] + np.sqrt(1.0 - rho**2) * rng.standard_normal()
        dv = clean + noise_sd * eps
        pid = f"W{i:03d}"
        rows.append(
            pd.DataFrame(
                {"id": pid, "time": obs_times, "output": "pressure", "dv": dv, "P0": dv[0]}
            )
        )
        # Means over whole beats: trapezoid on the fine grid over the recording.
        truth.append(
            {
                "id": pid,
                **th,
                "mean_pressure": float(np.trapezoid(p, t) / duration),
                "systolic": float(p.max()),
                "diastolic": float(p.min()),
                "whatif_mean_pressure": float(np.trapezoid(p_w, t_w) / duration),
                "whatif_systolic": float(p_w.max()),
                "whatif_diastolic": float(p_w.min()),
            }
        )
    flow_times = np.arange(round(duration / flow_dt) + 1) * flow_dt
    return PressureCohort(
        data=pd.concat(rows, ignore_index=True),
        inflow=(flow_times, half_sine_flow(flow_times, **flow)),
        truth=pd.DataFrame(truth),
        noise_sd=float(noise_sd),
        noise_tau=float(noise_tau),
        whatif_factor=float(whatif_factor),
    )


def cohort_table(sim: PressureCohort) -> pd.DataFrame:
    """The cohort table ``windkessel3`` is fitted to: pressure rows and ``inflow`` signal rows.

    Each patient's pressure samples (``evid`` 0, ``inflow`` empty) and the measured inflow
    as covariate-only rows (``evid`` 2, ``dv`` empty, ``inflow`` in mL/s at each flow
    sample), sorted by patient, time and ``evid``; ``P0`` on every row.
    """
    flow_t, flow_q = sim.inflow
    rows = []
    for pid, obs in sim.data.groupby("id", sort=False):
        rows.append(obs.assign(evid=0, inflow=np.nan))
        rows.append(
            pd.DataFrame(
                {
                    "id": pid,
                    "time": flow_t,
                    "output": "pressure",
                    "dv": np.nan,
                    "P0": float(obs["P0"].iloc[0]),
                    "evid": 2,
                    "inflow": flow_q,
                }
            )
        )
    return pd.concat(rows, ignore_index=True).sort_values(["id", "time", "evid"], kind="stable")
