import shutil

import pytest

import twin_uq as tq
from twin_uq.report.render import PDFUnavailableWarning, write_pdf

from .conftest import HOSTILE_ID, assert_not_blank, load_in_browser


def test_cohort_report_sections(reports):
    html = reports["cohort"].read_text()
    post = reports["hostile_fit"]
    for text in (
        "Convergence diagnostics",
        "Visual predictive check",
        "new cohorts with the observed design",
        "Normalised prediction distribution errors",
        "Goodness of fit",
        "Population parameters",
        "Trust per patient",
        "Solver failures",
        "one_compartment_oral",
        post.idata.attrs["data_hash"],
    ):
        assert text in html, text
    # One trust row per patient, the data-free patient flagged for its missing data.
    assert html.count('<th scope="row" class="pid">') == len(post.patient_ids)
    assert "No measurements" in html
    assert "<script" not in html.lower()
    # The population checks: one VPC figure for the one output, NPDE and GOF figures, each
    # with its accessible title, and the NPDE test table of the true model.
    for key in ("vpc-0-title", "npde-title", "gof-title"):
        assert f'id="{key}"' in html, key
    assert "no evidence of misfit" in html
    assert "against time (one dose per patient)" in html


def test_cohort_report_with_sbc_and_coverage(reports):
    # the shared cohort report is rendered with SBC_EXAMPLE and COVERAGE_EXAMPLE (conftest)
    html = reports["cohort"].read_text()
    assert "Simulation-based calibration" in html and "replicate 6: solver failed" in html
    assert "Forecast coverage" in html and "empirical" in html
    assert html.count("<svg ") == html.count("<title id=")


def test_pdf_without_chromium_warns(oral_fit, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("TWIN_UQ_CHROMIUM", raising=False)
    with pytest.warns(PDFUnavailableWarning, match="Chromium was not found"):
        path = tq.report.cohort(oral_fit, tmp_path / "c.html", pdf=True)
    assert path.exists() and not path.with_suffix(".pdf").exists()


@pytest.mark.browser
def test_cohort_report_in_browser(browser, reports, tmp_path):
    png = tmp_path / "cohort.png"
    page = load_in_browser(browser, reports["cohort"], png)
    assert page["errors"] == []
    assert page["requests"] == [page["url"]]
    assert page["dialogs"] == [], "an injected script ran"
    assert HOSTILE_ID in page["text"]
    assert HOSTILE_ID not in page["html"]  # only its escaped form is markup
    assert "Trust per patient" in page["text"] and "one_compartment_oral" in page["text"]
    for section in ("Visual predictive check", "Normalised prediction distribution errors",
                    "Goodness of fit"):  # fmt: skip
        assert section in page["text"], section
    assert_not_blank(png)


@pytest.mark.browser
def test_cohort_pdf(browser, reports, tmp_path):
    # Chromium prints the shared cohort report (a copy); that tq.report.cohort(pdf=True)
    # reaches write_pdf is checked by test_pdf_without_chromium_warns.
    html = tmp_path / "c.html"
    shutil.copyfile(reports["cohort"], html)
    pdf = write_pdf(html)
    assert pdf == html.with_suffix(".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 10_000
