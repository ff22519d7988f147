"""Property-based tests of schedules and of how the engine cuts time at dose events.

Invariants checked on random dosing schedules (boluses, infusions, measured signals) and
random observation times:

* ``Schedule.build`` keeps every dose once, in time order, padding inert; an infusion runs
  exactly ``duration`` and delivers ``rate × duration``;
* stacking schedules of different sizes pads them without changing any patient's doses or
  signal;
* mass balance: in a linear model with an "eliminated" sink state the states always add up
  to the amount delivered so far — for the exact path and the ODE path. This holds only if
  the solver's segments cover ``[0, t_end]`` without gaps or overlaps, every bolus is
  applied once at its own time (an observation at a dose time sees the post-dose state),
  and every infusion runs on exactly ``[start, stop)``;
* a one-compartment IV model matches its analytic superposition solution, and its
  clearance × AUC(0, ∞) equals the total dose.

Shapes are fixed (``N_BOLUS``, ``N_INFUSION``, ``N_TIMES``) so every example reuses one
compiled simulator per model and solver.
"""

from __future__ import annotations

from collections import Counter

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import twin_uq as tq
from twin_uq.simulate.schedule import Bolus, Infusion, Schedule, Signal, stack_schedules

N_BOLUS, N_INFUSION, N_TIMES = 4, 3, 12
QUARTERS = st.integers(0, 240).map(lambda q: q / 4)  # event times on a 15-min grid, 0-60 h
AMOUNT = st.floats(0.5, 500.0, allow_nan=False)
FAST = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
TIGHT_ODE = tq.SolverSettings("tsit5", rtol=1e-10, atol=1e-10)
EXACT = tq.SolverSettings("exact")


@st.composite
def doses(draw, n_cmt: int = 3):
    boluses = draw(
        st.lists(st.builds(Bolus, QUARTERS, AMOUNT, st.integers(0, n_cmt)), max_size=N_BOLUS)
    )
    infusions = draw(
        st.lists(
            st.builds(
                Infusion.from_amount,
                QUARTERS,
                AMOUNT,
                st.integers(1, 96).map(lambda q: q / 4),
                st.integers(0, n_cmt),
            ),
            max_size=N_INFUSION,
        )
    )
    return boluses, infusions


@st.composite
def observation_times(draw, bol, inf):
    """``N_TIMES`` times, many of them exactly at a dose time or an infusion stop."""
    events = [b.time for b in bol] + [i.start for i in inf] + [i.start + i.duration for i in inf]
    pick = st.sampled_from(events) if events else QUARTERS
    times = draw(st.lists(st.one_of(QUARTERS, pick), min_size=N_TIMES, max_size=N_TIMES))
    return np.asarray(times, dtype=float)


def delivered(bol, inf, t: np.ndarray, cmt: int | None = None) -> np.ndarray:
    """Amount given by time ``t`` (boluses at ``t`` included), into ``cmt`` or in total."""
    out = np.zeros_like(t)
    for b in bol:
        if cmt is None or b.cmt == cmt:
            out += np.where(b.time <= t, b.amount, 0.0)
    for i in inf:
        if cmt is None or i.cmt == cmt:
            out += i.rate * np.clip(t - i.start, 0.0, i.duration)
    return out


# ---- Schedule.build and stacking ----------------------------------------------------------------


@FAST
@given(doses())
def test_build_keeps_every_dose_once_padding_inert(data):
    bol, inf = data
    s = Schedule.build(bol, inf, n_bolus=N_BOLUS, n_infusion=N_INFUSION)
    assert s.n_bolus == N_BOLUS and s.n_infusion == N_INFUSION
    assert s.boluses() == sorted(bol, key=lambda b: b.time)
    assert int(np.sum(s.bolus_mask)) == len(bol) and int(np.sum(s.infusion_mask)) == len(inf)
    assert not np.asarray(s.bolus_amount)[~np.asarray(s.bolus_mask)].any()
    got = s.infusions()
    assert [i.start for i in got] == sorted(i.start for i in inf)
    for g, i in zip(got, sorted(inf, key=lambda i: i.start), strict=True):
        assert (g.cmt, g.rate) == (i.cmt, i.rate)
        assert g.duration == pytest.approx(i.duration, rel=1e-12)
        assert g.rate * g.duration == pytest.approx(i.rate * i.duration, rel=1e-12)


@st.composite
def signals(draw):
    n = draw(st.integers(1, 6))
    knots = sorted(draw(st.lists(QUARTERS, min_size=n, max_size=n, unique=True)))
    values = draw(st.lists(st.floats(-100, 100, allow_nan=False), min_size=n, max_size=n))
    return Signal("insulin", tuple(knots), tuple(values))


