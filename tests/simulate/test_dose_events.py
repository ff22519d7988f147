"""Resolved dose events: NONMEM times, amounts, rates; resets; declarations; static shapes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.simulate.dose_events import check_dose_declarations, resolve_doses
from twin_uq.simulate.schedule import (
    Bolus,
    Infusion,
    ModelledInfusion,
    PatientInputs,
    Reset,
    Schedule,
)
from twin_uq.simulate.status import SolveStatus

SETTINGS = tq.SolverSettings("exact")


@pytest.fixture(scope="module")
def dosed(oral):
    """Oral model with ALAG, F on the depot and D, R on the central compartment."""
    m = tq.with_dose_parameters(
        oral,
        lag=tq.Parameter("ALAG", "h", 0.5),
        bioavailability=tq.Parameter("F", "1", 0.8, valid_range=(0.0, 1.0)),
    )
    m = tq.with_dose_parameters(
        m, 2, duration=tq.Parameter("D2", "h", 2.0), rate=tq.Parameter("R2", "mg/h", 40.0)
    )
    return m


def _theta(model, **values):
    return jnp.asarray([values.get(p.name, p.typical) for p in model.parameters])


def _resolve(model, schedule, theta, t_end=100.0):
    patient = PatientInputs(jnp.zeros(0), schedule, jnp.zeros(1))
    return resolve_doses(model, SETTINGS, theta, patient, jnp.asarray(t_end))


def test_nonmem_table(dosed):
    sched = Schedule.build(
        [Bolus(1.0, 100.0), Bolus(2.0, 30.0, cmt=2)],
        [Infusion(3.0, 10.0, 5.0)],  # AMT 50 at RATE 10 into the depot: F changes duration
        modelled=[
            ModelledInfusion(4.0, 60.0, 2, by="duration"),
            ModelledInfusion(6.0, 60.0, 2, by="rate"),
        ],
    )
    theta = _theta(dosed, ALAG=0.5, F=0.8, D2=2.0, R2=40.0)
    ev, status = _resolve(dosed, sched, theta)
    assert status == SolveStatus.successful
    # Order: boluses, infusion start, infusion stop, modelled starts, modelled stops.
    want_t = [1.5, 2.0, 3.5, 3.5 + 0.8 * 5.0, 4.0, 6.0, 6.0, 6.0 + 60.0 / 40.0]
    np.testing.assert_allclose(ev.time, want_t, rtol=1e-15)
    np.testing.assert_allclose(ev.jump[:, 0], [80.0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(ev.jump[:, 1], [0, 30.0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(ev.rate_change[:, 0], [0, 0, 10.0, -10.0, 0, 0, 0, 0])
    np.testing.assert_allclose(ev.rate_change[:, 1], [0, 0, 0, 0, 30.0, 40.0, -30.0, -40.0])
    np.testing.assert_array_equal(ev.keep, 1.0)
    assert ev.n_events == 8


def test_events_after_t_end_have_no_effect_and_times_are_clipped(dosed):
    sched = Schedule.build([Bolus(9.8, 100.0)], [], resets=[Reset(10.5)])
    ev, _ = _resolve(dosed, sched, _theta(dosed, ALAG=0.5), t_end=10.0)
    # Reset, bolus, and the padding infusion's start and stop (at 0, no lag).
    np.testing.assert_allclose(ev.time, [10.0, 10.0, 0.0, 0.0])
    np.testing.assert_array_equal(ev.keep, 1.0)  # the reset is after t_end
    np.testing.assert_array_equal(ev.jump, 0.0)  # the lagged bolus arrives after t_end


def test_reset_cancels_the_stop_of_a_running_infusion(dosed):
    sched = Schedule.build(
        [],
        [Infusion(0.0, 10.0, 5.0), Infusion(2.0, 10.0, 1.0), Infusion(4.0, 10.0, 2.0)],
        resets=[Reset(3.0)],
    )
    ev, _ = _resolve(dosed, sched, _theta(dosed, ALAG=0.0, F=1.0))
    assert ev.keep[0] == 0.0 and ev.order[0] == 0 and ev.time[0] == 3.0
    # Stops: the first infusion (running at 3) cancelled; the second ended at 3 (reset
    # first at equal times: cancelled as well); the third starts after the reset.
    np.testing.assert_allclose(ev.rate_change[5:8, 0], [0.0, 0.0, -10.0])
    np.testing.assert_allclose(ev.rate_change[2:5, 0], [10.0, 10.0, 10.0])


def test_resolving_is_jit_and_vmap_able_with_static_shapes(dosed):
    sched = Schedule.build([Bolus(1.0, 100.0)], [Infusion(2.0, 5.0, 2.0)], resets=[Reset(8.0)])
    thetas = jnp.stack([_theta(dosed, ALAG=a) for a in (0.1, 0.2, 0.3)])

    @jax.jit
    def times(theta):
        return _resolve(dosed, sched, theta)[0].time

    got = jax.vmap(times)(thetas)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got[:, 1], [1.1, 1.2, 1.3])
    dt = jax.grad(lambda th: _resolve(dosed, sched, th)[0].time[2])(thetas[0])
    assert dt[dosed.parameter_names.index("ALAG")] == 1.0


def test_modelled_infusion_without_declaration_is_refused_with_how_to_declare(oral):
    sched = Schedule.build(modelled=[ModelledInfusion(0.0, 100.0, 2, by="rate")])
    with pytest.raises(InputError) as err:
        check_dose_declarations(oral, sched)
    text = str(err.value)
    assert (
        "compartment 2 ('central')" in text
        and "tq.with_dose_parameters(model, cmt=2, rate=" in text
    )
    # Inside compiled code the rate is NaN: a non-finite solve, never a silent one.
    ev, _ = _resolve(oral, sched, _theta(oral))
    assert math.isnan(float(ev.rate_change[3, 1]))  # after the padding bolus and infusion


def test_compartment_beyond_the_states_is_refused(oral):
    with pytest.raises(InputError, match="compartment 3"):
        check_dose_declarations(oral, Schedule.build([Bolus(0.0, 1.0, cmt=3)]))
