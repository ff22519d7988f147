"""The patient report's model-average section (twin_uq/report/patient_average.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.report.patient_average import average_section
from twin_uq.report.render import BADGE

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


@pytest.mark.browser
def test_structural_uncertainty_section_in_browser(oral_fit, browser, tmp_path):
    """In chromium: the section names every model with its weight, draws and trust, and
    every averaged forecast with its interval beside each contributing model's."""
    from .conftest import assert_not_blank, load_in_browser

    # A third label with weight 0: listed as not contributing, absent from the forecasts.
    avg3 = tq.average(
        {"first": oral_fit, "second": oral_fit, "unused": oral_fit},
        weights=[0.7, 0.3, 0.0],
        n_draws=1000,
    )
    path = tq.report.patient(
        oral_fit, "P01", tmp_path / "p01.html", forecast_times=TIMES, average=avg3,
        next_sample=False,
    )  # fmt: skip
    png = tmp_path / "p01.png"
    page = load_in_browser(browser, path, png)
    assert page["errors"] == [] and page["dialogs"] == []
    assert page["requests"] == [page["url"]], "the report must not load anything else"
    assert_not_blank(png)

    p = browser.new_page(viewport={"width": 1000, "height": 1300})
    p.goto(path.resolve().as_uri(), wait_until="load")
    section = p.locator("section[aria-labelledby='average-h']")
    assert section.count() == 1 and section.is_visible()
    heading = section.locator("h2").inner_text()
    assert heading == "Structural uncertainty: several models averaged"
    text = section.inner_text()
    assert "first (one_compartment_oral) 70% (700 draws)" in text
    assert "Not contributing (weight 0): unused" in text
    assert "given weights" in text
    tables = section.locator("table")
    assert tables.count() == 2
    # Models table: label, model, weight, draws, method, trust (a badge for each model
    # that contributes; the status the report states is that twin's own assessment).
    models = [
        [c.inner_text().strip() for c in row.locator("th, td").all()]
        for row in tables.nth(0).locator("tbody tr").all()
    ]
    trust = avg3.twin("P01").trust()
    assert [m[:4] for m in models] == [
        ["first", "one_compartment_oral", "70%", "700"],
        ["second", "one_compartment_oral", "30%", "300"],
        ["unused", "one_compartment_oral", "0%", "0"],
    ]
    for m in models[:2]:
        badge = tables.nth(0).locator("tbody tr", has_text=m[0]).locator(".badge")
        assert badge.count() == 1 and badge.is_visible()
        assert m[5].endswith(BADGE[str(trust[m[0]].status)]["label"]), m
    assert models[2][5] == "not contributing"
    # Forecast table: every row has the averaged median and interval, and each
    # contributing model's median with its interval; no column for the unused model.
    head = [c.inner_text().strip() for c in tables.nth(1).locator("thead th").all()]
    assert head[-2:] == ["first", "second"] and "unused" not in head
    rows = tables.nth(1).locator("tbody tr").all()
    assert len(rows) == len(TIMES)
    interval = re.compile(r"^-?[\d.]+ to -?[\d.]+$")
    per_model = re.compile(r"^-?[\d.]+ \(-?[\d.]+ to -?[\d.]+\)$")
    for row in rows:
        cells = [c.inner_text().strip() for c in row.locator("th, td").all()]
        assert cells[0] == "concentration"
        assert re.fullmatch(r"-?[\d.]+", cells[2]), cells
        assert interval.fullmatch(cells[3]), cells
        assert all(per_model.fullmatch(c) for c in cells[4:]), cells
    assert "Read with each model's trust status" in text
    section.screenshot(path=str(tmp_path / "section.png"))
    p.close()
