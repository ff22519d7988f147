"""A patient report of steady-state, lagged oral dosing over two occasions, as rendered.

A short Laplace fit of ``one_compartment_oral_lag`` to four patients whose first dose is a
steady-state dose (``SS=1, II=12``) and whose second, on occasion 2, a plain dose: the
dosing table says steady state, the lag and F with the patient's estimates, and the
occasion; the browser shows it. The fit compiles a model of its own: slow set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq

from .conftest import assert_not_blank, load_in_browser

pytestmark = pytest.mark.slow

SAMPLES = [1.0, 2.0, 4.0, 8.0, 11.0, 26.0, 30.0, 36.0]


@pytest.fixture(scope="module")
def steady_lag_report(tmp_path_factory):
    model = tq.load_model("one_compartment_oral_lag")
    rng = np.random.default_rng(1)
    rows = []
    for pid in ("a", "b", "c", "d"):
        doses = [tq.Bolus(0.0, 100.0, 1, ss=1, ii=12.0), tq.Bolus(24.0, 100.0, 1)]
        theta = np.array([1.0, 5.0, 50.0, 0.5, 0.8]) * np.exp(
            np.array([0.2, 0.2, 0.2, 0.2, 0.0]) * rng.standard_normal(5)
        )
        traj = tq.simulate(
            model, theta, tq.Schedule.build(boluses=doses), np.asarray(SAMPLES),
            covariates={"WT": 70.0},
        )  # fmt: skip
        conc = np.asarray(traj.outputs)[:, 0] * np.exp(0.1 * rng.standard_normal(len(SAMPLES)))
        rows.append(dict(ID=pid, TIME=0.0, AMT=100.0, EVID=1, SS=1, II=12.0, OCC=1, WT=70.0))
        rows.append(dict(ID=pid, TIME=24.0, AMT=100.0, EVID=1, SS=0, II=0.0, OCC=2, WT=70.0))
        rows += [
            dict(ID=pid, TIME=t, DV=c, EVID=0, OCC=1 if t < 24 else 2, WT=70.0)
            for t, c in zip(SAMPLES, conc, strict=True)
        ]
    table = pd.DataFrame(rows).sort_values(["ID", "TIME"], kind="stable")
    cohort = tq.read_cohort(table.reset_index(drop=True), time_unit="h")
    post = tq.fit(model, cohort, method="laplace", seed=0, progress=False)
    out = tmp_path_factory.mktemp("dosing") / "a.html"
    return tq.report.patient(post, "a", out, draws=100)


def test_the_dosing_table_shows_steady_state_lag_f_and_occasion(steady_lag_report):
    html = steady_lag_report.read_text()
    assert '<th scope="col">Occasion</th>' in html
    assert "steady state (SS=1): starts from the steady state of this dose every 12 h" in html
    assert "bolus into compartment 1 (depot); after a lag time ALAG1 " in html
    assert "bioavailability F1 " in html and "(90% interval " in html


@pytest.mark.browser
def test_the_dosing_table_in_the_browser(browser, steady_lag_report, tmp_path):
    png = tmp_path / "dosing.png"
    page = load_in_browser(browser, steady_lag_report, png)
    assert page["errors"] == [] and page["dialogs"] == []
    text = page["text"]
    assert "Dosing history" in text
    assert "starts from the steady state of this dose every 12 h" in text
    assert "after a lag time ALAG1" in text
    assert_not_blank(png)
