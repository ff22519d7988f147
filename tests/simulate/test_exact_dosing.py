"""Exact path with lag, bioavailability, modelled rate/duration and resets: analytic values,
finite-difference gradients, and unchanged numbers without them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.simulate import solve_outputs
from twin_uq.simulate.schedule import Bolus, Infusion, ModelledInfusion, Reset, Schedule

EXACT = tq.SolverSettings("exact")
NOCOV = jnp.asarray([70.0])  # WT: covariates reach y0 only; theta is individual
CL, V = 4.0, 40.0
K = CL / V
solve = jax.jit(solve_outputs, static_argnums=(0, 5))


@pytest.fixture(scope="module")
def iv():
    return tq.load_model("one_compartment_iv")


@pytest.fixture(scope="module")
def dosed(iv):
    """One compartment with ALAG, F, R and D declared on the central compartment."""
    return tq.with_dose_parameters(
        iv,
        lag=tq.Parameter("ALAG", "h", 0.5),
        bioavailability=tq.Parameter("F", "1", 0.8, valid_range=(0.0, 1.0)),
        rate=tq.Parameter("R", "mg/h", 20.0),
        duration=tq.Parameter("D", "h", 2.0),
    )


def theta(lag=0.7, f=0.6, r=25.0, d=3.0):
    return jnp.asarray([CL, V, lag, f, r, d])


def bolus(t, t_dose, amount):
    """Concentration after a bolus of ``amount`` entering at ``t_dose`` (0 before)."""
    t = np.asarray(t)
    return np.where(t >= t_dose, amount / V * np.exp(-K * (t - t_dose)), 0.0)


def infusion(t, start, stop, rate):
    """Concentration of a zero-order infusion at ``rate`` over ``[start, stop]``."""
    t = np.asarray(t)
    amount_at_end = rate / K * (1 - np.exp(-K * (np.clip(t, start, stop) - start)))
    return np.where(t >= start, amount_at_end * np.exp(-K * np.clip(t - stop, 0.0, None)) / V, 0.0)


TIMES = jnp.asarray([0.0, 0.5, 1.0, 1.69, 1.7, 1.71, 2.5, 4.0, 5.0, 6.0, 7.9, 8.0, 12.0, 24.0])


def concentration(model, sched, th, times=TIMES):
    _, out, ok = solve(model, th, NOCOV, sched, times, EXACT)
    assert bool(ok)
    return np.asarray(out[:, 0])


def test_bolus_with_lag_and_bioavailability(dosed):
    # C(t) = F·D/V·exp(-k(t - t_dose - ALAG)) from t_dose + ALAG on, 0 before; an
    # observation at exactly the lagged time sees the dose.
    sched = Schedule.build([Bolus(1.0, 100.0)])
    got = concentration(dosed, sched, theta(lag=0.7, f=0.6))
    np.testing.assert_allclose(got, bolus(TIMES, 1.7, 60.0), rtol=1e-12, atol=1e-15)
    assert got[3] == 0.0 and got[4] > 0.0


def test_infusion_with_bioavailability_changes_its_duration(dosed):
    # AMT 50 at RATE 10 with F 0.6: 30 enter at rate 10 over 3 h, from 1 + ALAG.
    sched = Schedule.build([], [Infusion(1.0, 10.0, 5.0)])
    got = concentration(dosed, sched, theta(lag=0.7, f=0.6))
    np.testing.assert_allclose(got, infusion(TIMES, 1.7, 4.7, 10.0), rtol=1e-12, atol=1e-15)


def test_modelled_duration_and_rate(dosed):
    # RATE=-2: F·AMT over D; RATE=-1: at R over F·AMT/R.
    th = theta(lag=0.7, f=0.6, r=25.0, d=3.0)
    by_d = Schedule.build(modelled=[ModelledInfusion(1.0, 80.0, by="duration")])
    np.testing.assert_allclose(
        concentration(dosed, by_d, th),
        infusion(TIMES, 1.7, 4.7, 0.6 * 80.0 / 3.0),
        rtol=1e-12,
        atol=1e-15,
    )
    by_r = Schedule.build(modelled=[ModelledInfusion(1.0, 80.0, by="rate")])
    np.testing.assert_allclose(
        concentration(dosed, by_r, th),
        infusion(TIMES, 1.7, 1.7 + 0.6 * 80.0 / 25.0, 25.0),
        rtol=1e-12,
        atol=1e-15,
    )


def test_reset_clears_states_and_running_infusions(dosed):
    # EVID 3 at 5: a bolus and a still-running infusion are gone; nothing negative after
    # the infusion's planned end (its stop is cancelled); a later dose acts as usual.
    th = theta(lag=0.0, f=1.0)
    sched = Schedule.build(
        [Bolus(0.0, 100.0), Bolus(8.0, 50.0)], [Infusion(2.0, 10.0, 5.0)], resets=[Reset(5.0)]
    )
    got = concentration(dosed, sched, th)
    t = np.asarray(TIMES)
    before = bolus(t, 0.0, 100.0) + infusion(t, 2.0, 7.0, 10.0)
    want = np.where(t < 5.0, before, bolus(t, 8.0, 50.0))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert got[TIMES.tolist().index(5.0)] == 0.0  # the observation at the reset sees it


def test_reset_and_dose_at_one_time(dosed):
    # EVID 4: reset then dose at 6; an observation at 6 sees only the new dose.
    th = theta(lag=0.0, f=1.0)
    sched = Schedule.build([Bolus(0.0, 100.0), Bolus(6.0, 70.0)], resets=[Reset(6.0)])
    t = np.asarray(TIMES)
    want = np.where(t < 6.0, bolus(t, 0.0, 100.0), bolus(t, 6.0, 70.0))
    np.testing.assert_allclose(concentration(dosed, sched, th), want, rtol=1e-12, atol=1e-15)


def test_simulate_accepts_the_new_records_and_refuses_undeclared(iv, dosed):
    sched = Schedule.build(
        [Bolus(0.0, 100.0)],
        modelled=[ModelledInfusion(8.0, 50.0, by="duration")],
        resets=[Reset(6.0)],
    )
    params = dict(zip(dosed.parameter_names, np.asarray(theta(lag=0.0, f=1.0, d=3.0)), strict=True))
    traj = tq.simulate(dosed, params, sched, TIMES)
    t = np.asarray(TIMES)
    want = np.where(t < 6.0, bolus(t, 0.0, 100.0), infusion(t, 8.0, 11.0, 50.0 / 3.0))
    np.testing.assert_allclose(traj.outputs[:, 0], want, rtol=1e-12, atol=1e-15)
    with pytest.raises(InputError, match="with_dose_parameters"):
        tq.simulate(iv, {"CL": CL, "V": V}, sched, TIMES)


def test_without_lag_and_f_the_numbers_are_those_of_the_model_without_them(iv, dosed):
    # ALAG = 0 and F = 1 are exactly the undeclared defaults: the same arithmetic, bit
    # for bit (states and outputs), on a schedule of boluses and infusions.
    sched = Schedule.build(
        [Bolus(0.0, 100.0), Bolus(8.0, 50.0)], [Infusion(3.0, 20.0, 2.5)], n_bolus=4, n_infusion=2
    )
    a = solve(iv, jnp.asarray([CL, V]), NOCOV, sched, TIMES, EXACT)
    b = solve(dosed, theta(lag=0.0, f=1.0), NOCOV, sched, TIMES, EXACT)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def _fd_gradient(f, x, rel=1e-6):
    x = np.asarray(x, float)
    g = np.zeros_like(x)
    for i in range(x.size):
        h = rel * max(abs(x[i]), 1e-3)
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        g[i] = (f(jnp.asarray(up)) - f(jnp.asarray(down))) / (2 * h)
    return g


def _loss(model, weights):
    """Weighted sum of the concentrations at GRID (compiled once per model)."""

    @jax.jit
    def loss(th, sched):
        return jnp.sum(weights * solve_outputs(model, th, NOCOV, sched, GRID, EXACT)[1][:, 0])

    return loss


# Observations between which the lagged doses move as ALAG changes.
GRID = jnp.asarray([0.5, 1.2, 1.4, 1.6, 2.0, 3.0, 4.5, 6.0, 9.0, 12.0])


@pytest.mark.parametrize("lag", [0.1, 0.3, 0.5, 0.9])
def test_gradients_match_central_differences(dosed, lag):
    # Bolus, RATE>0 infusion (F sets its duration), RATE=-1 and RATE=-2 infusions, and a
    # reset: every dose parameter moves an event time, an amount or a rate. For each lag
    # the lagged doses fall between different observations (never on one: there the
    # state has a kink in the dose time and no derivative).
    sched = Schedule.build(
        [Bolus(1.05, 100.0)],
        [Infusion(1.15, 30.0, 2.0)],
        modelled=[
            ModelledInfusion(2.8, 60.0, by="rate"),
            ModelledInfusion(4.05, 40.0, by="duration"),
        ],
        resets=[Reset(10.0)],
    )
    weights = jnp.linspace(1.0, 2.0, GRID.shape[0])
    loss = _loss(dosed, weights)
    th = theta(lag=lag, f=0.6, r=25.0, d=3.0)
    got = np.asarray(jax.grad(loss)(th, sched))
    want = _fd_gradient(lambda x: float(loss(x, sched)), th)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert np.all(got[2:] != 0.0)  # every dose parameter acts


def test_gradients_through_the_matrix_exponential():
    # Two compartments without a closed-form transition: lag and F on the depot.
    two = tq.with_dose_parameters(
        tq.load_model("two_compartment"),
        lag=tq.Parameter("ALAG", "h", 0.5),
        bioavailability=tq.Parameter("F", "1", 0.8, valid_range=(0.0, 1.0)),
    )
    sched = Schedule.build([Bolus(1.0, 100.0), Bolus(5.0, 100.0)], [Infusion(2.0, 20.0, 1.0)])
    th = jnp.asarray([1.2, 4.0, 30.0, 2.0, 50.0, 0.45, 0.7])

    loss = _loss(two, jnp.ones(GRID.shape[0]))
    got = np.asarray(jax.grad(loss)(th, sched))
    want = _fd_gradient(lambda x: float(loss(x, sched)), th)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
