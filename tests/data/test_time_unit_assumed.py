"""An undeclared time unit is never taken silently: summary, fit warning, provenance."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.data import TimeUnitAssumedWarning, read_cohort
from twin_uq.inference.idata import provenance
from twin_uq.inference.pipeline import prepare_problem
from twin_uq.inference.population import PopulationModel

NAN = np.nan


@pytest.fixture(scope="module")
def oral():
    return tq.load_model("one_compartment_oral")


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ID": ["a", "a", "a", "b", "b", "b"],
            "TIME": [0.0, 1.0, 6.0, 0.0, 2.0, 8.0],
            "DV": [NAN, 1.5, 1.0, NAN, 1.6, 0.8],
            "AMT": [100.0, NAN, NAN, 100.0, NAN, NAN],
            "WT": [70.0] * 6,
        }
    )


def test_summary_for_a_model_says_assumed_and_the_models_unit(oral):
    c = read_cohort(frame())
    text = str(c.summary(model=oral))
    assert "time unit:             assumed h, the model's (not declared" in text
    # a declared unit is shown as declared, with or without a model
    declared = read_cohort(frame(), time_unit="hours")
    assert "time unit:             h\n" in str(declared.summary(model=oral)) + "\n"
    assert declared.summary(model=oral).time_unit == "h"


def test_a_fit_of_an_undeclared_cohort_warns_and_names_the_unit(oral):
    spec = PopulationModel(oral, prior_check="off", centering=0.0)
    with pytest.warns(TimeUnitAssumedWarning) as record:
        prepared = prepare_problem(spec, read_cohort(frame(), name="tdm.csv"), None)
    msg = str(record[0].message)
    assert "Cohort 'tdm.csv' declares no time unit" in msg
    assert "taken to be in 'h', the unit of model 'one_compartment_oral'" in msg
    assert "read_cohort(..., time_unit='h') or twin-uq fit --time-unit h" in msg
    assert "nothing checks it (prior_check='off')" in msg
    attrs = provenance(prepared, json.dumps({"method": "laplace", "seed": 0}), {})
    assert attrs["data_time_unit"] == "assumed h (the model's unit; not declared)"


def test_a_declared_unit_gives_no_warning_and_is_recorded(oral):
    spec = PopulationModel(oral, prior_check="off", centering=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimeUnitAssumedWarning)
        prepared = prepare_problem(spec, read_cohort(frame(), time_unit="h"), None)
    attrs = provenance(prepared, json.dumps({"method": "laplace", "seed": 0}), {})
    assert attrs["data_time_unit"] == "h (declared)"


def test_simulated_cohorts_declare_the_models_unit():
    design = tq.Design(times=[1.0, 4.0], doses=[tq.Bolus(0.0, 100.0, 1)])
    sim = tq.simulate_cohort("one_compartment_oral", 2, design, seed=0)
    assert sim.cohort.time_unit == "h"
