"""The adaptive ODE and fixed-step paths consuming resolved dose events whose times,
amounts and rates move with the parameters (lag, F, modelled duration), a set of the
state that depends on them (as a steady state), and resets.

The events here are written by hand as functions of ``theta`` (the fields of
``DoseEvents``), so that these tests check the solvers' side of the contract: the event
arithmetic and the sensitivity jump conditions. References are independent: a
matrix-exponential propagation written below; gradients against central differences of
it. (Records through the public solve, both paths and a nonlinear model:
``test_dose_records_on_solvers.py``.)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import twin_uq as tq
from twin_uq.model.base import SolverSettings
from twin_uq.simulate import Schedule
from twin_uq.simulate.ode import _integrate
from twin_uq.simulate.schedule import PatientInputs
from twin_uq.simulate.status import SolveStatus

TIGHT_ODE = SolverSettings("tsit5", rtol=1e-10, atol=1e-12)
NOCOV = jnp.zeros(0)


class OralWithDoseParameters(tq.Model):
    """Oral one-compartment PK with a sink; lag, F and an infusion duration as parameters."""

    name = "oral_with_dose_parameters"
    states = ("depot", "central", "eliminated")
    parameters = (
        tq.Parameter("ka", "1/h", 1.0),
        tq.Parameter("CL", "L/h", 5.0),
        tq.Parameter("V", "L", 50.0),
        tq.Parameter("lag", "h", 0.5),
        tq.Parameter("F", "1", 0.8),
        tq.Parameter("D", "h", 2.0),
    )
    outputs = (tq.Output("concentration", "mg/L"),)
    card = tq.ModelCard("test", "test", "h")
    solver = TIGHT_ODE

    def rhs(self, t, y, theta, inputs, covariates):
        return self.matrix(theta) @ y

    def matrix(self, theta):
        ka, k = theta["ka"], theta["CL"] / theta["V"]
        z = jnp.zeros_like(ka)
        return jnp.stack([jnp.stack([-ka, z, z]), jnp.stack([ka, -k, z]), jnp.stack([z, k, z])])

    def observe(self, y, theta):
        return y[1:2] / theta["V"]


class Events(NamedTuple):
    """The fields of ``DoseEvents`` (DESIGN §4), built by hand for these tests."""

    time: jnp.ndarray
    order: jnp.ndarray
    keep: jnp.ndarray
    set_state: jnp.ndarray
    jump: jnp.ndarray
    rate_change: jnp.ndarray
    mask: jnp.ndarray


def make_events(rows, n, dtype=float, set_state=None):
    """``rows``: (time, order, keep, cmt or None, jump amount, rate change, mask);
    ``set_state`` ``(E, n)`` (default zeros)."""

    def onehot(c, v):
        return jnp.zeros(n, dtype) if c is None else jnp.zeros(n, dtype).at[c].set(v)

    return Events(
        time=jnp.stack([jnp.asarray(r[0], dtype) for r in rows]),
        order=jnp.asarray([r[1] for r in rows], jnp.int32),
        keep=jnp.asarray([r[2] for r in rows], dtype),
        set_state=jnp.zeros((len(rows), n), dtype) if set_state is None else set_state,
        jump=jnp.stack([onehot(r[3], r[4]) for r in rows]),
        rate_change=jnp.stack([onehot(r[3], r[5]) for r in rows]),
        mask=jnp.asarray([r[6] for r in rows]),
    )


def oral_events(theta, t_end):
    """A lagged oral dose F·100 at 1 + lag; an infusion of F·60 into the central
    compartment over the modelled duration D from 3 + lag; at 9 a steady-state-like set
    (keep 0, the state set to a vector that depends on ka and F, listed before the dose
    at 9 it must precede); a reset at 14 then a bolus of 40 (not lagged) at 14; a padding
    row; a lagged dose past the end."""
    ka, _, _, lag, F, D = theta
    rate = F * 60.0 / D
    clip = lambda t: jnp.clip(t, 0.0, t_end)  # noqa: E731
    rows = [
        (clip(1.0 + lag), 2, 1.0, 0, F * 100.0, 0.0, True),
        (clip(3.0 + lag), 2, 1.0, 1, 0.0, rate, True),
        (clip(3.0 + lag + D), 2, 1.0, 1, 0.0, -rate, True),
        (14.0, 2, 1.0, 0, 40.0, 0.0, True),
        (14.0, 0, 0.0, None, 0.0, 0.0, True),  # the reset: listed after, acts first
        (7.0, 2, 1.0, 0, 999.0, 0.0, False),
        (clip(40.0 + lag), 2, 1.0, 0, 0.0, 0.0, True),
        (9.0, 2, 1.0, 0, 10.0, 0.0, True),
        (9.0, 1, 0.0, None, 0.0, 0.0, True),
    ]
    steady = jnp.stack([F * 30.0, 8.0 * ka, jnp.zeros_like(ka)])
    set_state = jnp.zeros((len(rows), 3), theta.dtype).at[-1].set(steady)
    return make_events(rows, 3, theta.dtype, set_state), SolveStatus.successful


def propagate_linear(A, y0, events, times):
    """Independent reference: exact propagation of ``dy/dt = A y + r`` through the events.

    NumPy/SciPy, one event at a time in (time, order) order, observations after the
    events at their time; ``A`` ``(n, n)``, events as :class:`Events` (NumPy arrays).
    """
    n = A.shape[0]
    ev = [
        (float(events.time[e]), int(events.order[e]), e)
        for e in range(len(events.time))
        if events.mask[e]
    ]
    ev.sort()
    points = sorted(
        [(t, 0, ("event", e)) for t, _, e in ev]
        + [(float(t), 1, ("obs", i)) for i, t in enumerate(times)],
        key=lambda p: (p[0], p[1]),
    )
    y, r, t = np.asarray(y0, float), np.zeros(n), 0.0
    out = np.zeros((len(times), n))
    for tp, _, (kind, i) in points:
        M = np.zeros((2 * n, 2 * n))
        M[:n, :n], M[:n, n:] = A, np.eye(n)
        big = scipy.linalg.expm(M * (tp - t))
        y, t = big[:n, :n] @ y + big[:n, n:] @ r, tp
        if kind == "event":
            k = float(events.keep[i])
            y = k * y + np.asarray(events.set_state[i]) + np.asarray(events.jump[i])
            r = k * r + np.asarray(events.rate_change[i])
        else:
            out[i] = y
    return out


THETA = jnp.array([1.3, 4.0, 40.0, 0.6, 0.75, 2.5])
# Observations before, inside and after the lagged dose and the infusion, at the reset
# (sees the post-reset, post-dose state), and after it.
TIMES = jnp.array([0.5, 1.0, 1.8, 2.5, 4.0, 5.0, 6.5, 9.0, 11.0, 14.0, 16.0, 24.0])


def oral_reference(theta, times=TIMES):
    model = OralWithDoseParameters()
    th = model.theta_dict(jnp.asarray(theta))
    events, _ = oral_events(jnp.asarray(theta), jnp.max(times))
    A = np.asarray(model.matrix(th))
    return propagate_linear(A, np.zeros(3), jax.tree.map(np.asarray, events), np.asarray(times))


def central_differences(f, theta, h=1e-6):
    theta = np.asarray(theta, float)
    cols = []
    for k in range(theta.size):
        step = h * max(1.0, abs(theta[k]))
        e = np.zeros_like(theta)
        e[k] = step
        cols.append((f(theta + e) - f(theta - e)) / (2 * step))
    return np.stack(cols, axis=-1)


def ode(model, theta, events_of, times=TIMES, sensitivities=False, schedule=None):
    schedule = Schedule.build() if schedule is None else schedule
    patient = PatientInputs(NOCOV, schedule, times)
    return _integrate(model, TIGHT_ODE, theta, patient, events_of, sensitivities)


def test_adaptive_path_with_lag_F_modelled_duration_and_reset_matches_exact():
    model = OralWithDoseParameters()
    states, _, status = ode(model, THETA, lambda th: oral_events(th, jnp.max(TIMES)))
    assert bool(status == SolveStatus.successful)
    ref = oral_reference(THETA)
    np.testing.assert_allclose(states, ref, rtol=1e-8, atol=1e-9)
    # At 9 the set replaces the state, then the dose of 10 adds; the reset at 14 empties
    # everything before the bolus of 40.
    F, ka = float(THETA[4]), float(THETA[0])
    np.testing.assert_allclose(states[7], [F * 30.0 + 10.0, 8.0 * ka, 0.0], rtol=1e-12)
    np.testing.assert_allclose(states[9], [40.0, 0.0, 0.0], atol=1e-12)


def test_adaptive_sensitivities_follow_moving_event_times():
    """Sensitivities w.r.t. lag, F and D (and ka, CL, V) against central differences of
    the independent exact reference: the jump conditions at moving event times."""
    model = OralWithDoseParameters()
    events_of = lambda th: oral_events(th, jnp.max(TIMES))  # noqa: E731
    states, S, status = ode(model, THETA, events_of, sensitivities=True)
    assert bool(status == SolveStatus.successful)
    fd = central_differences(oral_reference, THETA)
    scale = np.abs(fd).max(axis=(0, 1), keepdims=True)  # per parameter
    np.testing.assert_allclose(S / scale, fd / scale, rtol=0, atol=1e-6)
    # lag, F and D move the states (not trivially zero), and the plain solve is the same.
    assert np.all(np.abs(fd[..., 3:]).max(axis=(0, 1)) > 1.0)
    plain, _, _ = ode(model, THETA, events_of)
    np.testing.assert_allclose(states, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_adaptive_sensitivity_of_a_lag_moving_a_dose_across_an_observation(side):
    """The lagged dose acts at 1 + lag; with lag = 0.8 - side·0.01 it is just before
    (side +1) or after (side -1) the observation at 1.8: the derivative is that of the
    side the dose is on."""
    model = OralWithDoseParameters()
    theta = THETA.at[3].set(0.8 - side * 0.01)
    times = jnp.array([1.8, 2.0, 6.0])
    events_of = lambda th: oral_events(th, jnp.max(times))  # noqa: E731
    _, S, status = ode(model, theta, events_of, times=times, sensitivities=True)
    assert bool(status == SolveStatus.successful)
    fd = central_differences(lambda th: oral_reference(th, times), theta, h=1e-5)
    np.testing.assert_allclose(S[..., 3], fd[..., 3], rtol=1e-6, atol=1e-7)
    # Before the dose the depot does not depend on the lag; after it it does.
    assert (abs(float(S[0, 0, 3])) > 1.0) == (side > 0)


def test_rk4_path_applies_the_same_events_with_fourth_order_error(monkeypatch):
    """The hand-written events (with the theta-dependent set, the reset and the moving
    doses) through the fixed-step path: its error against the exact reference falls
    ~16-fold per halving of the step, and its gradient approaches the reference's."""
    from twin_uq.simulate import fixed_step, solve_outputs

    monkeypatch.setattr(
        fixed_step,
        "resolve_doses",
        lambda model, settings, th, patient, t_end: oral_events(th, t_end),
    )
    model = OralWithDoseParameters()
    schedule = Schedule.build(n_reset=1)  # a reset slot: the grid leaves the doses to the solve
    ref = oral_reference(THETA)
    scale = np.abs(ref).max(axis=0)

    def run(h, theta=THETA):
        settings = SolverSettings("rk4", fixed_step=h, horizon=24.0)
        return solve_outputs(model, theta, NOCOV, schedule, TIMES, settings)[0]

    errors = [float(np.max(np.abs(run(h) - ref) / scale)) for h in (0.2, 0.1, 0.05)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(12.0 < r < 20.0 for r in ratios), (errors, ratios)
    jac = jax.jacrev(lambda th: run(0.05, th))(THETA)
    fd = central_differences(oral_reference, THETA)
    jscale = np.abs(fd).max(axis=(0, 1), keepdims=True)
    np.testing.assert_allclose(jac / jscale, fd / jscale, rtol=0, atol=1e-5)
