"""The heart twins' report sections state what the twins' own functions answer, with trust.

Twins built from chosen draws (tests/heart_twins.py, no fit): each number on the page is
checked against the twin's API called directly (``predict``, ``parameters``, the models'
``alternans_probability`` and ``resistance_what_if``), every prediction against its
interval, and the trust status beside each table.
"""

import re
import sys

import numpy as np
import pytest
from heart_twins import PERIOD, circulation_twin, inflow, restitution_twin

from twin_uq.errors import InputError
from twin_uq.report.heart import circulation_report, restitution_report

from .conftest import assert_not_blank, load_in_browser


def _cells(html: str, first: str) -> list[str]:
    """The numeric cells of the table row whose first cell starts with ``first``."""
    row = re.search(rf"<tr><td>{re.escape(first)}[^<]*</td>(.*?)</tr>", html)
    assert row, f"no row {first!r}"
    return re.findall(r'<td class="num">([^<]*)</td>', row.group(1))


@pytest.fixture(scope="module")
def restitution(tmp_path_factory):
    """A restitution twin whose draws straddle slope 1 at 400 ms, and its page."""
    rng = np.random.default_rng(0)
    S = 200
    theta = np.column_stack(
        [
            370.0 * np.exp(0.03 * rng.standard_normal(S)),  # apd_slow (ms)
            1 / (1 + np.exp(-(-2.0 + 0.5 * rng.standard_normal(S)))),  # shortening
            1 / (1 + np.exp(-0.5 * rng.standard_normal(S))),  # h_min
        ]
    )
    # A residual SD of 0.01 ms: the predictive quantiles are those of the draws, the same
    # whatever grid the page predicts on, so the page's numbers are checkable to rounding.
    twin = restitution_twin(theta, n_chains=2, noise_sd=0.01)
    path = tmp_path_factory.mktemp("heart") / "r.html"
    restitution_report(twin, path, bcls=(500.0, 1000.0), alternans_bcl=400.0)
    return twin, path


def test_restitution_section_states_the_twins_answers(restitution):
    twin, path = restitution
    html = path.read_text()
    # no cohort assessment given: limited at best, and the page says why
    assert 'Trust status: <strong class="status-text">limited</strong>' in html
    assert "not assessed" in html and html.count("trust limited") >= 2
    ds = twin.predict([500.0, 1000.0], interval=0.9)
    for k, bcl in enumerate(("500", "1000")):
        median, interval = _cells(html, bcl)
        lo, hi = (float(x) for x in interval.split(" to "))
        assert float(median) == pytest.approx(ds["median"].values[0, k], abs=0.51)
        assert lo == pytest.approx(ds["lower"].values[0, k], abs=0.51)
        assert hi == pytest.approx(ds["upper"].values[0, k], abs=0.51)
        assert lo <= float(median) <= hi
    module = sys.modules[type(twin.model).__module__]
    a = module.alternans_probability(twin, 400.0)
    assert 0.05 < a["probability"] < 0.95  # the draws straddle slope 1: a real question
    p, mcse = _cells(html, "P(alternans at 400 ms)")
    assert p == f"{100 * a['probability']:.1f}%" and mcse == f"MCSE {100 * a['mcse']:.1f} points"
    slope, slope_interval = _cells(html, "Restitution slope at 400 ms")
    assert slope == f"{a['slope_median']:.2f}"
    assert slope_interval == f"90% interval {a['slope_lower']:.2f} to {a['slope_upper']:.2f}"
    assert '<svg role="img"' in html and "<script" not in html


@pytest.mark.browser
def test_restitution_section_in_browser(browser, restitution, tmp_path):
    png = tmp_path / "restitution.png"
    page = load_in_browser(browser, restitution[1], png)
    assert page["errors"] == [] and page["dialogs"] == []
    assert page["requests"] == [page["url"]], "the report must not load anything else"
    assert "Trust status:" in page["text"] and "P(alternans at 400 ms)" in page["text"]
    assert_not_blank(png)


def test_a_section_refuses_a_twin_of_another_model(tmp_path):
    twin = circulation_twin(np.tile([1.0, 1.4, 0.05], (4, 1)))
    with pytest.raises(InputError, match="no alternans_probability"):
        restitution_report(twin, tmp_path / "x.html")


@pytest.mark.slow  # compiles a 12-beat what-if: ~40 s on 2 busy cores (the what-if itself
# is checked against the steady state in tests/models/test_windkessel3.py, default run)
def test_circulation_section_states_the_twins_answers(tmp_path):
    rng = np.random.default_rng(1)
    S = 100
    theta = np.column_stack(
        [
            np.exp(0.1 * rng.standard_normal(S)),
            1.4 * np.exp(0.1 * rng.standard_normal(S)),
            0.05 * np.exp(0.2 * rng.standard_normal(S)),
        ]
    )
    twin = circulation_twin(theta, n_chains=2)
    flow = inflow(13)
    html = circulation_report(
        twin, tmp_path / "c.html", inflow=flow, period=PERIOD, factor=0.8, threshold=70.0
    ).read_text()
    assert 'Trust status: <strong class="status-text">limited</strong>' in html
    assert html.count("trust limited") >= 2
    par = twin.parameters(interval=0.9)
    for name in ("R", "C"):
        median, interval = _cells(html, {"R": "peripheral", "C": "arterial"}[name])
        assert median == f"{par.loc[name, 'median']:.2f}"
        assert interval == f"{par.loc[name, 'lower']:.2f} to {par.loc[name, 'upper']:.2f}"
    module = sys.modules[type(twin.model).__module__]
    w = module.resistance_what_if(twin, 0.8, flow, PERIOD, threshold=70.0)
    for key in ("systolic", "diastolic", "mean"):
        cells = _cells(html, key)
        for (m, lo, hi), median, interval in (
            (w["before"][key], cells[0], cells[1]),
            (w["after"][key], cells[2], cells[3]),
        ):
            assert median == f"{m:.0f}" and interval == f"{lo:.0f} to {hi:.0f}"
    assert f"below 70 mmHg: <strong>{100 * w['p_below']:.1f}%</strong>" in html
    assert f"(MCSE {100 * w['mcse']:.1f} points; trust limited)" in html
