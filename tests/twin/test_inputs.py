"""Scaling a dosing template keeps every kind of dose, its steady state and the resets."""

import math

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.twin.inputs import scaled_schedule


def test_scaling_replaces_amounts_and_keeps_everything_else():
    template = tq.Schedule.build(
        [tq.Bolus(0.0, 100.0, 1, ss=1, ii=12.0), tq.Bolus(24.0, 50.0, 2)],
        [tq.Infusion.from_amount(36.0, 80.0, 2.0, 2, ss=2, ii=24.0)],
        modelled=[tq.ModelledInfusion(48.0, 30.0, 2, by="rate")],
        resets=[tq.Reset(30.0)],
    )
    scaled = scaled_schedule(template, 7.5)
    assert [(b.time, b.amount, b.cmt, b.ss, b.ii) for b in scaled.boluses()] == [
        (0.0, 7.5, 1, 1, 12.0),
        (24.0, 7.5, 2, 0, 0.0),
    ]
    (inf,) = scaled.infusions()
    assert (inf.start, inf.duration, inf.cmt, inf.ss, inf.ii) == (36.0, 2.0, 2, 2, 24.0)
    assert inf.rate * inf.duration == pytest.approx(7.5)
    (mod,) = scaled.modelled_infusions()
    assert (mod.start, mod.amount, mod.cmt, mod.by) == (48.0, 7.5, 2, "rate")
    assert [r.time for r in scaled.resets()] == [30.0]
    np.testing.assert_array_equal(scaled.steady_mask, template.steady_mask)


def test_a_constant_steady_state_infusion_has_no_amount_to_scale():
    template = tq.Schedule.build([], [tq.Infusion(0.0, 2.0, math.inf, 2, ss=1)])
    with pytest.raises(tq.InputError, match="constant steady-state infusion"):
        scaled_schedule(template, 10.0)
