"""Solve statuses: every member produced by a real failing solve, with its message and remedy;
the three solve paths behind one interface agree where they all apply."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import NaNModel

import twin_uq as tq
from twin_uq.model.base import SolverSettings
from twin_uq.simulate import (
    Bolus,
    Infusion,
    Schedule,
    SolveStatus,
    Trajectory,
    count_statuses,
    describe_failures,
    explain,
    solve,
)
from twin_uq.simulate.status import STATUS_INFO

THETA = jnp.array([1.3, 4.0, 40.0])  # ka (1/h), CL (L/h), V (L)
COV = jnp.array([70.0])
TIMES = jnp.array([0.0, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 12.0, 16.0, 24.0])
SCHEDULE = Schedule.build(
    [Bolus(0.0, 100.0), Bolus(12.0, 50.0)], [Infusion(3.0, 20.0, 2.5, cmt=2)], n_bolus=3
)


# Compiled once per (model, settings): eager diffrax is slow.
jit_solve = jax.jit(solve, static_argnums=(0, 5))


def _status(model, theta, settings, times=TIMES, schedule=SCHEDULE, cov=COV):
    return jit_solve(model, theta, cov, schedule, times, settings).status


def test_members_keep_the_values_of_the_old_codes_and_each_has_words():
    # 0 ok, 1 step budget, 2 non-finite, 3 beyond horizon: the codes before the enumeration.
    for value, member in enumerate(
        [
            "successful",
            "max_steps_reached",
            "nonfinite",
            "beyond_horizon",
            "solver_failed",
            "ss_tails_exceeded",
        ]
    ):
        status = jax.jit(lambda: getattr(SolveStatus, member))()  # noqa: B023
        assert explain(status).name == member
        assert int(np.asarray(jax.tree.leaves(status)[0])) == value
    assert list(STATUS_INFO) == [
        "successful",
        "max_steps_reached",
        "nonfinite",
        "beyond_horizon",
        "solver_failed",
        "ss_tails_exceeded",
        "no_steady_state",
        "steady_state_not_reached",
    ]
    assert STATUS_INFO["successful"].text == ""
    for name, info in STATUS_INFO.items():
        if name != "successful":
            assert info.message and info.remedy
            assert SolveStatus[getattr(SolveStatus, name)] == f"{info.message} {info.remedy}"


def test_a_healthy_solve_is_successful_on_every_path(oral):
    for settings in (
        SolverSettings("exact"),
        SolverSettings("tsit5"),
        SolverSettings("rk4", fixed_step=0.1).covering(TIMES),
    ):
        traj = jit_solve(oral, THETA, COV, SCHEDULE, TIMES, settings)
        assert isinstance(traj, Trajectory)
        assert bool(traj.status == SolveStatus.successful) and bool(traj.ok)
        assert traj.describe() == "successful"


def test_step_budget_spent_is_max_steps_reached(oral):
    traj = jit_solve(oral, THETA, COV, SCHEDULE, TIMES, SolverSettings("tsit5", max_steps=4))
    assert bool(traj.status == SolveStatus.max_steps_reached) and not bool(traj.ok)
    text = traj.describe()
    assert text.startswith("max_steps_reached: ")
    assert "SolverSettings.max_steps" in text and "kvaerno5" in text
    # the same budget is enough for a problem with fewer steps per segment
    few = SolverSettings("tsit5", max_steps=4)
    short = jit_solve(oral, THETA, COV, Schedule.build(), jnp.array([0.0, 0.1]), few)
    assert bool(short.ok)


def test_nan_rhs_on_the_adaptive_path_is_nonfinite_not_max_steps():
    # diffrax rejects every step of a NaN rhs until the budget is spent; the status must
    # point at the model, not at max_steps.
    model = NaNModel()
    times = jnp.linspace(0.0, 3.0, 12)
    sched = Schedule.build(n_bolus=3, n_infusion=1)
    nan_rhs = _status(model, jnp.array([0.5]), None, times, sched, jnp.zeros(0))
    assert bool(nan_rhs == SolveStatus.nonfinite)
    healthy = _status(model, jnp.array([2.0]), None, times, sched, jnp.zeros(0))
    assert bool(healthy == SolveStatus.successful)

    # differentiated, the forward pass is the sensitivity solve: same status there
    def traj(a):
        return solve(model, a, jnp.zeros(0), sched, times)

    primal, _ = jax.jit(lambda a: jax.vjp(traj, a))(jnp.array([0.5]))
    assert bool(primal.status == SolveStatus.nonfinite)


def test_overflow_on_the_exact_path_is_nonfinite(oral):
    # a negative clearance makes the central compartment grow like exp(400 t / 4): inf
    theta = jnp.array([1.3, -400.0, 4.0])
    status = _status(oral, theta, SolverSettings("exact"))
    assert bool(status == SolveStatus.nonfinite)
    assert "division by zero" in STATUS_INFO["nonfinite"].remedy
    assert "nonfinite: " in describe_failures(status)


def test_an_unstable_rk4_step_is_nonfinite(oral):
    # ka * h = 100 is far outside RK4's stability region (|ka h| < 2.79): the depot
    # explodes by ~4e6 per step and overflows; a step 100x smaller is fine.
    theta = jnp.array([100.0, 4.0, 40.0])
    times = jnp.linspace(0.0, 100.0, 5)
    sched = Schedule.build([Bolus(0.0, 100.0)])
    coarse, fine = (SolverSettings("rk4", fixed_step=h).covering(times) for h in (1.0, 0.02))
    unstable = _status(oral, theta, coarse, times, sched)
    assert bool(unstable == SolveStatus.nonfinite)
    stable = _status(oral, theta, fine, times, sched)
    assert bool(stable == SolveStatus.successful)


def test_a_time_past_the_fixed_grid_is_beyond_horizon(oral):
    settings = SolverSettings("rk4", fixed_step=0.5, horizon=20.0)
    status = _status(oral, THETA, settings)  # TIMES reach 24 h
    assert bool(status == SolveStatus.beyond_horizon)
    assert "covering" in explain(status).remedy
    # solve sets the horizon itself when the times are concrete and none was given
    auto = solve(oral, THETA, COV, SCHEDULE, TIMES, SolverSettings("rk4", fixed_step=0.5))
    assert bool(auto.status == SolveStatus.successful)


def test_other_diffrax_failures_map_to_solver_failed():
    """No twin_uq configuration reaches these (the adaptive controller turns a failing
    implicit step into a rejected step, hence a spent budget), so the mapping is checked
    on diffrax's own results."""
    import diffrax

    from twin_uq.simulate.ode import _segment_status

    for result, rhs_finite, expected in [
        (diffrax.RESULTS.successful, True, SolveStatus.successful),
        (diffrax.RESULTS.max_steps_reached, True, SolveStatus.max_steps_reached),
        (diffrax.RESULTS.max_steps_reached, False, SolveStatus.nonfinite),
        (diffrax.RESULTS.nonlinear_divergence, True, SolveStatus.solver_failed),
        (diffrax.RESULTS.singular, True, SolveStatus.solver_failed),
        (diffrax.RESULTS.internal_error, True, SolveStatus.solver_failed),
    ]:
        status = jax.jit(_segment_status)(result, jnp.asarray(rhs_finite))
        assert bool(status == expected), (result, rhs_finite)


