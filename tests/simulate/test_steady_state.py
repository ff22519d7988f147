"""Steady state of a repeated dose against brute force: 200 explicit dosing intervals.

The reference for every case is the existing solver (``tq.simulate``) run over the same
dose given at ``k·II`` (lag applied by hand), ``k = 0..199``, and read at ``t0 = 200·II``
— the state just before the next dose. The running rate and the tails are compared
with the brute-force dose list itself (which past infusions run across ``t0``, which past
inputs arrive at or after it). Gradients are compared with central finite differences.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.simulate.status import SolveStatus, explain
from twin_uq.simulate.steady_state import (
    SteadyDose,
    SteadyTails,
    steady_state,
    steady_state_tails,
)

N_INTERVALS = 200


class MichaelisMenten(tq.Model):
    """Oral absorption into a central compartment with saturable (Michaelis-Menten) elimination."""

    name = "test_michaelis_menten"
    states = ("depot", "central")
    parameters = (
        tq.Parameter("ka", "1/h", 1.0),
        tq.Parameter("Vmax", "mg/h", 20.0),
        tq.Parameter("Km", "mg/L", 2.0),
        tq.Parameter("V", "L", 30.0),
    )
    outputs = (tq.Output("concentration", "mg/L"),)
    card = tq.ModelCard("test", "test", "h")
    solver = tq.SolverSettings("tsit5", rtol=1e-10, atol=1e-12, max_steps=100_000)

    def rhs(self, t, y, theta, inputs, covariates):
        c = y[1] / theta["V"]
        absorbed = theta["ka"] * y[0]
        return jnp.stack([-absorbed, absorbed - theta["Vmax"] * c / (theta["Km"] + c)])

    def observe(self, y, theta):
        return y[1:2] / theta["V"]


class WithSink(tq.Model):
    """IV one-compartment model whose eliminated amount accumulates: no steady state."""

    name = "test_with_sink"
    states = ("central", "eliminated")
    parameters = (tq.Parameter("k", "1/h", 0.2),)
    outputs = (tq.Output("amount", "mg"),)
    card = tq.ModelCard("test", "test", "h")
    solver = tq.SolverSettings("exact")

    def linear_system(self, theta):
        k, z = theta["k"], jnp.zeros_like(theta["k"])
        return jnp.stack([jnp.stack([-k, z]), jnp.stack([k, z])])

    def observe(self, y, theta):
        return y[:1]


ORAL = tq.load_model("one_compartment_oral")  # closed-form transition
TWO = tq.load_model("two_compartment")  # generic matrix exponential
MM = MichaelisMenten()
ORAL_THETA = {"ka": 1.2, "CL": 4.0, "V": 30.0}
TWO_THETA = {"ka": 0.8, "CL": 5.0, "V1": 20.0, "Q": 3.0, "V2": 40.0}
MM_THETA = {"ka": 1.1, "Vmax": 25.0, "Km": 2.0, "V": 30.0}

# (name, amount, rate, duration, lag, II, 0-based cmt): every case of the brief, doses into
# the depot and into the central compartment.
CASES = [
    ("bolus", 100.0, 0.0, 0.0, 0.0, 12.0, 0),
    ("bolus_iv", 100.0, 0.0, 0.0, 0.0, 12.0, 1),
    ("bolus_lag", 100.0, 0.0, 0.0, 2.5, 12.0, 0),
    ("bolus_lag_over_ii", 100.0, 0.0, 0.0, 29.0, 12.0, 0),
    ("infusion_shorter", 40.0, 20.0, 2.0, 0.0, 12.0, 1),
    ("infusion_equal", 120.0, 10.0, 12.0, 0.0, 12.0, 1),
    ("infusion_longer", 300.0, 10.0, 30.0, 0.0, 12.0, 1),
    ("infusion_longer_lag", 300.0, 10.0, 30.0, 5.0, 12.0, 1),
    ("infusion_lag_over_ii", 50.0, 10.0, 5.0, 17.0, 12.0, 0),
    ("infusion_longer_lag_over_ii_depot", 300.0, 10.0, 30.0, 17.0, 12.0, 0),
]


def _dose(amount, rate, duration, lag, ii, cmt) -> SteadyDose:
    f = lambda v: jnp.asarray(v, float)  # noqa: E731
    return SteadyDose(f(amount), jnp.asarray(cmt), f(rate), f(duration), f(lag), f(ii))


def _theta(model, values):
    return jnp.asarray([values[n] for n in model.parameter_names])


def _covariates(model):
    return jnp.asarray([model.covariate_defaults[c] for c in model.covariates], float)


def _past_doses(amount, rate, duration, lag, ii, cmt, n=N_INTERVALS):
    """The doses k = 1..n before t0 = n·II as (entry time, end time); end = entry for a bolus."""
    t0 = n * ii
    return t0, [(t0 - k * ii + lag, t0 - k * ii + lag + duration) for k in range(1, n + 1)]


def _brute_force(model, values, case, settings=None):
    """State at t0 = 200·II of the dose given at 0, II, ..., 199·II, by the existing solver."""
    _, amount, rate, duration, lag, ii, cmt = case
    t0, doses = _past_doses(amount, rate, duration, lag, ii, cmt)
    if rate > 0:
        sched = tq.Schedule.build(
            infusions=[tq.Infusion(s, rate, duration, cmt + 1) for s, _ in doses]
        )
    else:
        sched = tq.Schedule.build(boluses=[tq.Bolus(s, amount, cmt + 1) for s, _ in doses])
    traj = tq.simulate(model, values, sched, [t0], settings=settings)
    assert traj.ok
    return np.asarray(traj.states[0])


_solve_jit = jax.jit(steady_state, static_argnums=(0, 1))


def _steady(model, values, case):
    dose = _dose(*case[1:])
    return _solve_jit(model, model.solver, _theta(model, values), _covariates(model), dose)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize(
    ("model", "values"), [(ORAL, ORAL_THETA), (TWO, TWO_THETA)], ids=["oral", "two_cmt"]
)
def test_linear_steady_state_matches_200_intervals(model, values, case):
    y_ss, _, status = _steady(model, values, case)
    assert explain(status).name == "successful"
    expected = _brute_force(model, values, case, tq.SolverSettings("exact"))
    np.testing.assert_allclose(np.asarray(y_ss), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_running_rate_and_tails_are_the_past_doses_acting_after_t0(case):
    _, amount, rate, duration, lag, ii, cmt = case
    _, r_ss, _ = _steady(ORAL, ORAL_THETA, case)
    tails, status = steady_state_tails(_dose(*case[1:]))
    assert explain(status).name == "successful"
    t0, doses = _past_doses(amount, rate, duration, lag, ii, cmt)
    # From the brute-force dose list: infusions running across t0, inputs after t0.
    running = sum(rate for s, e in doses if rate > 0 and s < t0 < e)
    expected_r = np.zeros(2)
    expected_r[cmt] = running
    np.testing.assert_allclose(np.asarray(r_ss), expected_r, rtol=1e-12)
    expected_events = sorted(
        [(s - t0, amount if rate == 0 else 0.0, rate) for s, _ in doses if s >= t0]
        + [(e - t0, 0.0, -rate) for s, e in doses if rate > 0 and e > t0]
    )
    mask = np.asarray(tails.mask)
    got = sorted(
        zip(
            np.asarray(tails.time)[mask].tolist(),
            np.asarray(tails.jump)[mask].tolist(),
            np.asarray(tails.rate_change)[mask].tolist(),
            strict=True,
        )
    )
    assert len(got) == len(expected_events)
    np.testing.assert_allclose(
        np.asarray(got).reshape(-1, 3), np.asarray(expected_events).reshape(-1, 3), atol=1e-9
    )
    # Masked slots change nothing.
    assert not np.any(np.asarray(tails.jump)[~mask]) and not np.any(
        np.asarray(tails.rate_change)[~mask]
    )


def test_tails_continue_the_brute_force_after_t0():
    # Start at t0 from (y_ss, r_ss), apply the tails and the record's own dose at t0:
    # the state 40 h later is the brute force's with the dose at t0 added.
    case = ("infusion_longer_lag_over_ii_depot", 300.0, 10.0, 30.0, 17.0, 12.0, 0)
    _, _, rate, duration, lag, _, cmt = case
    y_ss, r_ss, _ = _steady(ORAL, ORAL_THETA, case)
    tails, _ = steady_state_tails(_dose(*case[1:]))
    # 40 h: a past lagged start (5 h), three past ends (11, 23, 35 h), this dose's start (17 h).
    dt = 40.0
    # Piecewise-constant input after t0: r_ss, tails, and this record's own infusion.
    changes = [
        (float(t), float(r))
        for t, r, m in zip(tails.time, tails.rate_change, tails.mask, strict=True)
        if m
    ]
    changes.append((lag, rate))
    changes.append((lag + duration, -rate))
    grid = sorted({0.0, dt, *[t for t, _ in changes if t < dt]})
    theta = _theta(ORAL, ORAL_THETA)
    y, r = np.asarray(y_ss), float(np.asarray(r_ss)[cmt])
    for a, b in itertools.pairwise(grid):
        r_now = r + sum(c for t, c in changes if t <= a)
        u = np.zeros(2)
        u[cmt] = r_now
        phi, psi = ORAL.transition(ORAL.theta_dict(theta), jnp.asarray(b - a))
        y = np.asarray(phi) @ y + np.asarray(psi) @ u
    t0, doses = _past_doses(*case[1:])
    sched = tq.Schedule.build(
        infusions=[tq.Infusion(s, rate, duration, cmt + 1) for s, _ in doses]
        + [tq.Infusion(t0 + lag, rate, duration, cmt + 1)]
    )
    expected = tq.simulate(ORAL, ORAL_THETA, sched, [t0 + dt]).states[0]
    np.testing.assert_allclose(y, np.asarray(expected), rtol=1e-10)


def test_constant_infusion_is_minus_a_inverse_b():
    # NONMEM SS=1, AMT=0, RATE>0, II=0: the plateau of an infusion that ran forever.
    dose = _dose(0.0, 7.0, math.inf, 0.0, 0.0, 1)
    y, r, status = steady_state(
        ORAL, ORAL.solver, _theta(ORAL, ORAL_THETA), _covariates(ORAL), dose
    )
    assert explain(status).name == "successful"
    # The infusion whose plateau it is ends at t0 (NONMEM; nmtests 1001 scenario 29).
    np.testing.assert_allclose(np.asarray(r), [0.0, 0.0])
    long = tq.simulate(
        ORAL, ORAL_THETA, tq.Schedule.build(infusions=[tq.Infusion(0.0, 7.0, 1e4, 2)]), [600.0]
    )
    np.testing.assert_allclose(np.asarray(y), np.asarray(long.states[0]), rtol=1e-10)
    tails, st = steady_state_tails(dose)
    assert not np.any(np.asarray(tails.mask)) and explain(st).name == "successful"


@pytest.mark.parametrize(
    "dose",
    [_dose(100.0, 0.0, 0.0, 0.0, 12.0, 0), _dose(0.0, 5.0, math.inf, 0.0, 0.0, 0)],
    ids=["periodic", "constant"],
)
def test_no_elimination_is_a_named_status_not_nan(dose):
    model = WithSink()
    y, _, status = steady_state(model, model.solver, jnp.asarray([0.2]), jnp.zeros(0), dose)
    assert explain(status).name == "no_steady_state"
    assert np.all(np.isfinite(np.asarray(y)))
    g = jax.grad(lambda th: steady_state(model, model.solver, th, jnp.zeros(0), dose)[0].sum())(
        jnp.asarray([0.2])
    )
    assert np.all(np.isfinite(np.asarray(g)))


def test_a_bolus_with_ii_zero_has_no_steady_state():
    _, _, status = _steady(ORAL, ORAL_THETA, ("x", 100.0, 0.0, 0.0, 0.0, 0.0, 0))
    assert explain(status).name == "no_steady_state"


def test_too_many_overlapping_infusions_is_a_named_status():
    dose = _dose(2000.0, 10.0, 200.0, 0.0, 12.0, 1)  # 16 infusions running at t0
    _, status = steady_state_tails(dose, max_tails=8)
    assert explain(status).name == "ss_tails_exceeded"
    _, status = steady_state_tails(dose, max_tails=16)
    assert explain(status).name == "successful"
    lagged = _dose(100.0, 0.0, 0.0, 100.0, 12.0, 0)  # 8 boluses still to arrive
    assert explain(steady_state_tails(lagged, max_tails=7)[1]).name == "ss_tails_exceeded"
    assert explain(steady_state_tails(lagged, max_tails=8)[1]).name == "successful"


# ---- nonlinear -------------------------------------------------------------------------

# Average input F·AMT/II below Vmax = 25 mg/h in every case (else there is no steady state).
MM_CASES = [
    c for c in CASES if c[0] in ("bolus", "bolus_lag_over_ii", "infusion_shorter", "infusion_equal")
] + [
    ("infusion_longer_lag", 180.0, 6.0, 30.0, 5.0, 12.0, 1),
    ("infusion_longer_lag_over_ii_depot", 180.0, 6.0, 30.0, 17.0, 12.0, 0),
]


@pytest.mark.parametrize("case", MM_CASES, ids=[c[0] for c in MM_CASES])
def test_nonlinear_steady_state_matches_200_intervals(case):
    y_ss, _, status = _steady(MM, MM_THETA, case)
    assert explain(status).name == "successful"
    expected = _brute_force(MM, MM_THETA, case)
    np.testing.assert_allclose(np.asarray(y_ss), expected, rtol=1e-7, atol=1e-9)


def test_nonlinear_constant_infusion_is_the_equilibrium():
    # dA/dt = R - Vmax·C/(Km + C) = 0  =>  C = Km·R/(Vmax - R).
    dose = _dose(0.0, 15.0, math.inf, 0.0, 0.0, 1)
    y, r, status = _solve_jit(MM, MM.solver, _theta(MM, MM_THETA), jnp.zeros(0), dose)
    assert explain(status).name == "successful"
    c = MM_THETA["Km"] * 15.0 / (MM_THETA["Vmax"] - 15.0)
    np.testing.assert_allclose(np.asarray(y), [0.0, c * MM_THETA["V"]], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(r), [0.0, 0.0])


@pytest.mark.parametrize(
    "dose",
    [_dose(0.0, 30.0, math.inf, 0.0, 0.0, 1), _dose(360.0, 0.0, 0.0, 0.0, 12.0, 1)],
    ids=["constant", "periodic"],
)
def test_nonlinear_without_steady_state_is_reported(dose):
    # Input 30 mg/h on average above Vmax = 25 mg/h: the amount grows without bound.
    _, _, status = steady_state(
        MM, MM.solver, _theta(MM, MM_THETA), jnp.zeros(0), dose, max_intervals=40
    )
    assert explain(status).name == "steady_state_not_reached"


def test_vmap_over_doses_of_every_kind():
    cases = [c[1:] for c in CASES] + [(0.0, 7.0, math.inf, 0.0, 0.0, 1)]
    doses = jax.tree.map(lambda *xs: jnp.stack(xs), *[_dose(*c) for c in cases])
    theta, cov = _theta(ORAL, ORAL_THETA), _covariates(ORAL)
    ys, rs, st = jax.vmap(lambda d: steady_state(ORAL, ORAL.solver, theta, cov, d))(doses)
    for i, c in enumerate(cases):
        y, r, _ = steady_state(ORAL, ORAL.solver, theta, cov, _dose(*c))
        np.testing.assert_allclose(np.asarray(ys[i]), np.asarray(y), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(rs[i]), np.asarray(r), rtol=1e-12)
    assert np.all(np.asarray(st == SolveStatus.successful))


# ---- gradients ---------------------------------------------------------------------------


def _objective(model, values, case):
    """A scalar of theta and the dose's floats whose derivative is checked.

    A bolus is differentiated in (amount, lag), an infusion in (rate, duration, lag): the
    kind itself (rate 0 or not) is not a differentiable quantity.
    """
    cov = _covariates(model)
    _, amount, rate, duration, lag, ii, cmt = case
    weights = jnp.arange(1.0, len(model.states) + 1.0)
    infusion = rate > 0

    def f(theta, x):
        if infusion:
            dose = SteadyDose(
                jnp.asarray(amount), jnp.asarray(cmt), x[0], x[1], x[2], jnp.asarray(ii)
            )
        else:
            dose = SteadyDose(
                x[0], jnp.asarray(cmt), jnp.asarray(0.0), jnp.asarray(0.0), x[1], jnp.asarray(ii)
            )
        y, _, _ = steady_state(model, model.solver, theta, cov, dose)
        return weights @ y

    x = [rate, duration, lag] if infusion else [amount, lag]
    return f, _theta(model, values), jnp.asarray(x, float)


def _central_differences(f, x, other, argnum, h=1e-5):
    out = []
    for i in range(x.shape[0]):
        step = h * max(1.0, abs(float(x[i])))
        e = jnp.zeros_like(x).at[i].set(step)
        args_plus = (x + e, other) if argnum == 0 else (other, x + e)
        args_minus = (x - e, other) if argnum == 0 else (other, x - e)
        out.append((f(*args_plus) - f(*args_minus)) / (2 * step))
    return np.asarray(out)


GRAD_CASES = [
    (ORAL, ORAL_THETA, CASES[2]),  # bolus with lag
    (ORAL, ORAL_THETA, CASES[3]),  # lag > II
    (TWO, TWO_THETA, CASES[7]),  # infusion longer than II, with lag
    (ORAL, ORAL_THETA, CASES[9]),  # infusion, lag over II, into the depot
    (MM, MM_THETA, CASES[2]),  # nonlinear bolus with lag
    (MM, MM_THETA, MM_CASES[4]),  # nonlinear infusion longer than II, with lag
]


@pytest.mark.parametrize(
    ("model", "values", "case"),
    GRAD_CASES,
    ids=[f"{m.name}-{c[0]}" for m, _, c in GRAD_CASES],
)
def test_gradients_match_finite_differences(model, values, case):
    f, theta, dose_values = _objective(model, values, case)
    f = jax.jit(f)
    g_theta, g_dose = jax.jit(jax.grad(f, argnums=(0, 1)))(theta, dose_values)
    fd_theta = _central_differences(f, theta, dose_values, 0)
    fd_dose = _central_differences(f, dose_values, theta, 1)
    tol = dict(rtol=1e-5, atol=1e-7) if model.is_linear else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(g_theta), fd_theta, **tol)
    np.testing.assert_allclose(np.asarray(g_dose), fd_dose, **tol)
    # Forward mode gives the same derivatives (what forward sensitivities need).
    fwd = jax.jit(jax.jacfwd(f, argnums=(0, 1)))(theta, dose_values)
    np.testing.assert_allclose(np.asarray(fwd[0]), np.asarray(g_theta), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(fwd[1]), np.asarray(g_dose), rtol=1e-10, atol=1e-12)


def test_tails_structure_is_static():
    tails, _ = steady_state_tails(_dose(*CASES[0][1:]), max_tails=5)
    assert isinstance(tails, SteadyTails)
    assert all(x.shape == (10,) for x in tails)
