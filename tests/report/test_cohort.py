import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.report.render import PDFUnavailableWarning
from twin_uq.validate import SBCResult

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


def test_cohort_report_with_sbc_and_coverage(oral_fit, tmp_path):
    ranks = pd.DataFrame({"mu[CL]": [3, 50, 97, 20, 70, 40], "omega[CL]": [10, 90, 55, 30, 60, 5]})
    sbc = SBCResult(ranks=ranks, n_rank_draws=99, failed=((6, "solver failed"),))
    coverage = pd.DataFrame(
        {
            "nominal": [0.5, 0.8, 0.9],
            "empirical": [0.48, 0.82, 0.88],
            "lower": [0.4, 0.74, 0.82],
            "upper": [0.56, 0.88, 0.93],
        }
    )
    path = tq.report.cohort(oral_fit, tmp_path / "c.html", sbc=sbc, coverage=coverage)
    html = path.read_text()
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
def test_cohort_pdf(browser, oral_fit, tmp_path):
    path = tq.report.cohort(oral_fit, tmp_path / "c.html", pdf=True)
    pdf = path.with_suffix(".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 10_000
