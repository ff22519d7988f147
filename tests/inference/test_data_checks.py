"""Data-driven model checks: a missing lag and a wrong time unit are named, no false alarm.

Every cohort here has the same shape (12 patients, the same sampling times), so the pooled
fit compiles once for the module.
"""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.inference.data_checks import ModelDataMismatch, check_data, time_exponent
from twin_uq.inference.pipeline import prepare_problem
from twin_uq.inference.population import PopulationModel

DESIGN = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    covariates={"WT": ("lognormal", 70.0, 0.2)},
)


@pytest.fixture(scope="module")
def oral():
    return tq.load_model("one_compartment_oral")


@pytest.fixture(scope="module")
def plain():
    return tq.simulate_cohort("one_compartment_oral", 12, DESIGN, seed=3)


@pytest.fixture(scope="module")
def lagged():
    # Absorption starts 1 h after the dose: every first sample (0.5 h) is drug-free.
    return tq.simulate_cohort(
        "one_compartment_oral_lag", 12, DESIGN, seed=3, typical={"ALAG1": 1.0}
    )


def test_time_exponent_reads_the_parameters_units():
    assert time_exponent("1/h", "h") == -1
    assert time_exponent("L/h", "hours") == -1
    assert time_exponent("L/h/kg", "h") == -1
    assert time_exponent("h", "h") == 1
    assert time_exponent("h^-1", "h") == -1
    assert time_exponent("L", "h") == 0
    assert time_exponent("1/min", "min") == -1
    assert time_exponent("mg/L", "min") == 0


def test_lagged_absorption_without_a_lag_is_named_and_plain_data_pass(oral, plain, lagged):
    report = check_data(oral, lagged.cohort)
    (finding,) = report.findings
    assert finding.kind == "missing_lag"
    assert finding.details["over_predicted"] == finding.details["first_observations"] == 12
    assert "Missing lag: 12 of 12 first observations after a dose into compartment 1" in (
        finding.message
    )
    assert "'P01' (dose at 0 h, sample at 0.5 h: observed" in finding.message
    assert "fit 'one_compartment_oral_lag'" in finding.message
    assert "tq.with_dose_parameters(model, 1, lag=tq.Parameter('ALAG', 'h', 0.5))" in (
        finding.message
    )
    # No false alarm on data without a lag.
    quiet = check_data(oral, plain.cohort)
    assert quiet.review.pooled.converged and quiet.findings == ()
    assert "no missing lag or time-unit mismatch seen in the data" in str(quiet)


@pytest.mark.slow
def test_the_model_with_the_lag_it_needs_has_nothing_to_say(lagged):
    # compiles a second model (about 20 s): slow set
    lag_model = tq.load_model("one_compartment_oral_lag")
    assert check_data(lag_model, lagged.cohort).findings == ()


def test_minutes_read_as_hours_are_named(oral, plain):
    table = plain.table.drop(columns=["sampling"])
    table["time"] = table["time"] * 60.0
    minutes = tq.read_cohort(table, name="tdm_minutes.csv")
    report = check_data(oral, minutes)
    (finding,) = report.findings
    assert finding.kind == "time_unit" and finding.details["likely_unit"] == "min"
    assert set(finding.details["implied_log_factor"]) == {"ka", "CL"}
    assert "point to TIME in 'min', not 'h' (assumed 'h', the model's unit)" in finding.message
    assert "The observations span 30 to 1440 h" in finding.message
    # declared as hours (wrongly): the same finding, saying it was declared
    declared = tq.read_cohort(table, name="tdm_minutes.csv", time_unit="h")
    (again,) = check_data(oral, declared).findings
    assert "(declared 'h')" in again.message


def test_a_fit_warns_with_the_finding_and_records_it(oral, lagged):
    spec = PopulationModel(oral, prior_check="warn", centering=0.0)
    with pytest.warns(ModelDataMismatch, match="Missing lag: 12 of 12"):
        prepared = prepare_problem(spec, lagged.cohort, None)
    record = prepared.prior_review.record()
    assert [f["kind"] for f in json.loads(json.dumps(record))["data_checks"]] == ["missing_lag"]


def test_the_check_command_prints_the_summary_and_the_finding(cli, tmp_path, plain):
    table = plain.table.drop(columns=["sampling"])
    table["time"] = table["time"] * 60.0
    path = tmp_path / "minutes.csv"
    table.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelDataMismatch)
        result = cli("check", path, "--model", "one_compartment_oral")
    assert result.exit_code == 0, result.output
    assert "time unit:             assumed h, the model's (not declared" in result.stdout
    assert "Pre-fit check (pooled fit: converged)" in result.stdout
    assert "point to TIME in 'min', not 'h'" in result.stdout.replace("\n", " ")
    assert isinstance(pd.read_csv(path), pd.DataFrame)