@FAST
@given(st.lists(st.tuples(doses(), signals()), min_size=1, max_size=4), st.lists(QUARTERS))
def test_stacking_pads_without_changing_any_patient(patients, probe):
    singles = [Schedule.build(b, i, [sig]) for (b, i), sig in patients]
    stacked = stack_schedules(singles)
    assert stacked.n_bolus == max(s.n_bolus for s in singles)
    assert stacked.n_knots == max(s.n_knots for s in singles)
    probe = np.asarray([*probe, -1.0, 1e3])
    for k, ((bol, inf), sig) in enumerate(patients):
        one = jax.tree.map(lambda x, k=k: x[k], stacked)
        assert one.boluses() == sorted(bol, key=lambda b: b.time)
        assert one.infusions() == singles[k].infusions()
        assert Counter((i.start, i.rate, i.cmt) for i in one.infusions()) == Counter(
            (i.start, i.rate, i.cmt) for i in inf
        )
        # the padded signal interpolates exactly as the original knots do
        got = np.interp(probe, np.asarray(one.signal_time), np.asarray(one.signal_value)[:, 0])
        np.testing.assert_array_equal(got, np.interp(probe, sig.times, sig.values))


# ---- segments: mass balance and analytic solutions ----------------------------------------------


@pytest.fixture(scope="module")
def iv():
    return tq.load_model("one_compartment_iv")


@pytest.mark.parametrize("solver", [EXACT, TIGHT_ODE], ids=["exact", "ode"])
@FAST
@given(data=st.data(), ka=st.floats(0.1, 5.0), cl=st.floats(0.5, 20.0), v=st.floats(5.0, 100.0))
def test_mass_balance_every_dose_once_at_its_time(sink_model, solver, data, ka, cl, v):
    bol, inf = data.draw(doses(n_cmt=2))  # into the depot (0 = default, 1) or central (2)
    times = data.draw(observation_times(bol, inf))
    sched = Schedule.build(bol, inf, n_bolus=N_BOLUS, n_infusion=N_INFUSION)
    traj = tq.simulate(sink_model, [ka, cl, v], sched, times, settings=solver)
    assert bool(traj.ok)
    states = np.asarray(traj.states)
    given_total = delivered(bol, inf, times)
    tol = 1e-10 if solver is EXACT else 1e-7
    np.testing.assert_allclose(states.sum(axis=1), given_total, rtol=tol, atol=tol)
    # nothing reaches the central or sink states before it was given to some compartment
    assert (states >= -tol * (1 + given_total[:, None])).all()
    # the depot never holds more than what was put into it
    into_depot = delivered(bol, inf, times, cmt=0) + delivered(bol, inf, times, cmt=1)
    assert (states[:, 0] <= into_depot * (1 + tol) + tol).all()


def iv_concentration(bol, inf, t, cl, v):
    """Analytic one-compartment IV concentration: superposition of every dose."""
    k = cl / v
    c = np.zeros_like(t)
    for b in bol:
        c += np.where(t >= b.time, b.amount / v * np.exp(-k * np.clip(t - b.time, 0, None)), 0.0)
    for i in inf:
        on = np.clip(t - i.start, 0.0, i.duration)  # time infused so far
        after = np.clip(t - i.start - i.duration, 0.0, None)  # time since it stopped
        c += i.rate / cl * (1.0 - np.exp(-k * on)) * np.exp(-k * after)
    return c


@pytest.mark.parametrize("solver", [EXACT, TIGHT_ODE], ids=["exact", "ode"])
@FAST
@given(data=st.data(), cl=st.floats(0.5, 20.0), v=st.floats(5.0, 100.0))
def test_one_compartment_iv_matches_superposition(iv, solver, data, cl, v):
    bol, inf = data.draw(doses(n_cmt=1))
    times = data.draw(observation_times(bol, inf))
    sched = Schedule.build(bol, inf, n_bolus=N_BOLUS, n_infusion=N_INFUSION)
    traj = tq.simulate(iv, {"CL": cl, "V": v}, sched, times, settings=solver)
    assert bool(traj.ok)
    want = iv_concentration(bol, inf, times, cl, v)
    tol = 1e-10 if solver is EXACT else 1e-7
    np.testing.assert_allclose(np.asarray(traj.outputs)[:, 0], want, rtol=tol, atol=tol * 1e-3)


@given(data=st.data(), ka=st.floats(0.2, 5.0), cl=st.floats(1.0, 20.0), v=st.floats(5.0, 100.0))
@FAST
def test_clearance_times_auc_equals_the_dose(sink_model, data, ka, cl, v):
    # The sink state is CL·AUC(0, t) of the central concentration; long after the last
    # dose (>= 60 half-lives here) everything given has been eliminated.
    bol, inf = data.draw(doses(n_cmt=2))
    times = np.concatenate([data.draw(observation_times(bol, inf))[:-1], [5e3]])
    sched = Schedule.build(bol, inf, n_bolus=N_BOLUS, n_infusion=N_INFUSION)
    traj = tq.simulate(sink_model, [ka, cl, v], sched, times, settings=EXACT)
    total = delivered(bol, inf, np.array([np.inf]))[0]
    eliminated = float(np.asarray(traj.states)[-1, 2])
    assert eliminated == pytest.approx(total, rel=1e-9, abs=1e-9)
