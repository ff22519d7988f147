import numpy as np
import pytest

from twin_uq.report.text import (
    format_estimate,
    format_interval,
    format_number,
    format_time,
    interval_sentence,
    percent,
    ratio_sentence,
)


def test_interval_sentence_reads_plainly():
    s = interval_sentence("concentration", 14.0, "h", 1.0873, 1.6412, "mg/L", 0.9)
    assert s == "With 90% probability, concentration at 14 h will be between 1.1 and 1.6 mg/L."


@pytest.mark.parametrize(
    ("x", "sig", "text"),
    [
        (1.0873, 2, "1.1"),
        (0.001234, 2, "0.0012"),
        (1234.5, 2, "1,200"),
        (0.0, 2, "0"),
        (-0.0013, 2, "-0.0013"),
    ],
)
def test_format_number(x, sig, text):
    assert format_number(x, sig) == text


def test_interval_ends_stay_distinct():
    assert format_interval(1.01, 1.04) == ("1.01", "1.04")
    assert format_estimate(1.02, 1.01, 1.04) == ("1.02", "1.01 to 1.04")
    assert format_time(14.0) == "14" and format_time(0.25) == "0.25"
    assert percent(0.9) == "90%" and percent(0.975) == "97.5%"
    assert format_number(float("nan")) == "not available"


def test_ratio_sentence_directions():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(20_000)
    # Median ratio 1.2 with a 90% interval clearly above 1: "about 20% higher (... higher)".
    higher = ratio_sentence("Clearance", 1.2 * np.exp(0.05 * z), 0.9, "a typical patient")
    assert higher.startswith("Clearance is about 20% higher than a typical patient (90% interval ")
    assert higher.endswith("higher).")
    lower = ratio_sentence("Volume", 0.7 * np.exp(0.05 * z), 0.9, "a typical patient")
    assert lower.startswith("Volume is about 30% lower")
    lo, hi = (
        int(x)
        for x in lower.split("interval ")[1].split(" lower")[0].replace("%", "").split(" to ")
    )
    assert lo < 30 < hi  # smaller decrease first
    unsure = ratio_sentence("Absorption", np.exp(0.5 * z), 0.9, "a typical patient")
    assert "cannot rule out no difference" in unsure and "lower to" in unsure
