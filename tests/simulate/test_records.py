"""Dose records and their padded arrays: validation, round trips, stacking, pickling."""

import math
import pickle

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.simulate.schedule import (
    STEADY_BOLUS,
    STEADY_INFUSION,
    STEADY_MODELLED,
    Bolus,
    Infusion,
    ModelledInfusion,
    Reset,
    Schedule,
    as_schedule,
    schedule_fields,
    stack_schedules,
)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Bolus(0.0, 1.0, ss=3, ii=12.0), "ss must be 0"),
        (lambda: Bolus(0.0, 1.0, ss=True, ii=12.0), "ss must be 0"),
        (lambda: Bolus(0.0, 1.0, ss=1), "needs its interdose interval ii > 0"),
        (lambda: Bolus(0.0, 1.0, ss=2, ii=-1.0), "ii (interdose interval) must be >= 0"),
        (lambda: Bolus(0.0, 1.0, ii=12.0), "without ss"),
        (lambda: Bolus(0.0, -1.0), "amount must be >= 0"),
        (lambda: Bolus(0.0, 1.0, ss=1, ii=math.nan), "must be finite"),
        (lambda: Infusion(0.0, 1.0, 2.0, ss=1), "needs its interdose interval"),
        (lambda: Infusion(0.0, 1.0, math.inf), "only the constant steady-state infusion"),
        (lambda: Infusion(0.0, 1.0, math.inf, ss=1, ii=24.0), "only the constant"),
        (lambda: Infusion(0.0, 0.0, 2.0), "rate > 0"),
        (lambda: ModelledInfusion(0.0, -1.0), "amount must be >= 0"),
        (lambda: ModelledInfusion(0.0, 1.0, by="dur"), "by must be 'rate'"),
        (lambda: ModelledInfusion(0.0, 1.0, cmt=-1), "compartment"),
        (lambda: ModelledInfusion(0.0, 1.0, ss=1), "needs its interdose interval"),
        (lambda: Reset(math.inf), "must be finite"),
    ],
)
def test_invalid_records_are_refused_with_the_reason(make, words):
    with pytest.raises(InputError) as err:
        make()
    assert words in str(err.value)


def test_records_are_exported():
    assert tq.ModelledInfusion is ModelledInfusion and tq.Reset is Reset
    assert tq.Bolus is Bolus and tq.Infusion is Infusion


def _full():
    return Schedule.build(
        [Bolus(5.0, 10.0, cmt=2), Bolus(1.0, 100.0, ss=1, ii=12.0)],
        [Infusion(2.0, 3.0, 4.0, ss=2, ii=24.0), Infusion(0.0, 7.0, math.inf, ss=1)],
        modelled=[
            ModelledInfusion(3.0, 50.0, by="rate"),
            ModelledInfusion(1.0, 20.0, 2, ss=1, ii=8.0),
        ],
        resets=[Reset(9.0), Reset(4.0)],
        n_bolus=3,
        n_modelled=3,
    )


def test_round_trip_of_every_record_kind():
    s = _full()
    assert s.boluses() == [Bolus(1.0, 100.0, 0, 1, 12.0), Bolus(5.0, 10.0, 2)]
    assert s.infusions() == [
        Infusion(0.0, 7.0, math.inf, 0, 1, 0.0),
        Infusion(2.0, 3.0, 4.0, 0, 2, 24.0),
    ]
    assert s.modelled_infusions() == [
        ModelledInfusion(1.0, 20.0, 2, "duration", 1, 8.0),
        ModelledInfusion(3.0, 50.0, 0, "rate"),
    ]
    assert s.resets() == [Reset(4.0), Reset(9.0)]
    assert (s.n_bolus, s.n_infusion, s.n_modelled, s.n_reset, s.n_steady) == (3, 2, 3, 2, 4)
    np.testing.assert_array_equal(s.modelled_by, [-2, -1, 0])
    # Steady-state doses point at their slot (after sorting by time).
    kinds = list(zip(np.asarray(s.steady_kind), np.asarray(s.steady_index), strict=True))
    assert kinds == [
        (STEADY_BOLUS, 0),
        (STEADY_INFUSION, 0),
        (STEADY_INFUSION, 1),
        (STEADY_MODELLED, 0),
    ]
    assert np.all(np.asarray(s.steady_mask))
    assert np.isinf(np.asarray(s.infusion_stop)[0])


def test_old_calls_give_the_old_arrays_and_empty_new_groups():
    s = Schedule.build([Bolus(1.0, 2.0)], [Infusion(0.5, 3.0, 2.0, cmt=2)])
    np.testing.assert_array_equal(s.bolus_time, [1.0])
    np.testing.assert_array_equal(s.infusion_stop, [2.5])
    assert (s.n_modelled, s.n_reset, s.n_steady) == (0, 0, 0)
    np.testing.assert_array_equal(s.bolus_ss, [0])
    np.testing.assert_array_equal(s.infusion_ii, [0.0])
    # At least one (masked) bolus and infusion slot, as before.
    empty = Schedule.build()
    assert (empty.n_bolus, empty.n_infusion) == (1, 1)
    assert not bool(empty.bolus_mask[0])


def test_padded_sizes_smaller_than_given_are_refused():
    with pytest.raises(ValueError, match="resets"):
        schedule_fields(resets=[Reset(1.0), Reset(2.0)], n_reset=1)
    with pytest.raises(InputError, match=r"twin_uq\.Reset"):
        schedule_fields(resets=[1.0])


def test_pad_and_stack_keep_every_field():
    a = _full()
    b = Schedule.build([Bolus(0.0, 1.0)])
    padded = b.pad(3, 2, 1, n_modelled=3, n_reset=2, n_steady=4)
    assert padded.boluses() == b.boluses() and padded.resets() == []
    stacked = stack_schedules([a, b])
    assert stacked.bolus_time.shape == (2, 3) and stacked.reset_time.shape == (2, 2)
    assert stacked.steady_kind.shape == (2, 4) and stacked.modelled_by.shape == (2, 3)
    fields = schedule_fields(
        *_records(a), modelled=a.modelled_infusions(), resets=a.resets(), n_bolus=3, n_modelled=3
    )
    from_fields = stack_schedules([fields, b])
    for name in Schedule.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(stacked, name), getattr(from_fields, name))
    assert not np.any(np.asarray(stacked.reset_mask[1]))


def _records(s):
    return s.boluses(), s.infusions(), ()


def test_schedules_pickle():
    s = _full()
    back = pickle.loads(pickle.dumps(s))
    for name in Schedule.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(back, name), getattr(s, name))


def test_a_mixed_list_of_doses_is_the_schedule_of_its_kinds_and_other_records_are_refused():
    doses = [Infusion(6.0, 2.0, 1.5), Bolus(12.0, 50.0, 1), Bolus(0.0, 100.0, 1)]
    got = as_schedule(doses)
    want = Schedule.build([Bolus(12.0, 50.0, 1), Bolus(0.0, 100.0, 1)], [Infusion(6.0, 2.0, 1.5)])
    for name in Schedule.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert as_schedule(want) is want
    # A reset in a list of doses was once dropped without a word by new_patient.
    with pytest.raises(TypeError, match="list of Bolus/Infusion; got Reset"):
        as_schedule([Bolus(0.0, 100.0, 1), Reset(4.0)])
