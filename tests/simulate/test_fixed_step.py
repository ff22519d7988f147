"""Fixed-grid RK4 path: against analytic solutions, its order, events, horizon, gradients."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import Explosive, SignalIntegrator

import twin_uq as tq
from twin_uq.model.base import SolverSettings
from twin_uq.simulate import Bolus, Infusion, Schedule, Signal, solve_outputs
from twin_uq.simulate.events import signal_inputs
from twin_uq.simulate.schedule import PatientInputs
from twin_uq.simulate.status import SolveStatus

fixed_step = importlib.import_module("twin_uq.simulate.fixed_step")

THETA = jnp.array([1.3, 4.0, 40.0])
NOCOV = jnp.zeros(0)
# Doses off the uniform grid, an infusion, an observation at a dose time (8.0, twice),
# times in any order, and a dose after the last time (ignored).
TIMES = jnp.array([30.0, 0.0, 0.5, 2.3, 3.0, 4.0, 6.0, 8.0, 8.0, 12.7, 24.0, 29.0])
EXACT = SolverSettings("exact")


def schedule():
    return Schedule.build(
        [Bolus(0.0, 100.0), Bolus(8.0, 50.0), Bolus(12.7, 30.0), Bolus(31.0, 99.0)],
        [Infusion(3.3, 20.1, 2.5, cmt=2)],
    )


def rk4(h, horizon=None):
    return SolverSettings("rk4", fixed_step=h, horizon=horizon)


def max_error(model, settings, times=TIMES):
    _, exact, ok_e = solve_outputs(model, THETA, NOCOV, schedule(), times, EXACT)
    _, approx, ok = solve_outputs(model, THETA, NOCOV, schedule(), times, settings)
    assert bool(ok) and bool(ok_e)
    return float(jnp.max(jnp.abs(approx - exact) / (jnp.abs(exact) + 1e-3)))


def test_rk4_converges_at_fourth_order_through_doses_and_infusions(sink_model):
    # A dose or a rate change inside a step instead of at a grid point would make the
    # error first order (ratio 2 per halving); RK4 on the right grid gives 2^4 = 16.
    errors = [max_error(sink_model, rk4(h)) for h in (0.4, 0.2, 0.1)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(12.0 < r < 20.0 for r in ratios), (errors, ratios)
    assert errors[-1] < 1e-5


def test_observation_at_a_dose_time_sees_the_post_dose_state(sink_model):
    times = jnp.array([7.999999, 8.0, 8.0, 12.7])
    states, _, ok = solve_outputs(sink_model, THETA, NOCOV, schedule(), times, rk4(0.05))
    exact, _, _ = solve_outputs(sink_model, THETA, NOCOV, schedule(), times, EXACT)
    assert bool(ok)
    # depot jumps by 50 at t = 8 (and the exact path agrees to RK4 accuracy)
    assert float(states[1, 0] - states[0, 0]) == pytest.approx(50.0, abs=1e-3)
    np.testing.assert_allclose(states[1], states[2])
    np.testing.assert_allclose(states, exact, rtol=1e-6, atol=1e-6)


def test_signal_kinks_off_the_uniform_grid_are_integrated_exactly():
    # The integral of a piecewise-linear signal is piecewise quadratic: RK4 integrates it
    # exactly on every step that does not straddle a knot. Knots off the uniform grid
    # are grid points too, so the result is exact to rounding for any step.
    model = SignalIntegrator()
    sig = Signal("insulin", [0.0, 1.3, 2.9, 7.1], [10.0, 50.0, 20.0, 5.0])
    sched = Schedule.build(signals=[sig], signal_names=model.signals)
    times = jnp.array([0.5, 1.3, 2.0, 5.0, 9.0])
    pieces = np.interp(np.linspace(0, 9, 90001), [0.0, 1.3, 2.9, 7.1], [10.0, 50.0, 20.0, 5.0])
    truth = np.array([np.trapezoid(pieces[: int(t * 10000) + 1], dx=1e-4) for t in times])
    _, out, ok = solve_outputs(model, jnp.array([1.0]), NOCOV, sched, times, rk4(2.0))
    assert bool(ok)
    np.testing.assert_allclose(out[:, 0], truth, rtol=1e-7)


def test_bergman_matches_a_tight_adaptive_solve():
    model = tq.load_model("bergman_minimal")
    theta = jnp.array([0.03, 0.02, 6e-4, 85.0, 300.0])
    knots = [0.0, 2.0, 4.5, 7.0, 13.0, 22.0, 45.0, 90.0, 180.0]
    values = [120.0, 100.0, 80.0, 60.0, 45.0, 30.0, 20.0, 12.0, 10.0]
    sched = Schedule.build(signals=[Signal("insulin", knots, values)], signal_names=model.signals)
    times = jnp.array([5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0])
    cov = jnp.array([9.0])
    tight = SolverSettings("tsit5", rtol=1e-11, atol=1e-12, max_steps=100000)
    _, ref, _ = solve_outputs(model, theta, cov, sched, times, tight)
    _, out, ok = solve_outputs(model, theta, cov, sched, times, rk4(1.0))
    assert bool(ok)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_reverse_mode_gradient_is_the_derivative_of_the_discrete_solution(sink_model):
    settings = rk4(0.5, horizon=30.0)

    def total(theta):
        _, out, _ = solve_outputs(sink_model, theta, NOCOV, schedule(), TIMES, settings)
        return jnp.sum(jnp.log(out[:, 0] + 1e-3))

    grad = jax.jit(jax.grad(total))(THETA)
    eps = 1e-6 * THETA
    fd = jnp.array(
        [(total(THETA.at[k].add(eps[k])) - total(THETA.at[k].add(-eps[k]))) / (2 * eps[k]) for k in range(3)]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_precomputed_grid_gives_the_same_values_and_gradients(sink_model):
    settings = rk4(0.5, horizon=30.0)
    grid = fixed_step.fixed_grid(sink_model, settings, schedule(), TIMES)

    def total(theta, g):
        _, out, _ = solve_outputs(sink_model, theta, NOCOV, schedule(), TIMES, settings, g)
        return jnp.sum(out)

    v1, g1 = jax.value_and_grad(total)(THETA, None)
    v2, g2 = jax.value_and_grad(total)(THETA, grid)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(g1, g2)


def test_times_past_the_horizon_fail_instead_of_stretching_the_steps(sink_model):
    traj = jax.jit(
        lambda t: fixed_step.solve_fixed_step(
            sink_model, rk4(0.5, horizon=20.0), THETA, PatientInputs(NOCOV, schedule(), t)
        )[1]
    )
    assert bool(traj(jnp.array([1.0, 20.0])) == SolveStatus.successful)
    assert bool(traj(jnp.array([1.0, 20.5])) == SolveStatus.beyond_horizon)
    _, _, ok = solve_outputs(sink_model, THETA, NOCOV, schedule(), TIMES, rk4(0.5, horizon=20.0))
    assert not bool(ok)
    # the entry points set the horizon from concrete times
    traj = tq.simulate(sink_model, THETA, schedule(), TIMES, settings=rk4(0.5))
    assert bool(traj.ok)


def test_traced_times_without_a_horizon_are_a_clear_error(sink_model):
    with pytest.raises(ValueError, match=r"no horizon.*covering"):
        jax.jit(lambda t: solve_outputs(sink_model, THETA, NOCOV, schedule(), t, rk4(0.5)))(TIMES)


def test_an_unstable_step_is_a_failed_solve_with_a_zero_gradient():
    # y' = a y^2 from y(0) = 1 blows up at t = 1/a: a step past it overflows.
    model = Explosive()
    times = jnp.array([0.5, 1.0, 3.0])

    def ll(a):
        _, out, ok = solve_outputs(model, a, NOCOV, Schedule.build(), times, rk4(0.25))
        return jnp.where(ok, jnp.sum(jnp.where(ok, out, 0.0)), -jnp.inf), ok

    (value, ok), grad = jax.value_and_grad(ll, has_aux=True)(jnp.array([1.0]))
    assert not bool(ok) and value == -jnp.inf
    assert np.all(np.isfinite(grad)) and float(grad[0]) == 0.0


def test_merge_by_ranks_equals_sorting_with_ties():
    rng = np.random.default_rng(3)
    uniform = np.arange(11) * 0.5
    breaks = np.concatenate([rng.choice(uniform, 4), rng.uniform(0, 5, 6), [2.0, 2.0]])
    grid, at = fixed_step._merge_sorted(jnp.asarray(uniform), jnp.asarray(breaks))
    np.testing.assert_array_equal(grid, np.sort(np.concatenate([uniform, breaks])))
    np.testing.assert_array_equal(np.asarray(grid)[np.asarray(at)], breaks)
    assert len(set(np.asarray(at).tolist())) == breaks.size


def test_signals_on_steps_equal_the_shared_interpolation():
    model = SignalIntegrator()
    # padding repeats the last knot; steps before the first and after the last knot
    sig = Signal("insulin", [0.5, 1.3, 1.7, 2.9], [10.0, 50.0, 70.0, 20.0])
    sched = Schedule.build(signals=[sig], signal_names=model.signals, n_knots=6)
    grid = fixed_step.fixed_grid(model, rk4(0.4, horizon=4.0), sched, jnp.array([4.0]))
    live = np.asarray(grid.step) > 0
    stage_times = (grid.t0, grid.t0 + grid.step / 2, grid.t0 + grid.step)
    for t, got in zip(stage_times, grid.inputs, strict=True):
        want = jax.vmap(lambda s: signal_inputs(model, sched, s))(t)["insulin"]
        np.testing.assert_allclose(np.asarray(got["insulin"])[live], np.asarray(want)[live])


def test_settings_validate_and_cover():
    with pytest.raises(ValueError, match="fixed_step > 0"):
        SolverSettings("rk4")
    with pytest.raises(ValueError, match="apply to method='rk4' only"):
        SolverSettings("tsit5", fixed_step=1.0)
    s = rk4(2.0).covering(np.array([0.0, 179.0]), [3.0])
    assert s.horizon == 180.0
    assert s.covering([10.0]) is s  # never shrinks
    assert s.covering([181.0]).horizon == 182.0
    adaptive = SolverSettings("tsit5")
    assert adaptive.covering([1e6]) is adaptive


def test_cohort_grids_drop_what_is_zero_for_everyone_and_change_nothing(sink_model):
    from types import SimpleNamespace

    from twin_uq.simulate import stack_schedules

    settings = rk4(0.5, horizon=30.0)
    times = jnp.broadcast_to(TIMES, (2, TIMES.size))
    no_doses = [Schedule.build(n_bolus=1, n_infusion=1) for _ in range(2)]
    boluses = [Schedule.build([Bolus(0.0, 100.0)], n_infusion=1) for _ in range(2)]
    infusion = [schedule(), Schedule.build([Bolus(0.0, 100.0)], n_bolus=4, n_infusion=1)]
    # (a bolus at time 0 sits after the grid's other points at 0, so it is a later jump)
    for scheds, no_rate, no_jump in ((no_doses, 1, 1), (boluses, 1, 0), (infusion, 0, 0)):
        batched = stack_schedules(scheds)
        grids = fixed_step.cohort_grids(
            sink_model, settings, SimpleNamespace(schedule=batched, obs_time=times)
        )
        assert (grids.rate is None) == no_rate and (grids.jump is None) == no_jump
        for p in range(2):
            grid_p = jax.tree.map(lambda a, p=p: a[p], grids)
            sched_p = jax.tree.map(lambda a, p=p: a[p], batched)
            with_grid = solve_outputs(sink_model, THETA, NOCOV, sched_p, TIMES, settings, grid_p)
            without = solve_outputs(sink_model, THETA, NOCOV, sched_p, TIMES, settings)
            np.testing.assert_allclose(with_grid[1], without[1], rtol=1e-13)


def _cohort(model, settings, schedules, times):
    from types import SimpleNamespace

    from twin_uq.simulate import stack_schedules

    batched = stack_schedules(schedules)
    grids = fixed_step.cohort_grids(
        model, settings, SimpleNamespace(schedule=batched, obs_time=jnp.asarray(times))
    )
    return batched, grids


def test_cohort_solve_equals_the_patient_solves_values_and_gradients(sink_model):
    from twin_uq.simulate import solve_cohort_on_grid

    settings = rk4(0.5, horizon=30.0)
    scheds = [schedule(), Schedule.build([Bolus(1.1, 70.0)], n_bolus=4, n_infusion=1)]
    times = jnp.stack([TIMES, TIMES[::-1] * 0.9])
    theta = jnp.stack([THETA, THETA * jnp.array([0.7, 1.2, 0.9])])
    batched, grids = _cohort(sink_model, settings, scheds, times)
    assert grids.rate is not None and grids.jump is not None

    def one(th, p):
        sched = jax.tree.map(lambda a: a[p], batched)
        grid = jax.tree.map(lambda a: a[p], grids)
        return solve_outputs(sink_model, th, NOCOV, sched, times[p], settings, grid)

    def total_cohort(th):
        _, out, _ = solve_cohort_on_grid(sink_model, th, jnp.zeros((2, 0)), grids)
        return jnp.sum(jnp.log(out[..., 0] + 1e-3) * jnp.arange(1, 13))

    def total_patients(th):
        return sum(
            jnp.sum(jnp.log(one(th[p], p)[1][:, 0] + 1e-3) * jnp.arange(1, 13)) for p in range(2)
        )

    states, outputs, ok = solve_cohort_on_grid(sink_model, theta, jnp.zeros((2, 0)), grids)
    assert states.shape == (2, 12, 3) and bool(jnp.all(ok))
    for p in range(2):
        s_p, o_p, _ = one(theta[p], p)
        np.testing.assert_allclose(states[p], s_p, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(outputs[p], o_p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        jax.grad(total_cohort)(theta), jax.grad(total_patients)(theta), rtol=1e-10
    )


def test_cohort_solve_with_signals_and_covariates_equals_the_patient_solves():
    from twin_uq.simulate import solve_cohort_on_grid

    model = tq.load_model("bergman_minimal")
    knots = [0.0, 2.0, 4.5, 7.0, 13.0, 22.0, 45.0, 90.0, 180.0]
    values = np.array([120.0, 100.0, 80.0, 60.0, 45.0, 30.0, 20.0, 12.0, 10.0])
    scheds = [
        Schedule.build(signals=[Signal("insulin", knots, values * c)], signal_names=model.signals)
        for c in (1.0, 0.6, 1.5)
    ]
    times = jnp.array([[5.0, 10.0, 20.0, 60.0, 180.0], [3.0, 8.0, 30.0, 90.0, 120.0],
                       [1.0, 15.0, 45.0, 100.0, 170.0]])
    settings = model.solver.covering(times)
    theta = jnp.array([[0.03, 0.02, 6e-4, 85.0, 300.0], [0.02, 0.04, 3e-4, 95.0, 250.0],
                       [0.015, 0.01, 9e-4, 80.0, 320.0]])
    cov = jnp.array([[9.0], [12.0], [6.0]])
    _, grids = _cohort(model, settings, scheds, times)
    _, out, ok = solve_cohort_on_grid(model, theta, cov, grids)
    assert bool(jnp.all(ok))
    for p in range(3):
        _, o_p, _ = solve_outputs(model, theta[p], cov[p], scheds[p], times[p], settings)
        np.testing.assert_allclose(out[p], o_p, rtol=1e-12)


def test_a_failed_patient_leaves_the_others_values_and_gradients_alone():
    from twin_uq.simulate import solve_cohort_on_grid

    model = Explosive()  # blows up at t = 1/a: the second patient's a = 1 before t = 3
    settings = rk4(0.25, horizon=3.0)
    times = jnp.array([[0.5, 1.0, 3.0]] * 2)
    _, grids = _cohort(model, settings, [Schedule.build()] * 2, times)

    def ll(a):
        _, out, ok = solve_cohort_on_grid(model, a, jnp.zeros((2, 0)), grids)
        return jnp.sum(jnp.where(ok[:, None], jnp.log(jnp.abs(out[..., 0])), 0.0)), ok

    (_, ok), grad = jax.value_and_grad(ll, has_aux=True)(jnp.array([[0.2], [1.0]]))
    assert ok.tolist() == [True, False]
    alone, _ = jax.grad(ll, has_aux=True)(jnp.array([[0.2], [0.2]]))
    assert np.all(np.isfinite(grad)) and float(grad[1, 0]) == 0.0
    np.testing.assert_allclose(grad[0], alone[0], rtol=1e-12)


def test_float32_solve_is_float32_inside_and_close_to_float64():
    from twin_uq.simulate import solve_cohort_on_grid

    model = tq.load_model("bergman_minimal")
    knots = [0.0, 2.0, 4.5, 7.0, 13.0, 22.0, 45.0, 90.0, 180.0]
    values = [120.0, 100.0, 80.0, 60.0, 45.0, 30.0, 20.0, 12.0, 10.0]
    sched = Schedule.build(signals=[Signal("insulin", knots, values)], signal_names=model.signals)
    times = jnp.array([[5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0]])
    theta = jnp.array([[0.03, 0.02, 6e-4, 85.0, 300.0]])
    cov = jnp.array([[9.0]])
    results = {}
    for precision in ("float64", "float32"):
        settings = SolverSettings(
            "rk4", fixed_step=1.0, horizon=180.0, precision=precision
        )
        _, grids = _cohort(model, settings, [sched], times)
        assert grids.t0.dtype == (jnp.float32 if precision == "float32" else jnp.float64)

        def total(th, grids=grids):
            return jnp.sum(jnp.log(solve_cohort_on_grid(model, th, cov, grids)[1]))

        _, out, ok = solve_cohort_on_grid(model, theta, cov, grids)
        assert bool(ok[0]) and out.dtype == jnp.float64
        results[precision] = (out, jax.grad(total)(theta))
    (o64, g64), (o32, g32) = results["float64"], results["float32"]
    # float32 rounding over ~200 steps: at most ~200 eps = 1.2e-5 relative (measured ~1e-6
    # for values, ~4e-7 for gradients), and distinguishable from float64's agreement
    # (tests above: 1e-12).
    rel = float(jnp.max(jnp.abs(o32 - o64) / o64))
    assert 1e-9 < rel < 1e-5, rel
    np.testing.assert_allclose(g32, g64, rtol=1e-5)


def test_float32_is_for_the_fixed_step_solver_only():
    with pytest.raises(ValueError, match="method='rk4' only"):
        SolverSettings("tsit5", precision="float32")
    with pytest.raises(ValueError, match="'float64' or 'float32'"):
        SolverSettings("rk4", fixed_step=1.0, precision="float16")
