"""Front door and ODE path: gradients, batching, compilation, failures, measured signals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import Explosive, NaNModel, SignalIntegrator
from jax_traces import count_traces
from optional_deps import missing

import twin_uq as tq
from twin_uq.model.base import SolverSettings
from twin_uq.simulate import (
    Bolus,
    Infusion,
    Schedule,
    Signal,
    SolveStatus,
    simulate_cohort_outputs,
    solve_outputs,
    stack_schedules,
)
from twin_uq.simulate.solve import _simulate_compiled

THETA = jnp.array([1.3, 4.0, 40.0])
COV = jnp.array([70.0])
TIMES = jnp.array([30.0, 0.0, 0.5, 2.0, 3.0, 4.0, 6.0, 8.0, 8.0, 12.0, 24.0, 29.0])
TIGHT_ODE = SolverSettings("tsit5", rtol=1e-10, atol=1e-12)
EXACT = SolverSettings("exact")


def schedules():
    """Three patients with different numbers of doses (padded to common sizes)."""
    return [
        Schedule.build([Bolus(0.0, 100.0)], n_bolus=3, n_infusion=1),
        Schedule.build(
            [Bolus(0.0, 100.0), Bolus(12.0, 50.0)],
            [Infusion(3.0, 20.0, 2.5, cmt=2)],
            n_bolus=3,
            n_infusion=1,
        ),
        Schedule.build(
            [Bolus(1.0, 80.0), Bolus(8.0, 80.0), Bolus(16.0, 80.0)], n_bolus=3, n_infusion=1
        ),
    ]


THETAS = jnp.array([[1.3, 4.0, 40.0], [0.7, 6.0, 55.0], [2.0, 3.0, 30.0]])


def loglik(model, settings, theta, cov, sched, times):
    """A stand-in likelihood: Gaussian on log-concentration, masked when the solve fails."""
    _, out, ok = solve_outputs(model, theta, cov, sched, times, settings)
    c = jnp.where(ok, out[:, 0], 1.0)
    ll = -0.5 * jnp.sum((jnp.log(c + 1e-3) - 0.1) ** 2)
    return jnp.where(ok, ll, -jnp.inf)


@pytest.fixture(scope="module")
def cohort_loglik(oral):
    sched = stack_schedules(schedules())
    times = jnp.broadcast_to(TIMES, (3, TIMES.size))
    covs = jnp.full((3, 1), 70.0)

    def total(thetas, settings):
        per = jax.vmap(lambda th, cv, sc, ts: loglik(oral, settings, th, cv, sc, ts))
        return jnp.sum(per(thetas, covs, sched, times))

    return total


@pytest.fixture(scope="module")
def grads(cohort_loglik):
    """Compiled value and gradient of the cohort log-likelihood, ODE and exact paths."""
    return {
        name: (
            jax.jit(lambda th, s=settings: cohort_loglik(th, s)),
            jax.jit(jax.grad(lambda th, s=settings: cohort_loglik(th, s))),
        )
        for name, settings in (("ode", TIGHT_ODE), ("exact", EXACT))
    }


@pytest.mark.parametrize("path", ["ode", "exact"])
def test_cohort_gradient_matches_central_differences(grads, path):
    f, grad = grads[path]
    g = grad(THETAS)
    fd = np.zeros(THETAS.shape)
    for p in range(3):
        for k in range(3):
            h = 1e-5 * THETAS[p, k]
            fd[p, k] = (f(THETAS.at[p, k].add(h)) - f(THETAS.at[p, k].add(-h))) / (2 * h)
    # ODE: finite differences of an adaptive solve at rtol 1e-10 are accurate to ~1e-6.
    np.testing.assert_allclose(g, fd, rtol=1e-5 if path == "ode" else 1e-7, atol=1e-9)


def test_ode_and_exact_gradients_agree(grads):
    np.testing.assert_allclose(grads["ode"][1](THETAS), grads["exact"][1](THETAS), rtol=1e-6)


def test_gradient_under_pmap(cohort_loglik, grads):
    # tests/conftest.py gives 4 host CPU devices (twin_uq's configuration); one accelerator
    # (e.g. a single GPU) is an environment without a second device.
    if jax.local_device_count() < 2:
        missing(f"needs >= 2 local devices, {jax.default_backend()} has {jax.local_device_count()}")
    grad = jax.grad(lambda th: cohort_loglik(th, TIGHT_ODE))
    chains = jnp.stack([THETAS, THETAS * 1.1])  # two "chains" on two devices
    g_pmap = jax.pmap(grad, devices=jax.local_devices()[:2])(chains)
    for c in range(2):
        np.testing.assert_allclose(g_pmap[c], grads["ode"][1](chains[c]), rtol=1e-10)


@pytest.mark.parametrize("settings", [TIGHT_ODE, EXACT], ids=["ode", "exact"])
def test_vmap_over_padded_schedules_equals_loop(oral, settings):
    scheds = schedules()
    times = jnp.stack([TIMES, TIMES[::-1], TIMES + 0.5])
    covs = jnp.full((3, 1), 70.0)
    states, outputs, ok = simulate_cohort_outputs(
        oral, THETAS, covs, stack_schedules(scheds), times, settings
    )
    assert ok.shape == (3,) and bool(jnp.all(ok))
    for p, sched in enumerate(scheds):
        traj = tq.simulate(oral, THETAS[p], sched, times[p], settings=settings)
        np.testing.assert_allclose(outputs[p], traj.outputs, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(states[p], traj.states, rtol=1e-9, atol=1e-12)


def test_simulate_compiles_once_per_shape(oral):
    sched = schedules()[1]
    _simulate_compiled.clear_cache()  # so that the first call below must trace
    with count_traces(_simulate_compiled) as traces:
        tq.simulate(oral, {"ka": 1.0, "CL": 4.0, "V": 40.0}, sched, TIMES)
        assert traces() == 1  # the listener sees the front door's traces
        a = tq.simulate(oral, {"ka": 1.1, "CL": 4.0, "V": 40.0}, sched, TIMES * 0.9)
        b = tq.simulate(oral, [1.2, 5.0, 45.0], sched, TIMES, covariates={"WT": 80.0})
        assert traces() == 1  # new values, same shapes: no retrace
    assert not np.allclose(a.outputs, b.outputs)


def test_trajectory_to_xarray(oral):
    traj = tq.simulate(oral, [1.0, 4.0, 40.0], schedules()[0], TIMES)
    ds = traj.to_xarray(oral)
    assert ds["outputs"].dims == ("time", "output")
    assert list(ds["state"].values) == ["depot", "central"]
    assert list(ds["output"].values) == ["concentration"]
    assert ds.attrs["ok"] == 1 and ds.attrs["status"] == "successful"
    np.testing.assert_array_equal(ds["outputs"].values, np.asarray(traj.outputs))


def test_bad_front_door_inputs_raise_clear_errors(oral):
    with pytest.raises(ValueError, match="missing \\['V'\\]"):
        tq.simulate(oral, {"ka": 1.0, "CL": 4.0}, schedules()[0], TIMES)
    with pytest.raises(ValueError, match="shape \\(3,\\)"):
        tq.simulate(oral, [1.0, 4.0], schedules()[0], TIMES)
    with pytest.raises(ValueError, match="no linear_system"):
        tq.simulate(Explosive(), [1.0], schedules()[0], TIMES, settings=EXACT)


@pytest.mark.parametrize("model", [Explosive(), NaNModel()], ids=["explosive", "nan"])
def test_impossible_solve_is_flagged_not_raised(model):
    times = jnp.linspace(0.0, 3.0, 12)
    sched = Schedule.build(n_bolus=3, n_infusion=1)
    bad = jnp.array([2.0]) if isinstance(model, Explosive) else jnp.array([0.5])
    traj = tq.simulate(model, bad, sched, times)
    # the solution blows up (the step budget runs out) / the rhs is NaN from the start
    expected = (
        SolveStatus.max_steps_reached if isinstance(model, Explosive) else SolveStatus.nonfinite
    )
    assert not bool(traj.ok) and bool(traj.status == expected)

    def ll(theta):
        _, out, ok = solve_outputs(model, theta, jnp.zeros(0), sched, times)
        safe = jnp.where(ok, out[:, 0], 0.0)
        return jnp.where(ok, -jnp.sum(safe**2), -jnp.inf)

    value_and_grad = jax.jit(jax.value_and_grad(ll))
    value, grad = value_and_grad(bad)
    assert value == -jnp.inf and bool(jnp.all(jnp.isfinite(grad)))
    # The same compiled function works for a healthy parameter value.
    good = jnp.array([0.1]) if isinstance(model, Explosive) else jnp.array([2.0])
    value, grad = value_and_grad(good)
    assert np.isfinite(value) and bool(jnp.all(jnp.isfinite(grad)))


def test_measured_signal_is_interpolated_linearly():
    model = SignalIntegrator()
    knots, values = [0.0, 2.0, 5.0, 10.0], [1.0, 3.0, 0.0, 2.0]
    sched = Schedule.build(
        signals=[Signal("insulin", knots, values)], signal_names=model.signals, n_knots=6
    )
    times = np.array([0.0, 1.0, 2.0, 3.5, 5.0, 7.0, 10.0, 12.0])

    def exact_integral(t):
        grid = np.union1d(np.array(knots)[np.array(knots) < t], [0.0, t])
        return np.trapezoid(np.interp(grid, knots, values), grid)  # exact: piecewise linear

    traj = tq.simulate(model, [1.5], sched, times)
    assert bool(traj.ok)
    expected = 1.5 * np.array([exact_integral(t) for t in times])
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-8, atol=1e-12)


def test_forward_sensitivities_match_the_analytic_derivative(oral):
    """The sensitivity equations against the matrix-exponential solution's derivative.

    Doses at and between observation times, an infusion, an observation at a dose time:
    the sensitivities must pass the jumps unchanged and follow the infusion's rate switches.
    """
    from twin_uq.simulate.ode import solve_ode, solve_ode_sensitivities
    from twin_uq.simulate.schedule import PatientInputs

    for p, sched in enumerate(schedules()):
        patient = PatientInputs(COV, sched, TIMES)
        states, S, status = solve_ode_sensitivities(oral, TIGHT_ODE, THETAS[p], patient)
        assert bool(status == SolveStatus.successful)
        exact = jax.jacrev(lambda th, sc=sched: solve_outputs(oral, th, COV, sc, TIMES, EXACT)[0])
        # rtol 1e-10 solves: both are within ~1e-9 of the true derivative; 1e-6 relative
        # leaves room for the near-zero states before the first dose of patient 2.
        np.testing.assert_allclose(S, exact(THETAS[p]), rtol=1e-6, atol=1e-8)
        # The controller looks at the states only: the same steps, the same states.
        plain, _ = solve_ode(oral, TIGHT_ODE, THETAS[p], patient)
        np.testing.assert_allclose(states, plain, rtol=1e-12, atol=1e-12)


def test_forward_sensitivities_with_a_measured_signal():
    """Bergman: ``y0`` depends on ``G0``, the input is interpolated; at tight tolerance the
    sensitivities and the derivative of the discrete solve converge to the same values."""
    from twin_uq.simulate.ode import solve_ode, solve_ode_sensitivities
    from twin_uq.simulate.schedule import PatientInputs

    model = tq.load_model("bergman_minimal")
    knots = [0.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 180.0]
    insulin = [10.0 + 90.0 * np.exp(-t / 8.0) for t in knots]
    sched = Schedule.build(
        signals=[Signal("insulin", knots, insulin)], signal_names=model.signals, n_knots=9
    )
    theta = jnp.array([0.025, 0.03, 6e-4, 90.0, 280.0])
    cov = jnp.array([10.0])
    times = jnp.array([5.0, 10.0, 20.0, 45.0, 90.0, 180.0])
    patient = PatientInputs(cov, sched, times)
    _, S, status = solve_ode_sensitivities(model, TIGHT_ODE, theta, patient)
    assert bool(status == SolveStatus.successful)
    discrete = jax.jacfwd(lambda th: solve_ode(model, TIGHT_ODE, th, patient)[0])(theta)
    scale = np.abs(np.asarray(discrete)).max(axis=0, keepdims=True)  # per state and parameter
    np.testing.assert_allclose(S / scale, discrete / scale, rtol=0, atol=1e-7)
    assert np.abs(np.asarray(S)[:, 0, 4]).max() > 0.1  # G0 moves glucose: not trivially zero
