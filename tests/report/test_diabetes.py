"""The diabetes view: trust first, every forecast with its interval, risks with MCSE."""

import math
import re

import pytest

from twin_uq.report.diabetes import diabetes_report
from twin_uq.testing.cgm_twin import cgm_trace, cgm_twin
from twin_uq.twin.policy import BasalBolus


@pytest.mark.slow  # compiles forecasts, risks and two closed loops: ~100 s on 2 busy cores
def test_diabetes_view_states_trust_intervals_and_policies(tmp_path):
    twin = cgm_twin(cgm_trace(end=240.0), fit_end=240.0)
    policies = {"<none>": BasalBolus(0.0, math.inf), "basal-bolus": BasalBolus(1.0, 10.0)}
    cmp = twin.compare_policies(policies, meals=[(30.0, 50.0)], horizon=240.0, draws=16)
    path = diabetes_report(twin, tmp_path / "cgm.html", comparison=cmp, draws=32, n_paths=4)
    html = path.read_text()
    # no cohort assessment given: shown as limited, with the reason
    assert 'Trust status: <strong class="status-text">limited</strong>' in html
    assert "not assessed" in html
    # every forecast row carries its interval; the trust sits beside the tables
    rows = re.findall(
        r"<tr><td>\+(\d+) min</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+) to (\d+)</td>",
        html,
    )
    assert [r[0] for r in rows] == ["30", "60", "120"]
    assert all(int(lo) <= int(m) <= int(hi) for _, m, lo, hi in rows)
    assert html.count("trust limited") >= 2
    # four risks with MCSE; policies by name (escaped), each with interval and MCSE
    assert len(re.findall(r"below (70|54) mg/dL|above (180|250) mg/dL", html)) == 4
    assert html.count("MCSE") >= 4 and "&lt;none&gt;" in html and "<none>" not in html
    assert '<svg role="img"' in html and "<script" not in html
