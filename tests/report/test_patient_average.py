"""The patient report's model-average section (twin_uq/report/patient_average.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.report.patient_average import average_section

TIMES = np.array([14.0, 30.0])


@pytest.fixture(scope="module")
def avg(oral_fit):
    # The same fit under two labels with unequal given weights: no second compile, and the
    # draws each label contributes are known (700 / 300 of 1000).
    return tq.average({"first": oral_fit, "second": oral_fit}, weights=[0.7, 0.3], n_draws=1000)


def test_average_section_numbers_are_the_averaged_twins(avg):
    sec = average_section(avg, "P01", TIMES, 0.9, seed=0)
    assert [m["weight"] for m in sec["models"]] == ["70%", "30%"]
    assert [m["draws"] for m in sec["models"]] == [700, 300]
    pred = avg.twin("P01").predict(TIMES, interval=0.9, seed=0)
    f = pred["f"].sel(time=30.0).values[:, 0]
    lo, hi = np.quantile(f, [0.05, 0.95])
    row = next(r for r in sec["forecasts"] if r["time"] == "30")
    a, b = (float(x) for x in row["interval"].split(" to "))
    assert a == pytest.approx(lo, rel=0.05) and b == pytest.approx(hi, rel=0.05)
    # each model's own interval comes from its own draws only
    labels = pred["model"].values
    first = f[labels == "first"]
    m = next(m for m in row["models"] if m["label"] == "first")
    a1, b1 = (float(x) for x in m["interval"].split(" to "))
    assert a1 == pytest.approx(np.quantile(first, 0.05), rel=0.05)
    assert b1 == pytest.approx(np.quantile(first, 0.95), rel=0.05)


def test_patient_report_shows_the_model_average(avg, oral_fit, tmp_path):
    path = tq.report.patient(
        oral_fit, "P01", tmp_path / "p01.html", forecast_times=TIMES, average=avg,
        next_sample=False,
    )  # fmt: skip
    html = path.read_text()
    assert "Structural uncertainty: several models averaged" in html
    assert "given weights" in html
    assert re.search(r"<th scope=\"row\">first</th><td>one_compartment_oral</td>", html)
    # every averaged forecast is shown with its interval
    rows = re.findall(r"<th scope=\"row\">concentration</th><td class=\"num\">(\d+)</td>", html)
    assert {"14", "30"} <= set(rows)
    assert "<script" not in html.lower()


def test_average_of_other_patients_is_refused(avg):
    with pytest.raises(tq.errors.TwinUQError):
        average_section(avg, "NOT-A-PATIENT", TIMES, 0.9, seed=0)
