"""Steady-state doses (SS=1, SS=2) on the exact path: against the explicit regimen.

A steady-state dose at t0 stands for the same dose given every II before t0 (same lag,
F, rate, duration). The reference is that regimen written out as ordinary doses (60
intervals: the oldest dose's remainder is below 1e-30 of a dose) and solved by the same
exact path without any steady-state code.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.simulate import explain, solve_outputs
from twin_uq.simulate.schedule import Bolus, Infusion, ModelledInfusion, Reset, Schedule

EXACT = tq.SolverSettings("exact")
COV = jnp.asarray([70.0])
CL, V = 4.0, 40.0
K = CL / V
T0, II, N_PAST = 720.0, 12.0, 60
TIMES = jnp.asarray([719.0, 720.0, 720.5, 722.0, 725.0, 727.9, 731.0, 735.0, 740.0, 750.0])
solve = jax.jit(solve_outputs, static_argnums=(0, 5))


@pytest.fixture(scope="module")
def dosed():
    return tq.with_dose_parameters(
        tq.load_model("one_compartment_iv"),
        lag=tq.Parameter("ALAG", "h", 0.5),
        bioavailability=tq.Parameter("F", "1", 0.8, valid_range=(0.0, 1.0)),
        rate=tq.Parameter("R", "mg/h", 20.0),
        duration=tq.Parameter("D", "h", 2.0),
    )


def theta(lag=0.0, f=1.0, r=25.0, d=3.0):
    return jnp.asarray([CL, V, lag, f, r, d])


def conc(model, sched, th, settings=EXACT, times=TIMES):
    _, out, ok = solve(model, th, COV, sched, times, settings)
    return np.asarray(out[:, 0]), bool(ok)


def regimen(make, n=N_PAST):
    """The dose ``make(t)`` at T0 - k·II for k = n … 1 and at T0 (ordinary doses)."""
    return [make(T0 - k * II) for k in range(n, -1, -1)]


def test_bolus_steady_state_matches_the_closed_form(dosed):
    # C(t0 + tau) = F·AMT/V·exp(-k tau) / (1 - exp(-k II)); before t0 nothing (no history).
    got, ok = conc(dosed, Schedule.build([Bolus(T0, 100.0, ss=1, ii=II)]), theta(f=0.6))
    tau = np.asarray(TIMES) - T0
    want = np.where(tau >= 0, 60.0 / V * np.exp(-K * tau) / (1 - np.exp(-K * II)), 0.0)
    assert ok
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("lag", [0.0, 5.0, 17.0, 30.0])
def test_lagged_bolus_steady_state_equals_the_regimen(dosed, lag):
    # ALAG > II: past doses still arrive after t0 (tails).
    th = theta(lag=lag, f=0.7)
    ss, ok = conc(dosed, Schedule.build([Bolus(T0, 100.0, ss=1, ii=II)]), th)
    ref, _ = conc(dosed, Schedule.build(regimen(lambda t: Bolus(t, 100.0))), th)
    assert ok
    at_t0 = np.asarray(TIMES) >= T0
    np.testing.assert_allclose(ss[at_t0], ref[at_t0], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("duration", [4.0, 12.0 / 0.6, 30.0])
@pytest.mark.parametrize("lag", [0.0, 5.0])
def test_infusion_steady_state_shorter_equal_longer_than_ii(dosed, duration, lag):
    # RATE > 0 with F = 0.6: the infusion lasts 0.6·duration (2.4, 12 = II, 18 h).
    th = theta(lag=lag, f=0.6)
    ss, ok = conc(dosed, Schedule.build([], [Infusion(T0, 10.0, duration, ss=1, ii=II)]), th)
    ref, _ = conc(dosed, Schedule.build([], regimen(lambda t: Infusion(t, 10.0, duration))), th)
    assert ok
    at_t0 = np.asarray(TIMES) >= T0
    np.testing.assert_allclose(ss[at_t0], ref[at_t0], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("by", ["rate", "duration"])
def test_modelled_infusion_steady_state(dosed, by):
    th = theta(lag=2.0, f=0.8, r=5.0, d=15.0)  # over 16 h (rate) or 15 h: longer than II
    ss, ok = conc(
        dosed, Schedule.build(modelled=[ModelledInfusion(T0, 100.0, by=by, ss=1, ii=II)]), th
    )
    ref, _ = conc(
        dosed, Schedule.build(modelled=regimen(lambda t: ModelledInfusion(t, 100.0, by=by))), th
    )
    assert ok
    at_t0 = np.asarray(TIMES) >= T0
    np.testing.assert_allclose(ss[at_t0], ref[at_t0], rtol=1e-10, atol=1e-13)


def test_ss1_resets_and_ss2_adds(dosed):
    th = theta(lag=0.0, f=1.0)
    earlier = Bolus(715.0, 1000.0)
    reset, _ = conc(dosed, Schedule.build([earlier, Bolus(T0, 100.0, ss=1, ii=II)]), th)
    alone, _ = conc(dosed, Schedule.build([Bolus(T0, 100.0, ss=1, ii=II)]), th)
    at_t0 = np.asarray(TIMES) >= T0
    np.testing.assert_array_equal(reset[at_t0], alone[at_t0])
    added, _ = conc(dosed, Schedule.build([earlier, Bolus(T0, 100.0, ss=2, ii=II)]), th)
    ref, _ = conc(dosed, Schedule.build([earlier, *regimen(lambda t: Bolus(t, 100.0))]), th)
    np.testing.assert_allclose(added[at_t0], ref[at_t0], rtol=1e-10, atol=1e-13)


def test_ss1_stops_an_infusion_running_at_t0(dosed):
    # An infusion running at t0 is reset; its planned end does not subtract its rate.
    th = theta()
    got, _ = conc(
        dosed, Schedule.build([Bolus(T0, 100.0, ss=1, ii=II)], [Infusion(715.0, 50.0, 20.0)]), th
    )
    alone, _ = conc(dosed, Schedule.build([Bolus(T0, 100.0, ss=1, ii=II)]), th)
    at_t0 = np.asarray(TIMES) >= T0
    np.testing.assert_allclose(got[at_t0], alone[at_t0], rtol=1e-13, atol=1e-15)


def test_constant_infusion_steady_state(dosed):
    # SS=1, AMT=0, RATE>0, II=0: the plateau F·RATE/CL at t0; as in NONMEM (nmtests 1001,
    # scenario 29) the infusion whose plateau it is ends at t0, so the level falls after;
    # a reset at 740 clears it.
    sched = Schedule.build([], [Infusion(T0, 5.0, math.inf, ss=1)], resets=[Reset(740.0)])
    got, ok = conc(dosed, sched, theta(f=0.5))
    t = np.asarray(TIMES)
    plateau = 0.5 * 5.0 / CL * np.exp(-K * (t - T0))
    want = np.where((t >= T0) & (t < 740.0), plateau, 0.0)
    assert ok
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_too_many_tails_is_a_status_not_a_truncation(dosed):
    settings = tq.SolverSettings("exact", max_ss_tails=1)
    sched = Schedule.build([Bolus(T0, 100.0, ss=1, ii=II)])
    _, ok = conc(dosed, sched, theta(lag=30.0), settings)  # needs 2 intervals
    assert not ok
    params = dict(zip(dosed.parameter_names, np.asarray(theta(lag=30.0)), strict=True))
    traj = tq.simulate(dosed, params, sched, TIMES, settings=settings)
    assert explain(traj.status).name == "ss_tails_exceeded"
    _, ok = conc(dosed, sched, theta(lag=20.0), settings)  # 1 interval is enough
    assert ok


def test_steady_state_gradients_match_central_differences(dosed):
    sched = Schedule.build(
        [Bolus(T0, 100.0, ss=1, ii=II)],
        modelled=[ModelledInfusion(T0 + 1.0, 50.0, by="duration", ss=2, ii=II)],
    )
    grid = TIMES[2:]

    @jax.jit
    def loss(th):
        return jnp.sum(solve_outputs(dosed, th, COV, sched, grid, EXACT)[1][:, 0])

    th = theta(lag=13.3, f=0.7, d=14.0)
    got = np.asarray(jax.grad(loss)(th))
    want = np.zeros(th.shape[0])
    for i in range(th.shape[0]):
        h = 1e-6 * float(abs(th[i]))
        want[i] = (float(loss(th.at[i].add(h))) - float(loss(th.at[i].add(-h)))) / (2 * h)
    np.testing.assert_allclose(got[[0, 1, 2, 3, 5]], want[[0, 1, 2, 3, 5]], rtol=1e-6, atol=1e-9)


def test_a_cohort_mixing_steady_state_and_plain_schedules(dosed):
    # Padded to common sizes (n_steady 1 for both), vmapped: each patient as alone.
    from twin_uq.simulate import simulate_cohort_outputs, stack_schedules

    a = Schedule.build([Bolus(T0, 100.0, ss=1, ii=II)], resets=[Reset(745.0)])
    b = Schedule.build([Bolus(700.0, 100.0)])
    th = jnp.stack([theta(lag=13.0, f=0.7), theta(lag=1.0, f=0.9)])
    _, out, ok = simulate_cohort_outputs(
        dosed, th, jnp.stack([COV, COV]), stack_schedules([a, b]), jnp.stack([TIMES, TIMES]), EXACT
    )
    assert bool(np.all(ok))
    for i, sched in enumerate((a, b)):
        alone, _ = conc(dosed, sched, th[i])
        np.testing.assert_allclose(out[i, :, 0], alone, rtol=1e-12, atol=1e-15)
