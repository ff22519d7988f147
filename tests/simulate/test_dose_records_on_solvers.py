"""Dose records with lag, F, modelled duration and rate, and resets, on the adaptive and the
fixed-step RK4 paths, through the public solve.

The reference is independent of ``resolve_doses``: the exact path of the same model
without dose parameters, on the schedule shifted and scaled by hand (NONMEM's table: a
dose enters at ``t + ALAG`` with ``F·AMT``; a ``RATE > 0`` infusion runs ``F·AMT/RATE``;
``RATE=-2`` runs ``D`` at ``F·AMT/D``; ``RATE=-1`` runs ``F·AMT/R`` at ``R``), and after a
reset a fresh exact solve from zero.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
from conftest import OralWithSink

import twin_uq as tq
from twin_uq.model.base import SolverSettings
from twin_uq.simulate import (
    Bolus,
    Infusion,
    ModelledInfusion,
    Reset,
    Schedule,
    solve_outputs,
    stack_schedules,
)
from twin_uq.simulate.fixed_step import cohort_grids, doses_move

TIGHT_ODE = SolverSettings("tsit5", rtol=1e-10, atol=1e-12)
EXACT = SolverSettings("exact")
NOCOV = jnp.zeros(0)
BASE = OralWithSink()


def dosed_model():
    m = tq.with_dose_parameters(
        BASE,
        1,
        lag=tq.Parameter("ALAG", "h", 0.5),
        bioavailability=tq.Parameter("F", "1", 0.8, valid_range=(0.0, 1.0)),
    )
    return tq.with_dose_parameters(
        m, 2, duration=tq.Parameter("D2", "h", 2.0), rate=tq.Parameter("R2", "mg/h", 40.0)
    )


DOSED = dosed_model()
VALUES = {"ka": 1.3, "CL": 4.0, "V": 40.0, "ALAG": 0.6, "F": 0.75, "D2": 2.5, "R2": 30.0}
THETA = jnp.array([VALUES[name] for name in DOSED.parameter_names])
LAG = DOSED.parameter_names.index("ALAG")
NEW = [DOSED.parameter_names.index(name) for name in ("ALAG", "F", "D2", "R2")]
RESET_AT = 20.0
TIMES = jnp.array([0.5, 1.0, 1.8, 2.5, 4.0, 6.5, 7.3, 9.0, 16.0, 20.0, 20.9, 22.0, 26.0])


def records():
    return Schedule.build(
        [Bolus(1.0, 100.0, 1), Bolus(20.0, 50.0, 1), Bolus(22.0, 30.0, 2)],
        [Infusion(3.0, 10.0, 5.0, cmt=1)],
        modelled=[
            ModelledInfusion(6.0, 60.0, 2, by="duration"),
            ModelledInfusion(15.0, 45.0, 2, by="rate"),
        ],
        resets=[Reset(RESET_AT)],
    )


def shifted_reference(theta, times=TIMES):
    """States at ``times`` from the exact path of the base model on hand-shifted doses."""
    ka, cl, v, lag, f, d2, r2 = (float(theta[DOSED.parameter_names.index(name)]) for name in VALUES)
    base_theta = jnp.array([ka, cl, v])
    before = Schedule.build(
        [Bolus(1.0 + lag, f * 100.0, 1)],
        [
            Infusion(3.0 + lag, 10.0, f * 5.0, cmt=1),  # F·AMT / RATE = F · 5 h
            Infusion(6.0, 60.0 / d2, d2, cmt=2),  # cmt 2 has no F: AMT / D over D
            Infusion(15.0, r2, 45.0 / r2, cmt=2),
        ],
    )
    after = Schedule.build([Bolus(lag, f * 50.0, 1), Bolus(2.0, 30.0, 2)])
    times = np.asarray(times)
    out = np.zeros((times.size, 3))
    for part, sched, shift in (
        (times < RESET_AT, before, 0.0),
        (times >= RESET_AT, after, RESET_AT),
    ):
        if part.any():
            out[part] = solve_outputs(BASE, base_theta, NOCOV, sched, times[part] - shift, EXACT)[0]
    return out


def central_differences(f, theta, h=1e-6):
    theta = np.asarray(theta, float)
    cols = []
    for k in range(theta.size):
        step = h * max(1.0, abs(theta[k]))
        e = np.zeros_like(theta)
        e[k] = step
        cols.append((np.asarray(f(theta + e)) - np.asarray(f(theta - e))) / (2 * step))
    return np.stack(cols, axis=-1)


def rk4(h, precision="float64"):
    return SolverSettings("rk4", fixed_step=h, horizon=30.0, precision=precision)


def states(settings, theta=THETA, schedule=None, times=TIMES):
    schedule = records() if schedule is None else schedule
    return solve_outputs(DOSED, theta, NOCOV, schedule, times, settings)[0]


@pytest.fixture(scope="module")
def reference():
    return shifted_reference(THETA)


def test_records_need_the_doses_resolved_at_each_solve():
    assert doses_move(DOSED, records())
    assert doses_move(BASE, Schedule.build([Bolus(0.0, 1.0)], resets=[Reset(3.0)]))
    assert not doses_move(BASE, Schedule.build([Bolus(0.0, 1.0)], [Infusion(1.0, 2.0, 3.0)]))


def test_adaptive_path_matches_the_shifted_exact_solution(reference):
    ys = states(TIGHT_ODE)
    np.testing.assert_allclose(ys, reference, rtol=1e-8, atol=1e-9)
    # The reset at 20 leaves only the lagged dose to come: nothing at 20 itself.
    np.testing.assert_allclose(ys[9], 0.0, atol=1e-12)


def test_adaptive_gradient_matches_central_differences_of_the_reference():
    weights = jnp.linspace(0.5, 1.5, TIMES.size)[:, None]

    def loss(th):
        return jnp.sum(weights * states(TIGHT_ODE, th)[:, :2])

    grad = jax.grad(loss)(THETA)
    fd = central_differences(
        lambda th: np.sum(np.asarray(weights) * shifted_reference(th)[:, :2]), THETA
    )
    np.testing.assert_allclose(grad, fd, rtol=2e-6, atol=1e-6)
    assert np.all(np.abs(fd[NEW]) > 1.0)  # lag, F, D, R all matter here


def test_rk4_converges_at_fourth_order_with_moving_doses(reference):
    """A dose or a rate change inside a step instead of at its own point would make the
    error first order (ratio ~2 per halving); RK4 with the events placed gives ~16."""
    scale = np.abs(reference).max(axis=0)
    errors = [float(np.max(np.abs(states(rk4(h)) - reference) / scale)) for h in (0.2, 0.1, 0.05)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(12.0 < r < 20.0 for r in ratios), (errors, ratios)
    assert errors[-1] < 1e-6


def test_rk4_gradient_is_the_derivative_of_the_discrete_solution_and_close_to_exact():
    # The discrete solution is smooth in an event time between grid points; where an
    # event sits exactly on one (lag 0.6 puts 1 + lag on the uniform grid) it has a kink
    # of RK4's error size. Lag 0.63 keeps every moving event off the grid.
    settings = rk4(0.1)
    theta = THETA.at[LAG].set(0.63)
    weights = jnp.linspace(0.5, 1.5, TIMES.size)[:, None]

    def loss(th):
        return jnp.sum(weights * states(settings, th)[:, :2])

    grad = jax.grad(loss)(theta)
    discrete_fd = central_differences(lambda th: loss(jnp.asarray(th)), theta)
    np.testing.assert_allclose(grad, discrete_fd, rtol=1e-6, atol=1e-6)
    exact_fd = central_differences(
        lambda th: np.sum(np.asarray(weights) * shifted_reference(th)[:, :2]), theta
    )
    # RK4's error at h = 0.1 (<1e-5 of the states above) bounds the gradient's.
    np.testing.assert_allclose(grad, exact_fd, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("settings", [TIGHT_ODE, rk4(0.1)], ids=["tsit5", "rk4"])
@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_lag_gradient_with_the_dose_just_before_or_after_an_observation(settings, side):
    """The first dose acts at 1 + ALAG; ALAG = 0.8 - side·0.01 puts it just before (side
    +1) or after (side -1) the observation at 1.8."""
    theta = THETA.at[LAG].set(0.8 - side * 0.01)
    times = jnp.array([1.8, 2.0, 6.0])
    grad = jax.jacrev(lambda th: states(settings, th, times=times)[:, :2])(theta)[..., LAG]
    fd = central_differences(lambda th: shifted_reference(th, times)[:, :2], theta, h=1e-5)
    tol = 1e-6 if settings.method == "tsit5" else 1e-4
    np.testing.assert_allclose(grad, fd[..., LAG], rtol=tol, atol=tol)
    # The depot at 1.8 depends on the lag only once the dose has arrived.
    assert (abs(float(grad[0, 0])) > 1.0) == (side > 0)


def test_rk4_float32_with_moving_doses_is_close_to_float64():
    y64 = states(rk4(0.1))
    y32 = states(rk4(0.1, "float32"))
    assert y32.dtype == jnp.float64  # states come out in the caller's type
    scale = np.abs(np.asarray(y64)).max(axis=0)
    err = np.max(np.abs(np.asarray(y32) - np.asarray(y64)) / scale)
    assert 0 < err < 1e-5, err  # float32 rounding over ~300 steps, not exact


def test_cohort_on_grid_with_moving_doses_equals_the_patient_solves():
    from types import SimpleNamespace

    from twin_uq.simulate import solve_cohort_on_grid

    settings = rk4(0.2)
    scheds = [
        records(),
        Schedule.build(
            [Bolus(0.0, 80.0, 1)],
            modelled=[ModelledInfusion(2.0, 30.0, 2, by="duration")],
            n_bolus=3,
            n_infusion=1,
            n_modelled=2,
            n_reset=1,
        ),
    ]
    batched = stack_schedules(scheds)
    times = jnp.stack([TIMES, TIMES])
    grids = cohort_grids(DOSED, settings, SimpleNamespace(schedule=batched, obs_time=times))
    thetas = jnp.stack([THETA, THETA.at[LAG].set(1.1).at[NEW[2]].set(1.7)])
    covs = jnp.zeros((2, 0))

    def total(th):
        return jnp.sum(solve_cohort_on_grid(DOSED, th, covs, grids)[1] ** 2)

    values = solve_cohort_on_grid(DOSED, thetas, covs, grids)[1]
    grad = jax.grad(total)(thetas)
    for p in range(2):
        sched_p = jax.tree.map(lambda a, p=p: a[p], batched)

        def alone(th, sched_p=sched_p):
            return solve_outputs(DOSED, th, NOCOV, sched_p, TIMES, settings)[1]

        np.testing.assert_allclose(values[p], alone(thetas[p]), rtol=1e-12, atol=1e-14)
        g = jax.grad(lambda th, f=alone: jnp.sum(f(th) ** 2))(thetas[p])
        np.testing.assert_allclose(grad[p], g, rtol=1e-10, atol=1e-12)


class MichaelisMenten(tq.Model):
    """Oral absorption into a central compartment with Michaelis–Menten elimination."""

    name = "mm_oral_records"
    states = ("depot", "central")
    parameters = (
        tq.Parameter("ka", "1/h", 1.2),
        tq.Parameter("Vmax", "mg/h", 20.0),
        tq.Parameter("Km", "mg/L", 2.0),
        tq.Parameter("V", "L", 30.0),
    )
    outputs = (tq.Output("concentration", "mg/L"),)
    card = tq.ModelCard("test", "test", "h")
    solver = TIGHT_ODE

    def rhs(self, t, y, theta, inputs, covariates):
        c = y[1] / theta["V"]
        absorbed = theta["ka"] * y[0]
        return jnp.stack([-absorbed, absorbed - theta["Vmax"] * c / (theta["Km"] + c)])

    def observe(self, y, theta):
        return y[1:2] / theta["V"]


MM_THETA = jnp.array([1.2, 20.0, 2.0, 30.0, 0.7])
MM_TIMES = jnp.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.5, 13.0, 16.0, 24.0])


def mm_reference(theta, times=MM_TIMES):
    """``solve_ivp`` (DOP853, rtol 1e-12) with the doses of 100 at 0 and 12 shifted by the
    lag, integrated piecewise between them."""
    ka, vmax, km, v, lag = (float(x) for x in theta)

    def f(t, y):
        c = y[1] / v
        return [-ka * y[0], ka * y[0] - vmax * c / (km + c)]

    bounds = [0.0, lag, 12.0 + lag, float(np.max(times))]
    y, out = np.zeros(2), np.zeros((len(times), 2))
    for i in range(3):
        t0, t1 = bounds[i], bounds[i + 1]
        if i > 0:
            y = y + np.array([100.0, 0.0])
        sol = scipy.integrate.solve_ivp(
            f, (t0, t1), y, method="DOP853", rtol=1e-12, atol=1e-12, dense_output=True
        )
        for j, t in enumerate(np.asarray(times)):
            if t0 <= t < t1 or (i == 2 and t == t1):
                out[j] = sol.sol(float(t))
        y = sol.y[:, -1]
    return out


@pytest.mark.parametrize("settings", [TIGHT_ODE, rk4(0.05)], ids=["tsit5", "rk4"])
def test_nonlinear_model_with_a_lag_against_solve_ivp(settings):
    model = tq.with_dose_parameters(MichaelisMenten(), 1, lag=tq.Parameter("ALAG", "h", 0.5))
    sched = Schedule.build([Bolus(0.0, 100.0, 1), Bolus(12.0, 100.0, 1)])
    settings = settings if settings.method != "rk4" else settings.covering(MM_TIMES)

    def run(th):
        return solve_outputs(model, th, NOCOV, sched, MM_TIMES, settings)[0]

    tol = 1e-7 if settings.method == "tsit5" else 1e-5
    ref = mm_reference(MM_THETA)
    scale = np.abs(ref).max(axis=0)
    np.testing.assert_allclose(run(MM_THETA) / scale, ref / scale, rtol=0, atol=tol)
    jac = jax.jacrev(run)(MM_THETA)
    fd = central_differences(mm_reference, MM_THETA, h=1e-5)
    jscale = np.abs(fd).max(axis=(0, 1), keepdims=True)
    np.testing.assert_allclose(jac / jscale, fd / jscale, rtol=0, atol=10 * tol)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_doses_inserted_at_the_solve_equal_doses_built_into_the_grid(precision):
    """The same doses through both kinds of grid: built in (no dose can move) and inserted
    at each solve (an unused reset slot makes the schedule one whose doses may move)."""
    doses = [Bolus(0.0, 100.0, 1), Bolus(8.0, 50.0, 1), Bolus(8.0, 5.0, 2)]
    infusions = [Infusion(3.3, 20.1, 2.5, cmt=2), Infusion(12.7, 3.0, 4.0, cmt=1)]
    fixed = Schedule.build(doses, infusions)
    inserted = Schedule.build(doses, infusions, n_reset=1)
    assert not doses_move(BASE, fixed) and doses_move(BASE, inserted)
    times = jnp.array([0.0, 2.3, 3.3, 8.0, 8.0, 12.7, 16.0, 29.0])
    settings = rk4(0.25, precision)
    theta = jnp.array([1.3, 4.0, 40.0])

    def run(sched, th=theta):
        return solve_outputs(BASE, th, NOCOV, sched, times, settings)[0]

    np.testing.assert_allclose(run(inserted), run(fixed), rtol=1e-14, atol=1e-14)
    g_fixed = jax.grad(lambda th: jnp.sum(run(fixed, th)))(theta)
    g_inserted = jax.grad(lambda th: jnp.sum(run(inserted, th)))(theta)
    np.testing.assert_allclose(g_inserted, g_fixed, rtol=1e-13)


def test_inserted_doses_with_a_measured_signal_equal_the_built_in_ones():
    """Bergman (interpolated insulin): the signals interpolated on the merged grid at each
    solve equal those of the grid built with the doses in it."""
    from twin_uq.simulate import Signal

    model = tq.load_model("bergman_minimal")
    knots = [0.0, 2.0, 4.5, 7.0, 13.0, 22.0, 45.0, 90.0, 180.0]
    insulin = Signal("insulin", knots, [120.0, 100.0, 80.0, 60.0, 45.0, 30.0, 20.0, 12.0, 10.0])
    doses = [Bolus(0.0, 50.0), Bolus(3.3, 20.0), Bolus(22.0, 10.0)]
    fixed = Schedule.build(doses, signals=[insulin], signal_names=model.signals)
    inserted = Schedule.build(doses, signals=[insulin], signal_names=model.signals, n_reset=1)
    assert doses_move(model, inserted) and not doses_move(model, fixed)
    times = jnp.array([5.0, 10.0, 22.0, 30.0, 60.0, 120.0, 180.0])
    theta = jnp.array([0.03, 0.02, 6e-4, 85.0, 300.0])
    cov = jnp.array([9.0])
    settings = SolverSettings("rk4", fixed_step=1.0, horizon=180.0)

    def run(sched, th=theta):
        return solve_outputs(model, th, cov, sched, times, settings)[0]

    np.testing.assert_allclose(run(inserted), run(fixed), rtol=1e-14, atol=1e-14)
    g_fixed = jax.grad(lambda th: jnp.sum(run(fixed, th)))(theta)
    g_inserted = jax.grad(lambda th: jnp.sum(run(inserted, th)))(theta)
    np.testing.assert_allclose(g_inserted, g_fixed, rtol=1e-12)


def test_the_three_paths_agree_on_the_records(reference):
    """The exact path resolves the same records itself (``resolve_doses``): all three
    paths give the hand-shifted reference, and so each other."""
    exact = states(EXACT)
    np.testing.assert_allclose(exact, reference, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(states(TIGHT_ODE), exact, rtol=1e-8, atol=1e-9)
    scale = np.abs(reference).max(axis=0)
    assert np.max(np.abs(states(rk4(0.05)) - exact) / scale) < 1e-6


@pytest.mark.parametrize(
    "settings",
    [pytest.param(TIGHT_ODE, marks=pytest.mark.slow), rk4(0.05)],  # tsit5: 18 s in CI
    ids=["tsit5", "rk4"],
)
def test_steady_state_with_lag_and_F_gradients_match_central_differences(settings):
    """An SS=1 oral dose every 12 h with a lag, then the same dose: the steady state set at
    t0 (a state that depends on every parameter) and the lagged dose arriving after t0.
    Values against the exact path, gradients against its central differences."""
    model = tq.with_dose_parameters(
        tq.load_model("one_compartment_oral"),
        1,
        lag=tq.Parameter("ALAG", "h", 0.5),
        bioavailability=tq.Parameter("F", "1", 0.8, valid_range=(0.0, 1.0)),
    )
    theta = jnp.array([1.3, 4.0, 40.0, 0.63, 0.75])  # ka, CL, V, ALAG, F
    cov = jnp.array([70.0])
    sched = Schedule.build([Bolus(0.0, 100.0, 1, ss=1, ii=12.0), Bolus(12.0, 100.0, 1)])
    times = jnp.array([0.0, 0.3, 1.0, 3.0, 8.0, 12.0, 12.9, 20.0])

    def run(th, s=settings):
        return solve_outputs(model, th, cov, sched, times, s.covering(times))[0]

    exact = np.asarray(run(theta, EXACT))
    assert exact[0, 1] > 1.0  # the steady state holds drug at t0 (central)
    tol = 1e-8 if settings.method == "tsit5" else 1e-6
    scale = np.abs(exact).max(axis=0)
    np.testing.assert_allclose(run(theta) / scale, exact / scale, rtol=0, atol=tol)
    jac = jax.jacrev(run)(theta)
    fd = central_differences(lambda th: run(jnp.asarray(th), EXACT), theta)
    jscale = np.abs(fd).max(axis=(0, 1), keepdims=True)
    np.testing.assert_allclose(jac / jscale, fd / jscale, rtol=0, atol=100 * tol)
    assert np.all(np.abs(fd[..., 3:]).max(axis=(0, 1)) > 1.0)  # lag and F matter
