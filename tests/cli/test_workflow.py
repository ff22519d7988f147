"""fit file -> predict / whatif / trust / audit / report through the CLI (shared fit, no refit)."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cli_helpers import one_error_line


@pytest.fixture(scope="module")
def schedules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schedules")
    low = folder / "low.csv"
    low.write_text("time,amt,cmt,rate\n0,50,1,0\n")
    high = folder / "high.csv"
    high.write_text("TIME,AMT,CMT,RATE\n0,100,1,0\n12,100,1,0\n")
    return {"low": low, "high": high}


def test_predict_csv(cli, fit_file, tmp_path, oral_fit):
    pid = oral_fit.patient_ids[0]
    out = tmp_path / "pred.csv"
    result = cli("predict", fit_file, "--patient", pid, "--times", "0:48:6", "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table["time"]) == list(np.arange(0.0, 48.1, 6.0))
    assert set(table["patient"]) == {pid}
    assert (table["lower"] <= table["median"]).all() and (table["median"] <= table["upper"]).all()
    # the patient's last observation is at 24 h: later times are flagged as extrapolation
    assert table.loc[table["time"] > 24, "extrapolation"].all()
    assert not table.loc[table["time"] < 24, "extrapolation"].any()


def test_predict_nc_with_schedule(cli, fit_file, tmp_path, oral_fit, schedules):
    pid = oral_fit.patient_ids[1]
    own, other = tmp_path / "own.nc", tmp_path / "high.nc"
    args = ("predict", fit_file, "--patient", pid, "--times", "1,6,18")
    assert cli(*args, "--out", own).exit_code == 0
    result = cli(*args, "--schedule", schedules["high"], "--out", other)
    assert result.exit_code == 0, result.output
    a, b = xr.open_dataset(own), xr.open_dataset(other)
    assert a["f"].dims == ("draw", "time", "output")
    # same first dose (100 at 0) in both: identical before 12 h, more drug after the second dose
    np.testing.assert_allclose(a["f_median"].sel(time=6.0), b["f_median"].sel(time=6.0), rtol=1e-10)
    assert b["f_median"].sel(time=18.0).item() > a["f_median"].sel(time=18.0).item()


def test_whatif(cli, fit_file, tmp_path, oral_fit, schedules):
    pid = oral_fit.patient_ids[0]
    out = tmp_path / "whatif.csv"
    result = cli(
        "whatif", fit_file, "--patient", pid, "--schedule", f"low={schedules['low']}",
        "--schedule", f"high={schedules['high']}", "--times", "0:24:2", "--out", out,
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out).set_index("regimen")
    # twice the dose and a second one: the mean concentration is higher at every draw
    assert table.loc["high", "p_best"] == 1.0
    assert table.loc["high", "median"] > table.loc["low", "median"]
    nc = tmp_path / "whatif.nc"
    assert cli(
        "whatif", fit_file, "--patient", pid, "--schedule", f"low={schedules['low']}",
        "--schedule", "own=own", "--times", "0:24:2", "--out", nc,
    ).exit_code == 0
    assert list(xr.open_dataset(nc)["regimen"].values) == ["low", "own"]


def test_whatif_needs_two_regimens(cli, fit_file, tmp_path, schedules):
    line = one_error_line(cli("whatif", fit_file, "--patient", "P01", "--schedule", f"a={schedules['low']}", "--times", "0:4:1", "--out", tmp_path / "w.csv"))
    assert "at least two" in line


def test_bad_schedule_file(cli, fit_file, tmp_path):
    bad = tmp_path / "sched.csv"
    bad.write_text("time,amt,cmt,rate\n0,100,1,0\n12,-100,1,0\n")
    line = one_error_line(cli("predict", fit_file, "--patient", "P01", "--times", "0:4:1", "--schedule", bad, "--out", tmp_path / "p.csv"))
    assert f"{bad} line 3, column amt: dose row (EVID=1) needs AMT > 0" in line
    bad.write_text("time,dose\n0,100\n")
    line = one_error_line(cli("predict", fit_file, "--patient", "P01", "--times", "0:4:1", "--schedule", bad, "--out", tmp_path / "p.csv"))
    assert "needs columns time and amt" in line


def test_unknown_patient(cli, fit_file, tmp_path):
    line = one_error_line(cli("predict", fit_file, "--patient", "P999", "--times", "0:4:1", "--out", tmp_path / "p.csv"))
    assert "P999" in line


def test_trust_csv_and_json(cli, fit_file, tmp_path, oral_fit):
    out = tmp_path / "trust.csv"
    result = cli("trust", fit_file, "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table["patient"].astype(str)) == list(oral_fit.patient_ids)
    assert set(table["status"]) <= {"trustworthy", "limited", "insufficient", "unreliable"}
    assert f"Trust: {len(oral_fit.patient_ids)} patients" in result.output
    js = tmp_path / "trust.json"
    assert cli("trust", fit_file, "--out", js).exit_code == 0
    assert json.loads(js.read_text())


def test_audit_csv_and_html(cli, fit_file, tmp_path):
    out = tmp_path / "audit.csv"
    result = cli("audit", fit_file, "--by", "sampling", "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert {"rich", "sparse"} <= {str(g).split(" = ")[-1] for g in table["group"]}
    assert "no sampling to propose" not in result.output
    html = tmp_path / "audit.html"
    result = cli("audit", fit_file, "--by", "sampling", "--next-samples", "--out", html)
    assert result.exit_code == 0, result.output
    assert html.read_text().lstrip().lower().startswith("<!doctype html")
    # the shared fit's 4 sparse patients are a group too small to judge (default minimum 5),
    # so no gap is detected and the audit says there is no sampling to propose
    assert "no sampling to propose" in html.read_text()


def test_audit_unknown_column(cli, fit_file, tmp_path):
    line = one_error_line(cli("audit", fit_file, "--by", "SHOE_SIZE", "--out", tmp_path / "a.csv"))
    assert "SHOE_SIZE" in line


def test_patient_and_cohort_reports(cli, fit_file, tmp_path, oral_fit, schedules):
    pid = oral_fit.patient_ids[0]
    out = tmp_path / "patient.html"
    result = cli("report", fit_file, "--patient", pid, "--schedule", f"low={schedules['low']}", "--schedule", "own=own", "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert pid in text and "low" in text
    cohort = tmp_path / "cohort.html"
    assert cli("report", fit_file, "--cohort", "--out", cohort).exit_code == 0
    assert cohort.read_text().lstrip().lower().startswith("<!doctype html")


@pytest.mark.slow  # compiles the conditional sampler: ~90 s on 2 busy cores
def test_update_writes_the_twin_draws(cli, fit_file, tmp_path, oral_fit):
    pid = oral_fit.patient_ids[0]
    new = tmp_path / "new.csv"
    new.write_text("time,dv\n30,0.8\n36,0.5\n")
    out = tmp_path / "twin.nc"
    result = cli("update", fit_file, "--patient", pid, "--data", new, "--out", out, "--chains", "2", "--warmup", "100", "--draws", "100")
    assert result.exit_code == 0, result.output
    assert "not a fit that predict/trust can read" in result.stderr
    ds = xr.open_dataset(out)
    assert ds["theta"].shape == (200, len(oral_fit.model.parameter_names))
    assert ds.attrs["patient_id"] == pid
    assert ds["obs_time"].values.max() == 36.0
    line = one_error_line(cli("update", fit_file, "--patient", pid, "--data", new, "--out", tmp_path / "t.csv"))
    assert "unsupported file type '.csv'" in line


def test_next_sample_ranks_candidate_times(cli, fit_file, tmp_path, oral_fit):
    pid = oral_fit.patient_ids[0]
    out = tmp_path / "next.csv"
    args = ("next-sample", fit_file, "--patient", pid, "--times", "0,12,36", "--goal", "CL")
    result = cli(*args, "--imagined", "32", "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table["time"]) == [0.0, 12.0, 36.0]
    # The statistics are checked in tests/twin/test_next_sample.py; here the table's shape.
    assert table["effect"].between(-1, 1).all() and (table["mcse"] > 0).all()
    assert set(table["output"]) == {"concentration"}
    assert "best next measurement" in result.output and "Twin trust today:" in result.output
    bad = cli(*args[:-2], "--goal", "forecast:concentration")
    assert bad.exit_code != 0 and "forecast:OUTPUT@TIME" in bad.output
