import re

import pytest

import twin_uq as tq

from .conftest import HOSTILE_ID, assert_not_blank, load_in_browser


def test_patient_report_states_every_prediction_with_interval(reports, oral_fit):
    html = reports["patient"].read_text()
    # "With 90% probability, concentration at 14 h will be between A and B mg/L."
    sentences = re.findall(
        r"With 90% probability, concentration at (\d+) h will be between ([-\d.]+) and ([-\d.]+) mg/L\.",
        html,
    )
    times = {s[0] for s in sentences}
    assert {"14", "30"} <= times
    for _, lo, hi in sentences:
        assert float(lo) < float(hi)
    # The stated interval is the twin's own 90% interval of the true level.
    pred = oral_fit.twin("P01").predict([14.0], draws=200)
    lo, hi = float(pred["f_lower"].item()), float(pred["f_upper"].item())
    first = next(s for s in sentences if s[0] == "14")
    assert abs(float(first[1]) - lo) <= 0.05 * abs(lo) + 1e-3
    assert abs(float(first[2]) - hi) <= 0.05 * abs(hi) + 1e-3


def test_patient_report_sections(reports, oral_fit):
    html = reports["patient"].read_text()
    status = oral_fit.trust()["P01"].status.value
    assert f'class="status-text">{status}<' in html
    for text in (
        "What if the treatment changed?",
        "Dose options",
        "concentration between 0.5 and 3 at t=12",
        "than a typical patient with the same covariates",
        "Limitations of the model",
        oral_fit.model.card.limitations[0],
        "one_compartment_oral",
        oral_fit.idata.attrs["data_hash"],
        "Approximate posterior",
    ):
        assert text in html, text
    assert "<script" not in html.lower()
    assert 'lang="en"' in html
    # Every figure is an accessible image with a title and a description.
    n_svg = html.count("<svg ")
    assert n_svg >= 3
    assert html.count('role="img"') == n_svg
    assert html.count("<title id=") == n_svg and html.count("<desc id=") == n_svg


def test_patient_report_names_the_best_next_measurement(reports):
    # P01 was last measured at 24 h and the last forecast is at 30 h: the candidates lie
    # between, and the best is stated with its expected narrowing and Monte Carlo error.
    html = reports["patient"].read_text()
    assert "Best next measurement" in html
    best = re.search(r"measurement at <strong>t = ([0-9.]+) h</strong>", html)
    assert best is not None and 24.0 < float(best.group(1)) <= 30.0
    assert "the concentration forecast at t = 30" in html
    assert "Monte Carlo error" in html


def test_patient_without_data_gets_population_prediction(reports):
    html = reports["no_data"].read_text()
    assert "population prediction" in html
    assert "Insufficient data" in html
    assert 'class="status-text">insufficient<' in html
    assert "No measurements" in html
    assert "With 90% probability" in html


def test_hostile_id_is_escaped(reports):
    for key in ("hostile_patient", "cohort"):
        html = reports[key].read_text()
        assert HOSTILE_ID not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unknown_patient_and_bad_arguments(oral_fit, tmp_path):
    with pytest.raises(KeyError, match="P99"):
        tq.report.patient(oral_fit, "P99", tmp_path / "x.html")
    with pytest.raises(ValueError, match="interval"):
        tq.report.patient(oral_fit, "P01", tmp_path / "x.html", interval=1.5)
    with pytest.raises(ValueError, match="forecast_times"):
        tq.report.patient(oral_fit, "P01", tmp_path / "x.html", forecast_times=[-1.0])
    assert not (tmp_path / "x.html").exists()


@pytest.mark.browser
@pytest.mark.parametrize("key", ["patient", "no_data", "hostile_patient"])
def test_patient_report_in_browser(browser, reports, key, tmp_path):
    png = tmp_path / f"{key}.png"
    page = load_in_browser(browser, reports[key], png)
    assert page["errors"] == []
    assert page["requests"] == [page["url"]], "the report must not load anything else"
    assert page["dialogs"] == []
    assert page["lang"] == "en"
    text = page["text"]
    assert "With 90% probability" in text
    assert "Trust status:" in text
    assert "one_compartment_oral" in text
    if key == "hostile_patient":
        assert HOSTILE_ID in text  # shown as text, not executed
    if key == "no_data":
        assert "Insufficient data" in text
    assert_not_blank(png)
