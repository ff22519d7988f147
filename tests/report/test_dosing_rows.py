"""The patient report's dosing table shows the dosing as recorded: SS, lag/F, RATE=-2, resets, OCC.

``dose_rows`` reads a twin's schedule, model, table and parameter summary; a stand-in twin
with a real model and schedule keeps this test free of a fit (the full report is rendered by
tests/report/test_patient.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

import twin_uq as tq
from twin_uq.report.patient_sections import dose_rows


def _twin(model, schedule, table):
    if not model.dose_parameters:
        summary = pd.DataFrame()  # read only for lag and F
        return SimpleNamespace(
            model=model, schedule=schedule, table=table, parameters=lambda interval: summary
        )
    # ka, CL, V, ALAG1, F1 (and D2 where declared)
    summary = pd.DataFrame(
        {"median": [1.0, 5.0, 50.0, 0.9, 0.8, 1.0], "lower": [0.8, 4, 40, 0.5, 0.7, 0.5],
         "upper": [1.2, 6, 60, 1.4, 0.9, 2.0]},
        index=list(model.parameter_names),
    )  # fmt: skip
    return SimpleNamespace(
        model=model, schedule=schedule, table=table, parameters=lambda interval: summary
    )


def test_dose_rows_show_steady_state_lag_f_modelled_duration_resets_and_occasions():
    model = tq.with_dose_parameters(
        tq.load_model("one_compartment_oral_lag"), 2, duration=tq.Parameter("D2", "h", 1.0)
    )
    schedule = tq.Schedule.build(
        boluses=[tq.Bolus(0.0, 100.0, 1, ss=1, ii=12.0), tq.Bolus(24.0, 50.0, 0)],
        infusions=[tq.Infusion(30.0, 10.0, 2.0, 2)],
        modelled=[tq.ModelledInfusion(36.0, 40.0, 2, by="duration")],
        resets=[tq.Reset(48.0)],
    )
    table = pd.DataFrame({"time": [0.0, 24.0, 30.0, 48.0], "occ": [1, 1, 2, 3]})
    rows = dose_rows(_twin(model, schedule, table), "h")
    lag_f = (
        "; after a lag time ALAG1 0.900 h (90% interval 0.500–1.40), "
        "bioavailability F1 0.800 (90% interval 0.700–0.900)"
    )
    assert [r["time"] for r in rows] == ["0", "24", "30", "36", "48"]
    assert [r["occasion"] for r in rows] == ["1", "1", "2", "2", "3"]
    assert [r["amount"] for r in rows] == ["100", "50.0", "20.0", "40.0", "—"]  # 3 figures
    assert rows[0]["route"] == (
        f"bolus into compartment 1 (depot){lag_f}; steady state (SS=1): starts from the "
        "steady state of this dose every 12 h"
    )
    assert rows[1]["route"] == f"bolus into compartment 1 (depot){lag_f}"  # CMT 0: default
    assert rows[2]["route"] == "infusion over 2.00 h into compartment 2 (central)"
    assert rows[3]["route"] == (
        "infusion with the duration from the model (RATE=-2) into compartment 2 (central)"
    )
    assert rows[4]["route"] == "reset: every compartment back to its initial state"


def test_a_constant_infusion_at_steady_state_and_no_occasion_column():
    model = tq.load_model("one_compartment_iv")
    schedule = tq.Schedule.build(infusions=[tq.Infusion(0.0, 5.0, float("inf"), 1, ss=1)])
    twin = _twin(model, schedule, pd.DataFrame({"time": [0.0]}))
    (row,) = dose_rows(twin, "h")
    assert row["occasion"] == "" and row["amount"] == "—"
    assert row["route"] == (
        "constant infusion at 5.00 per h into compartment 1 (central); at steady state (SS=1)"
    )
