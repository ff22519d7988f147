"""assess_prediction: extrapolation and interval width against the clinical range."""

import numpy as np
import pytest
import xarray as xr

from twin_uq.trust import TrustAssessment, TrustThresholds, assess_prediction
from twin_uq.trust.assess import Status


def _assessment(status=Status.TRUSTWORTHY, last=24.0, first=0.5):
    return TrustAssessment(
        "P01", status, (), {"last_obs_time": last, "first_obs_time": first}, TrustThresholds()
    )


def _prediction(times, half_width, last=24.0, output="concentration", **attrs):
    t = np.asarray(times, float)
    med = np.full((1, t.size), 2.0)
    return xr.Dataset(
        {
            "median": (("output", "time"), med),
            "lower": (("output", "time"), med - half_width),
            "upper": (("output", "time"), med + half_width),
        },
        coords={"time": t, "output": [output]},
        attrs={"patient_id": "P01", "last_observation_time": last, "interval": 0.9} | attrs,
    )


def test_inside_the_data_with_narrow_interval_keeps_the_status():
    # clinical range of one_compartment_oral concentration: 0-4 mg/L; width 0.8 = 20 %
    out = assess_prediction(
        _assessment(), _prediction([1.0, 12.0, 30.0], 0.4, model_name="one_compartment_oral")
    )
    assert out.status is Status.TRUSTWORTHY
    assert out.metrics["interval_width_fraction"] == pytest.approx(0.2)
    assert out.metrics["horizon"] == pytest.approx(6.0)
    assert out.metrics["extrapolation_ratio"] == pytest.approx(6.0 / 23.5)


def test_long_extrapolation_is_limited():
    out = assess_prediction(_assessment(), _prediction([1.0, 72.0], 0.4), clinical_range=(0, 4))
    assert out.status is Status.LIMITED
    assert out.metrics["extrapolation_ratio"] == pytest.approx(48.0 / 23.5)
    assert any("past the last measurement" in r for r in out.reasons)


def test_interval_width_against_clinical_range():
    wide = assess_prediction(_assessment(), _prediction([12.0], 1.2), clinical_range=(0, 4))
    assert wide.status is Status.LIMITED and wide.metrics[
        "interval_width_fraction"
    ] == pytest.approx(0.6)
    useless = assess_prediction(_assessment(), _prediction([12.0], 2.5), clinical_range=(0, 4))
    assert useless.status is Status.INSUFFICIENT
    # A per-output override makes the same interval acceptable.
    th = TrustThresholds(output_overrides={"concentration": {"interval_width_limited": 0.7}})
    ok = assess_prediction(
        _assessment(), _prediction([12.0], 1.2), clinical_range=(0, 4), thresholds=th
    )
    assert ok.status is Status.TRUSTWORTHY


def test_prediction_never_upgrades_a_patient():
    out = assess_prediction(
        _assessment(Status.INSUFFICIENT), _prediction([12.0], 0.1), clinical_range=(0, 4)
    )
    assert out.status is Status.INSUFFICIENT


def test_failed_solves_make_the_prediction_unreliable():
    pred = _prediction([12.0], 0.1, n_draws=990, n_failed_draws=10)
    out = assess_prediction(_assessment(), pred, clinical_range=(0, 4))
    assert out.status is Status.UNRELIABLE


def test_unknown_clinical_range_is_said_and_wrong_inputs_refused():
    out = assess_prediction(_assessment(), _prediction([12.0], 0.1, output="glucose"))
    assert any("No clinically meaningful range" in r for r in out.reasons)
    with pytest.raises(ValueError, match="patient 'P02'"):
        assess_prediction(_assessment(), _prediction([12.0], 0.1, patient_id="P02"))
    with pytest.raises(ValueError, match="no variable 'upper'"):
        assess_prediction(_assessment(), _prediction([12.0], 0.1).drop_vars("upper"))
    with pytest.raises(ValueError, match="high > low"):
        assess_prediction(_assessment(), _prediction([12.0], 0.1), clinical_range=(4, 0))
