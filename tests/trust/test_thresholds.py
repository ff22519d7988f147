"""TrustThresholds: validation, JSON provenance round trip, per-output overrides."""

import pytest

from twin_uq.trust import TrustThresholds


def test_json_round_trip_keeps_every_field():
    th = TrustThresholds(
        contraction_limited=0.6,
        clinical_range={"glucose": (70.0, 180.0)},
        output_overrides={"glucose": {"interval_width_limited": 0.3}},
    )
    back = TrustThresholds.from_json(th.to_json())
    assert back == th


def test_for_output_applies_overrides_only_to_that_output():
    th = TrustThresholds(output_overrides={"conc": {"extrapolation_limited": 3.0}})
    assert th.for_output("conc").extrapolation_limited == 3.0
    assert th.for_output("other").extrapolation_limited == th.extrapolation_limited


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(contraction_insufficient=0.6, contraction_limited=0.5), "contraction_insufficient"),
        (dict(rhat_max=0.9), "rhat_max"),
        (dict(approximate_cap="great"), "approximate_cap"),
        (dict(interval_width_limited=2.0, interval_width_insufficient=1.0), "interval_width"),
        (dict(output_overrides={"conc": {"rhat_max": 2}}), "unknown keys"),
        (dict(mahalanobis_quantile=1.0), "mahalanobis_quantile"),
    ],
)
def test_inconsistent_thresholds_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrustThresholds(**kwargs)