def test_a_batch_of_statuses_is_counted_and_described(oral):
    """vmap over patients: per-patient statuses, counted with their messages."""
    theta = jnp.stack([THETA, jnp.array([1.3, -400.0, 4.0]), THETA, THETA])
    settings = SolverSettings("exact")
    batch = jax.jit(jax.vmap(lambda th: solve(oral, th, COV, SCHEDULE, TIMES, settings)))(theta)
    np.testing.assert_array_equal(np.asarray(batch.ok), [True, False, True, True])
    assert count_statuses(batch.status) == {"successful": 3, "nonfinite": 1}
    text = describe_failures(batch.status, "patient")
    assert text.startswith("1 of 4 patients failed. 1 nonfinite: ")
    assert STATUS_INFO["nonfinite"].remedy in text
    assert batch.describe() == describe_failures(batch.status, "trajectory")
    assert describe_failures(SolveStatus.successful) == ""
    with pytest.raises(ValueError, match="one status"):
        explain(batch.status)


def test_simulate_reports_the_status_in_its_dataset(oral):
    few = SolverSettings("tsit5", max_steps=4)
    bad = tq.simulate(oral, [1.3, 4.0, 40.0], SCHEDULE, TIMES, settings=few)
    ds = bad.to_xarray(oral)
    assert ds.attrs["ok"] == 0 and ds.attrs["status"] == "max_steps_reached"
    assert ds.attrs["status_message"] == STATUS_INFO["max_steps_reached"].message
    assert ds.attrs["status_remedy"] == STATUS_INFO["max_steps_reached"].remedy


def test_the_three_paths_agree_on_the_one_compartment_oral_model(oral):
    """Exact (matrix exponential), adaptive Tsit5 and fixed-step RK4 on the same problem:
    bolus doses (one at an observation time), an infusion into the central compartment.

    Bounds from each solver's accuracy: Tsit5 at rtol 1e-10 / atol 1e-12 carries a global
    error of at most ~1e-8 relative over these ~10 segments; RK4 at h = 0.05 h has a
    global error ~ t * ka * (ka h)^4 / 120 ~ 1e-6 relative for ka = 1.3 / h.
    """
    exact = jit_solve(oral, THETA, COV, SCHEDULE, TIMES, SolverSettings("exact"))
    tight = SolverSettings("tsit5", rtol=1e-10, atol=1e-12)
    adaptive = jit_solve(oral, THETA, COV, SCHEDULE, TIMES, tight)
    fine, coarse = (SolverSettings("rk4", fixed_step=h).covering(TIMES) for h in (0.05, 2.0))
    rk4 = jit_solve(oral, THETA, COV, SCHEDULE, TIMES, fine)
    for traj in (exact, adaptive, rk4):
        assert bool(traj.ok)
        np.testing.assert_array_equal(traj.times, TIMES)
    scale = float(jnp.max(jnp.abs(exact.states)))
    np.testing.assert_allclose(adaptive.states, exact.states, rtol=1e-8, atol=1e-10 * scale)
    np.testing.assert_allclose(rk4.states, exact.states, rtol=1e-5, atol=1e-7 * scale)
    np.testing.assert_allclose(adaptive.outputs, exact.outputs, rtol=1e-8)
    np.testing.assert_allclose(rk4.outputs, exact.outputs, rtol=1e-5)
    # a coarse RK4 grid is measurably worse: the comparison can fail
    rough = jit_solve(oral, THETA, COV, SCHEDULE, TIMES, coarse)
    assert float(jnp.max(jnp.abs(rough.states - exact.states))) > 1e-5 * scale
