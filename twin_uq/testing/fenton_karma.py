"""Virtual hearts from the Fenton-Karma three-variable cell model: restitution test data.

A cell model structurally different from (and more detailed than) the restitution map that
twin_uq fits (``mitchell_schaeffer_restitution``: one gate, a one-dimensional map
``APD = f(DI)``), for validating restitution fits, their intervals and alternans
probabilities against a known truth. It follows the equations of

* Fenton F, Karma A. Vortex dynamics in three-dimensional continuous myocardium with
  fiber rotation: filament instability and fibrillation. Chaos. 1998;8(1):20-47
  (equations 3-9; the membrane of one cell, no diffusion),

with the parameter set fitted there to the Luo-Rudy I model (column "MLR-I" of its
Table 1, :data:`MLR1`), whose restitution is graded over the clinical cycle lengths.
Three variables: the rescaled membrane potential ``u`` (0 at rest, 1 at the peak; ``V =
-85 + 100·u`` mV), the fast inward gate ``v`` and the slow inward gate ``w``::

    du/dt = -(J_fi + J_so + J_si) + J_stim
    J_fi = -v·p(u - u_c)·(1 - u)·(u - u_c)/tau_d
    J_so = u·(1 - p(u - u_c))/tau_0 + p(u - u_c)/tau_r
    J_si = -w·(1 + tanh(k·(u - u_csi)))/(2·tau_si)
    dv/dt = (1 - p)·(1 - v)/tau_v^-(u) - p·v/tau_vp,  tau_v^-(u) = q·tau_v1m + (1 - q)·tau_v2m
    dw/dt = (1 - p)·(1 - w)/tau_wm - p·w/tau_wp

with ``p = H(u - u_c)``, ``q = H(u - u_v)`` (Heaviside). Each stimulus is a square
current ``J_stim`` (default 0.5/ms for 1 ms).

Integrated on a fixed grid (default ``dt`` = 0.02 ms): ``u`` by forward Euler, the gates
``v`` and ``w`` by the exact exponential update for ``u`` held over the step (Rush &
Larsen 1978), as is usual for cardiac cell models (Fenton & Karma integrated theirs by
forward Euler). Compiled with JAX and vectorised over patients; APD90 is the time from the
upward to the downward crossing of ``u = 0.1`` (90 % repolarisation of the 0..1 scale),
linearly interpolated within a step. This is test data: no gradients are needed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

__all__ = [
    "COHORT_TYPICAL",
    "MLR1",
    "PARAMETER_NAMES",
    "RestitutionCohort",
    "fk_beats",
    "fk_rest_state",
    "sample_parameters",
    "simulate_restitution_cohort",
]

#: Fenton & Karma (1998), Table 1, column MLR-I (times in ms; u_c, u_v, u_csi on the 0..1
#: scale of u; k dimensionless). tau_d = C_m/g_fi with g_fi = 5.8 mS/cm² and C_m = 1 µF/cm².
MLR1: Mapping[str, float] = {
    "tau_d": 1.0 / 5.8,
    "tau_r": 130.0,
    "tau_si": 127.0,
    "tau_0": 12.5,
    "tau_vp": 10.0,
    "tau_v1m": 18.2,
    "tau_v2m": 18.2,
    "tau_wp": 1020.0,
    "tau_wm": 80.0,
    "u_c": 0.13,
    "u_v": 0.0,
    "u_csi": 0.85,
    "k": 10.0,
}
PARAMETER_NAMES: tuple[str, ...] = tuple(MLR1)

#: Level of u at which APD90 is measured (90 % repolarisation of the 0..1 scale).
APD_LEVEL = 0.1

#: Between-patient variability (log-normal SD) of the parameters varied by
#: :func:`sample_parameters`; the plateau balance (tau_r against tau_si) sets the APD so
#: sharply that those two vary little, while the slow gate's recovery (tau_wm, the
#: steepness of restitution) and inactivation (tau_wp, the plateau length) vary more.
VARIABILITY: Mapping[str, float] = {
    "tau_r": 0.03,
    "tau_si": 0.03,
    "tau_wp": 0.10,
    "tau_wm": 0.30,
    "tau_vp": 0.15,
}


def _step_fn(dt: float, stim_duration: float, stim_amplitude: float):
    """One step ``(u, v, w, up, down), k -> same``; all ``(N,)`` arrays, ``k`` the step index."""

    def step(carry, k, P):
        u, v, w, up, down = carry
        t = k * dt
        p = u >= P["u_c"]
        q = u >= P["u_v"]
        j_fi = -v * p * (1.0 - u) * (u - P["u_c"]) / P["tau_d"]
        j_so = jnp.where(p, 1.0 / P["tau_r"], u / P["tau_0"])
        j_si = -w * (1.0 + jnp.tanh(P["k"] * (u - P["u_csi"]))) / (2.0 * P["tau_si"])
        j_stim = jnp.where(t < stim_duration, stim_amplitude, 0.0)
        u_next = u + dt * (j_stim - (j_fi + j_so + j_si))
        # Rush-Larsen: each gate relaxes exponentially towards its target for u held fixed.
        tau_v = jnp.where(p, P["tau_vp"], jnp.where(q, P["tau_v1m"], P["tau_v2m"]))
        tau_w = jnp.where(p, P["tau_wp"], P["tau_wm"])
        target = jnp.where(p, 0.0, 1.0)
        v_next = target + (v - target) * jnp.exp(-dt / tau_v)
        w_next = target + (w - target) * jnp.exp(-dt / tau_w)
        du = jnp.where(u_next == u, 1.0, u_next - u)
        crossing = t + dt * (APD_LEVEL - u) / du
        rise = (u <= APD_LEVEL) & (u_next > APD_LEVEL) & jnp.isnan(up)
        fall = (u > APD_LEVEL) & (u_next <= APD_LEVEL) & ~jnp.isnan(up) & jnp.isnan(down)
        up = jnp.where(rise, crossing, up)
        down = jnp.where(fall, crossing, down)
        return (u_next, v_next, w_next, up, down), None

    return step


@lru_cache(maxsize=64)
def _beat(n_steps: int, dt: float, stim_duration: float, stim_amplitude: float):
    """A compiled beat of ``n_steps`` steps: ``(P, state (3, N)) -> (state, apd (N,))``."""
    step = _step_fn(dt, stim_duration, stim_amplitude)

    def beat(P, state):
        nan = jnp.full_like(state[0], jnp.nan)
        # A cell still above the level when the stimulus comes (no repolarisation since
        # the previous one: 2:1 block) has no action potential of its own in this beat.
        up0 = jnp.where(state[0] > APD_LEVEL, -jnp.inf, nan)
        carry = (state[0], state[1], state[2], up0, nan)
        (u, v, w, up, down), _ = jax.lax.scan(
            lambda c, k: step(c, k, P), carry, jnp.arange(n_steps)
        )
        apd = jnp.where(jnp.isfinite(up), down - up, jnp.nan)
        return jnp.stack([u, v, w]), apd

    return jax.jit(beat)


def fk_rest_state(n: int) -> np.ndarray:
    """The resting state ``(3, n)``: ``u = 0``, gates open (``v = w = 1``)."""
    return np.stack([np.zeros(n), np.ones(n), np.ones(n)])


def fk_beats(
    params: Mapping[str, np.ndarray],
    bcl: float,
    n_beats: int,
    state: np.ndarray,
    *,
    dt: float = 0.02,
    stimulus: tuple[float, float] = (1.0, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """Pace ``n_beats`` beats at cycle length ``bcl`` (ms) from ``state``.

    Parameters
    ----------
    params
        Each name of :data:`PARAMETER_NAMES` mapped to a scalar or an ``(N,)`` array.
    bcl
        Basic cycle length (ms); rounded to a whole number of steps.
    state
        ``(3, N)`` values of ``u, v, w`` at the first stimulus.
    dt
        Step (ms).
    stimulus
        ``(duration ms, amplitude 1/ms)`` of the square stimulus current at each beat's start.

    Returns
    -------
    state, apd
        The state at the end ``(3, N)``; APD90 of each beat ``(n_beats, N)`` in ms, NaN
        where the stimulus did not start an action potential that ended within the beat
        (block, or no repolarisation before the next stimulus).
    """
    beat = _beat(round(bcl / dt), float(dt), float(stimulus[0]), float(stimulus[1]))
    n = np.shape(state)[1]
    P = {k: jnp.broadcast_to(jnp.asarray(params[k], dtype=float), (n,)) for k in PARAMETER_NAMES}
    y = jnp.asarray(state, dtype=float)
    apds = []
    for _ in range(n_beats):
        y, apd = beat(P, y)
        apds.append(np.asarray(apd))
    return np.asarray(y), np.stack(apds)


#: Centre of the simulated cohort: :data:`MLR1` with a stronger slow inward current
#: (``tau_si`` 113 instead of 127 ms), which lengthens the plateau (APD90 about 330 ms at
#: 1000 ms pacing) and steepens restitution, so that part of the cohort alternates at
#: clinically fast rates (the MLR-I values themselves give no alternans above 200 ms).
COHORT_TYPICAL: Mapping[str, float] = {**MLR1, "tau_si": 113.0}


def sample_parameters(
    n: int,
    rng: np.random.Generator,
    variability: Mapping[str, float] | None = None,
    typical: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """``n`` virtual patients: log-normal variability around ``typical`` (:data:`COHORT_TYPICAL`)."""
    spread = dict(VARIABILITY if variability is None else variability)
    centre = dict(COHORT_TYPICAL if typical is None else typical)
    out = {}
    for name, typical_value in centre.items():
        sd = spread.get(name, 0.0)
        draw = np.exp(sd * rng.standard_normal(n)) if sd else np.ones(n)
        out[name] = typical_value * draw
    return out


@dataclass(frozen=True)
class RestitutionCohort:
    """A simulated restitution study.

    Attributes
    ----------
    data
        Long table ``id, time, output, dv``: ``time`` is the **pacing cycle length** (ms),
        ``dv`` the measured steady-state APD90 (ms) at it, ``output`` = ``"apd90"``; rows
        by patient and increasing cycle length (the protocol paced them slowest first).
    truth
        One row per patient: the cell parameters, the noise-free steady-state APD90 at
        each cycle length of the protocol (``apd_<bcl>``), and at ``alternans_bcl``:
        ``alternans_amplitude`` (ms, |APD difference| of the last two beats),
        ``block`` (a stimulus did not capture) and ``alternans`` (amplitude above
        ``alternans_threshold`` or block).
    bcls
        The protocol's cycle lengths (ms), slowest first.
    alternans_bcl, alternans_threshold
        The fast cycle length (ms) of the alternans question and the threshold (ms).
    """

    data: pd.DataFrame
    truth: pd.DataFrame
    bcls: tuple[float, ...]
    alternans_bcl: float
    alternans_threshold: float


def simulate_restitution_cohort(
    n_patients: int,
    bcls: Sequence[float] = (1000, 800, 600, 500, 430, 370, 330, 300),
    *,
    seed: int = 0,
    noise_sd: float = 4.0,
    beats_per_bcl: int = 20,
    alternans_bcl: float = 240.0,
    alternans_beats: int = 40,
    alternans_threshold: float = 5.0,
    variability: Mapping[str, float] | None = None,
    dt: float = 0.02,
) -> RestitutionCohort:
    """Dynamic restitution protocol on ``n_patients`` virtual patients, with the truth.

    Each patient is paced from rest at each cycle length of ``bcls`` in turn (slowest
    first, ``beats_per_bcl`` beats each, as in a clinical dynamic restitution protocol);
    the steady-state APD90 at a cycle length is the mean of its last two beats, measured
    with Gaussian noise of SD ``noise_sd`` ms. Pacing then continues at ``alternans_bcl``
    for ``alternans_beats`` beats, and the last two beats decide the truth of the alternans
    question.

    A cycle length at which the patient's cell does not follow 1:1 (a NaN APD in the last
    two beats) has no measurement: a real protocol stops or records block there. Rows are
    never filled in.
    """
    bcls = tuple(float(b) for b in bcls)
    if any(b2 >= b1 for b1, b2 in itertools.pairwise(bcls)):
        raise ValueError(f"bcls must decrease (slowest first); got {bcls}.")
    if not alternans_bcl < bcls[-1]:
        raise ValueError(f"alternans_bcl ({alternans_bcl}) must be faster than {bcls[-1]}.")
    rng = np.random.default_rng(seed)
    params = sample_parameters(n_patients, rng, variability)
    state = fk_rest_state(n_patients)
    steady = np.full((len(bcls), n_patients), np.nan)
    for j, bcl in enumerate(bcls):
        state, apd = fk_beats(params, bcl, beats_per_bcl, state, dt=dt)
        steady[j] = apd[-2:].mean(axis=0)  # NaN when either beat failed
    state, apd = fk_beats(params, alternans_bcl, alternans_beats, state, dt=dt)
    last = apd[-2:]
    block = np.isnan(last).any(axis=0)
    amplitude = np.abs(last[1] - last[0])
    noise = noise_sd * rng.standard_normal(steady.shape)
    # Rows by increasing cycle length (the model's axis), whatever order they were paced in.
    rows = [
        {"id": f"P{i:03d}", "time": bcls[j], "output": "apd90", "dv": steady[j, i] + noise[j, i]}
        for i in range(n_patients)
        for j in reversed(range(len(bcls)))
        if np.isfinite(steady[j, i])
    ]
    truth = pd.DataFrame(
        {
            "id": [f"P{i:03d}" for i in range(n_patients)],
            **{name: params[name] for name in PARAMETER_NAMES},
            **{f"apd_{bcl:g}": steady[j] for j, bcl in enumerate(bcls)},
            "alternans_amplitude": amplitude,
            "block": block,
            "alternans": block | (amplitude > alternans_threshold),
        }
    )
    return RestitutionCohort(
        data=pd.DataFrame(rows),
        truth=truth,
        bcls=bcls,
        alternans_bcl=float(alternans_bcl),
        alternans_threshold=float(alternans_threshold),
    )
