"""Bad-input campaign (issue #13): every kind of bad input ends in one clear error.

Each test (or parametrised id) is one row of the table in ``docs/robustness.md``: the
input, what the Python API does and what the command line does. Every refusal is a
:class:`twin_uq.TwinUQError` (the command line prints a traceback for anything else), must name
what is wrong and where (file, line or row, column, patient, parameter), the command line
must end with exit status 1 and ONE ``error:`` line, and nothing may be written half (the
output file a failed command was asked for must not exist). Cases already covered by
other test files (empty file, unsorted rows, duplicate rows, ...) are referenced in the
docs table, not repeated here.

Posterior cases reuse the session's ``oral_fit`` (no new fit is started), doctored by
renaming patients and covariate levels where hostile text is needed.
"""

from __future__ import annotations

import csv
import io
import shutil
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cli_helpers import one_error_line

import twin_uq as tq
from twin_uq._csv import FORMULA_PREFIXES, neutralise, write_csv
from twin_uq.data import CohortError, read_cohort
from twin_uq.errors import UnavailableError
from twin_uq.inference.idata import cohort_table_dataset
from twin_uq.inference.prepare import prepare_fit
from twin_uq.model.load import ModelLoadError, load_model
from twin_uq.posterior import CohortPosterior, PosteriorLoadError, load_posterior
from twin_uq.twin import UnknownPatientError

GOOD = "ID,TIME,DV,AMT,EVID\nA,0,.,100,1\nA,1,5.0,.,0\nB,0,.,100,1\nB,2,3.0,.,0\n"
ORAL = "one_compartment_oral"


def replace_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def no_output_left(folder: Path, out: Path) -> None:
    """Neither the output nor a temporary of it was left behind."""
    assert not out.exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(f".{out.name}")]


# ---- tables --------------------------------------------------------------------------------

# id: (table text, expected fragment naming line, column, patient and what is wrong)
TABLE_CASES = {
    "text-in-amt": (
        replace_line(GOOD, 4, "B,0,.,lots,1"),
        "line 4, column AMT, patient 'B': AMT is not a number ('lots')",
    ),
    "nan-time": (
        replace_line(GOOD, 3, "A,NaN,5.0,.,0"),
        "line 3, column TIME, patient 'A': TIME is missing",
    ),
    "nan-amt": (
        replace_line(GOOD, 4, "B,0,.,NaN,1"),
        "line 4, column AMT, patient 'B': dose row (EVID=1) has no amount",
    ),
    "inf-amt": (
        replace_line(GOOD, 4, "B,0,.,inf,1"),
        "line 4, column AMT, patient 'B': AMT must be finite",
    ),
    "overflow-dv": (
        replace_line(GOOD, 3, "A,1,1e400,.,0"),
        "line 3, column DV, patient 'A': DV must be finite",
    ),
    "huge-dv": (
        replace_line(GOOD, 3, "A,1,1e308,.,0"),
        "line 3, column DV, patient 'A': DV = 1e+308 is too large",
    ),
    "huge-amt": (
        replace_line(GOOD, 2, "A,0,.,1e308,1"),
        "line 2, column AMT, patient 'A': AMT = 1e+308 is too large",
    ),
    "huge-time": (
        replace_line(GOOD, 5, "B,1e200,3.0,.,0"),
        "line 5, column TIME, patient 'B': TIME = 1e+200 is too large",
    ),
    "huge-covariate": (
        "ID,TIME,DV,AMT,EVID,WT\nA,0,.,100,1,70\nA,1,5.0,.,0,1e308\n",
        "line 3, column WT, patient 'A': WT = 1e+308 is too large",
    ),
    "inf-covariate": (
        "ID,TIME,DV,AMT,EVID,WT\nA,0,.,100,1,70\nA,1,5.0,.,0,-inf\n",
        "line 3, column WT, patient 'A': WT must be finite",
    ),
}


@pytest.mark.parametrize("case", sorted(TABLE_CASES))
def test_bad_table_api_and_cli(cli, tmp_path, case):
    text, expected = TABLE_CASES[case]
    path = tmp_path / "cohort.csv"
    path.write_text(text)
    with pytest.raises(CohortError) as err:
        read_cohort(path)
    assert str(path) in str(err.value) and expected in str(err.value)
    out = tmp_path / "fit.nc"
    line = one_error_line(cli("fit", path, "--model", ORAL, "--out", out))
    assert str(path) in line and expected in line
    no_output_left(tmp_path, out)


def test_nan_dv_is_a_missing_value_listed_with_its_line(tmp_path):
    # NaN/NA/empty/'.' in DV all mean "not measured": the row is kept out of the
    # likelihood and listed in cohort.excluded with its line and the reason.
    path = tmp_path / "cohort.csv"
    path.write_text(replace_line(GOOD, 3, "A,1,NaN,.,0"))
    cohort = read_cohort(path)
    assert list(cohort.n_obs) == [0, 1]
    assert list(cohort.excluded.index) == [3]
    assert cohort.excluded.loc[3, "reason"] == "DV missing and no LLOQ: nothing observed"


def test_replicates_at_one_time_are_kept_exact_duplicates_refused(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text(GOOD + "B,2,3.5,.,0\n")  # a second assay of the same sample
    cohort = read_cohort(path)
    b = cohort.ids.index("B")
    assert cohort.n_obs[b] == 2
    values = np.asarray(cohort.obs_value[b][cohort.obs_mask[b]])
    np.testing.assert_array_equal(np.sort(values), [3.0, 3.5])
    path.write_text(GOOD + "B,2,3.0,.,0\n")  # the same row twice: a copy-paste error
    with pytest.raises(CohortError, match="line 6, patient 'B': row duplicates line 5 exactly"):
        read_cohort(path)


def test_latin1_file_api_and_cli(cli, tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_bytes("ID,TIME,DV,SITE\nA,0,1.0,Münster\n".encode("latin-1"))
    with pytest.raises(CohortError, match="Cannot read cohort file") as err:
        read_cohort(path)
    assert "UnicodeDecodeError" in str(err.value) and str(path) in str(err.value)
    out = tmp_path / "fit.nc"
    line = one_error_line(cli("fit", path, "--model", ORAL, "--out", out))
    assert str(path) in line and "utf-8" in line
    no_output_left(tmp_path, out)


def test_parquet_with_wrong_dtypes_api_and_cli(cli, tmp_path):
    path = tmp_path / "cohort.parquet"
    pd.DataFrame(
        {
            "ID": [1.0, 1.0],
            "TIME": ["0", "1 h"],  # text column
            "DV": pd.to_datetime(["2024-01-01", "2024-01-02"]),  # dates where numbers belong
            "AMT": [100.0, np.nan],
        }
    ).to_parquet(path)
    with pytest.raises(CohortError) as err:
        read_cohort(path)
    msg = str(err.value)
    assert "row 2, column TIME, patient '1': TIME is not a number ('1 h')" in msg
    assert "row 1, column DV, patient '1': DV is not a number ('2024-01-01" in msg
    out = tmp_path / "fit.nc"
    line = one_error_line(cli("fit", path, "--model", ORAL, "--out", out))
    assert "row 2, column TIME" in line and "more problem" in line
    no_output_left(tmp_path, out)


FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1:A9)", "-2+3"]


def test_formula_like_cells_are_read_as_plain_text(tmp_path):
    rows = ["ID,TIME,DV,AMT,EVID,SITE"]
    for k, f in enumerate(FORMULAS):
        q = f'"{f}"'
        rows += [f"{q},0,.,100,1,{q}", f"{q},{k + 1},2.5,.,0,{q}"]
    path = tmp_path / "cohort.csv"
    path.write_text("\n".join(rows) + "\n")
    cohort = read_cohort(path)
    assert cohort.ids == tuple(FORMULAS)
    assert list(cohort.covariates["SITE"].astype(str)) == FORMULAS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("-1.5", "-1.5"),  # a number, not a formula
        ("P01", "P01"),
        (3.5, 3.5),
    ],
)
def test_neutralise(value, expected):
    assert neutralise(value) == expected


def test_write_csv_neutralises_cells_index_and_header(tmp_path):
    frame = pd.DataFrame(
        {"=x": ["=1+1", "ok"], "value": [-1.0, 2.0]}, index=pd.Index(["@a", "b"], name="+id")
    )
    path = write_csv(frame, tmp_path / "t.csv")
    back = pd.read_csv(path, dtype=str)
    assert list(back.columns) == ["'+id", "'=x", "value"]
    assert list(back["'+id"]) == ["'@a", "b"] and list(back["'=x"]) == ["'=1+1", "ok"]
    assert list(back["value"]) == ["-1.0", "2.0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


@pytest.mark.slow
def test_a_million_rows_are_read_in_reasonable_time(tmp_path):
    n_pat, per = 10_000, 100
    evid = np.tile(np.r_[1, np.zeros(per - 1, int)], n_pat)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "ID": np.repeat([f"P{i:05d}" for i in range(n_pat)], per),
            "TIME": np.tile(np.arange(per) * 0.5, n_pat),
            "DV": np.where(evid == 0, np.round(rng.lognormal(0, 1, n_pat * per), 4), np.nan),
            "AMT": np.where(evid == 1, 100.0, np.nan),
            "EVID": evid,
            "WT": np.repeat(np.round(rng.normal(70, 10, n_pat), 1), per),
        }
    )
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False, na_rep=".")
    t0 = time.perf_counter()
    cohort = read_cohort(path)
    seconds = time.perf_counter() - t0
    print(f"read_cohort of 10^6 rows: {seconds:.1f} s")
    assert cohort.n_patients == n_pat and int(cohort.n_obs.sum()) == n_pat * (per - 1)


# ---- broken model files --------------------------------------------------------------------

MODEL = """
import jax.numpy as jnp
import twin_uq as tq


class Decay(tq.Model):
    name = "decay_{tag}"
    states = ("amount",)
    parameters = ({params})
    outputs = (tq.Output("amount", "mg"),)
    card = tq.ModelCard(summary="First-order decay.", equations="dA/dt = -k A", time_unit="h")

    def rhs(self, t, y, theta, inputs, covariates):
        return {rhs}

    def observe(self, y, theta):
        return y[:1]
"""
K = 'tq.Parameter("k", "1/h", 0.5),'
NAN_WHEN_DOSED = "jnp.where(y > 1.0, jnp.nan, -theta['k'] * y)"

MODEL_CASES = {
    "syntax-error": (
        K,
        "-theta['k'] * y +",
        "Syntax error in model file {path}, line 14: invalid syntax",
    ),
    "rhs-wrong-length": (
        K,
        "jnp.concatenate([-theta['k'] * y, y])",
        "Model in {path}: rhs() returns shape (2,), expected (1,): one value per state ('amount',)",
    ),
    "undeclared-parameter": (
        K,
        "-theta['kel'] * y",
        "Model in {path}: rhs() uses parameter 'kel', which the model does not declare; "
        "declared parameters: 'k'",
    ),
    "no-parameters": ("", "-y", "Model in {path} declares no parameters"),
    "rhs-not-finite": (
        K,
        "y * jnp.nan",
        "Model in {path}: rhs() is not finite at t = 0, y = y0() and the typical parameter values",
    ),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_broken_model_file_api_and_cli(cli, tmp_path, case):
    params, rhs, expected = MODEL_CASES[case]
    path = tmp_path / f"{case.replace('-', '_')}.py"
    path.write_text(MODEL.format(tag=case.replace("-", "_"), params=params, rhs=rhs))
    expected = expected.format(path=path)
    with pytest.raises(ModelLoadError) as err:
        load_model(path)
    assert expected in str(err.value)
    data = tmp_path / "cohort.csv"
    data.write_text(GOOD)
    out = tmp_path / "fit.nc"
    line = one_error_line(cli("fit", data, "--model", path, "--out", out))
    assert expected in line
    no_output_left(tmp_path, out)


def test_model_returning_nan_is_a_reported_solver_failure(tmp_path):
    path = tmp_path / "nan_model.py"
    # Finite at its initial state (so it passes the model checks), NaN once dosed.
    path.write_text(MODEL.format(tag="nan", params=K, rhs=NAN_WHEN_DOSED))
    model = load_model(path)  # nothing wrong with the declaration
    traj = tq.simulate(model, {"k": 0.5}, tq.Schedule.build([tq.Bolus(0.0, 10.0)]), [1.0, 2.0])
    assert not bool(traj.ok) and traj.describe().startswith("nonfinite: ")


@pytest.mark.parametrize("method", ["svi", pytest.param("laplace", marks=pytest.mark.slow)])
def test_optimiser_that_cannot_start_names_the_patients(tmp_path, method):
    path = tmp_path / "nan_model.py"
    path.write_text(MODEL.format(tag="nan", params=K, rhs=NAN_WHEN_DOSED))
    cohort = read_cohort(pd.read_csv(io.StringIO(GOOD), na_values="."))
    with pytest.raises(UnavailableError) as err:
        tq.fit(load_model(path), cohort, method=method, svi_steps=5, draws=5, progress=False)
    text = str(err.value)
    assert f"method={method!r} could not start" in text
    assert "patients whose model solve fails or whose likelihood is not finite there: A, B (of 2)" in text


# ---- impossible configurations ------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("draws", 0, "draws must be a positive integer, got 0"),
        ("draws", -5, "draws must be a positive integer, got -5"),
        ("draws", 1.5, "draws must be a positive integer, got 1.5"),
        ("chains", 0, "chains must be a positive integer, got 0"),
        ("warmup", -1, "warmup must be an integer >= 0, got -1"),
        ("method", "hmc", "Unknown method 'hmc'"),
        ("backend", "stan", "Unknown backend 'stan'"),
    ],
)
def test_impossible_fit_settings_api(option, value, expected):
    cohort = read_cohort(pd.read_csv(io.StringIO(GOOD), na_values="."))
    with pytest.raises(tq.InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        tq.fit(ORAL, cohort, progress=False, **{option: value})


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--draws", "0", "draws must be a positive integer, got 0"),
        ("--chains", "-2", "chains must be a positive integer, got -2"),
        ("--warmup", "-1", "warmup must be an integer >= 0, got -1"),
    ],
)
def test_impossible_fit_settings_cli(cli, tmp_path, option, value, expected):
    data = tmp_path / "cohort.csv"
    data.write_text(GOOD)
    out = tmp_path / "fit.nc"
    line = one_error_line(cli("fit", data, "--model", ORAL, "--out", out, f"{option}={value}"))
    assert expected in line
    no_output_left(tmp_path, out)


@pytest.fixture(scope="module")
def fit_file(oral_fit, tmp_path_factory):
    """The session's oral fit saved as netCDF (no refit)."""
    return oral_fit.save(tmp_path_factory.mktemp("campaign") / "fit.nc")


@pytest.mark.parametrize("interval", [0.0, 1.0, 1.5, -0.1])
def test_interval_outside_0_1(oral_fit, interval):
    with pytest.raises(
        tq.InputError, match=f"interval must lie strictly between 0 and 1, got {interval}"
    ):
        oral_fit.twin("P01").predict([1.0], interval=interval)
    with pytest.raises(tq.InputError, match="interval must lie strictly between 0 and 1"):
        oral_fit.population_summary(interval=interval)


def test_interval_outside_0_1_cli(cli, fit_file, tmp_path):
    out = tmp_path / "p.csv"
    args = ("predict", fit_file, "--patient", "P01", "--times", "0:24:6", "--out", out)
    line = one_error_line(cli(*args, "--interval", "1.5"))
    assert "interval must lie strictly between 0 and 1, got 1.5" in line
    no_output_left(tmp_path, out)


def test_unknown_patient_api_and_cli(cli, oral_fit, fit_file, tmp_path):
    with pytest.raises(
        UnknownPatientError, match=r"No patient 'P1' in this fit \(16 patients, e.g. 'P01'.*Did you mean"
    ):
        oral_fit.twin("P1")
    out = tmp_path / "p.csv"
    line = one_error_line(
        cli("predict", fit_file, "--patient", "nope", "--times", "0:24:6", "--out", out)
    )
    assert "No patient 'nope' in this fit (16 patients" in line
    no_output_left(tmp_path, out)


def test_negative_prediction_times_api_and_cli(cli, oral_fit, fit_file, tmp_path):
    with pytest.raises(tq.InputError, match=r"times must be >= 0 .*got \[-1.0\]"):
        oral_fit.twin("P01").predict([-1.0, 2.0])
    with pytest.raises(tq.InputError, match="times must be finite"):
        oral_fit.twin("P01").predict([np.nan])
    out = tmp_path / "p.csv"
    line = one_error_line(
        cli("predict", fit_file, "--patient", "P01", "--times=-5,1", "--out", out)
    )
    assert "times must be >= 0" in line
    no_output_left(tmp_path, out)


def test_times_before_the_first_dose_are_the_pre_dose_state(oral_fit):
    # Allowed: before a (delayed) first dose the state is y0 (no drug), not an error.
    ds = oral_fit.twin("P01").predict([0.0, 4.0, 6.0], schedule=[tq.Bolus(5.0, 100.0)])
    f = ds["f_median"].sel(output="concentration").values
    assert f[0] == 0.0 and f[1] == 0.0 and f[2] > 0.0


def test_negative_dose_in_what_if_api(oral_fit):
    twin = oral_fit.twin("P01")
    # A dose refuses itself where it is written ...
    with pytest.raises(tq.InputError, match=r"Bolus amount must be >= 0, got -100.0 \(at time 0.0\)"):
        tq.Bolus(0.0, -100.0)
    with pytest.raises(tq.InputError, match=r"Infusion needs rate > 0 and duration > 0, got rate -5.0"):
        tq.Infusion(1.0, -5.0, 2.0)
    with pytest.raises(tq.InputError, match=r"Bolus amount must be finite, got nan"):
        tq.Bolus(0.0, float("nan"))
    with pytest.raises(tq.InputError, match=r"Bolus compartment must be a whole number >= 1"):
        tq.Bolus(0.0, 10.0, -1)
    # ... and a regimen whose doses are all zero is named by the twin.
    with pytest.raises(
        tq.InputError,
        match=r"regimen 'B', bolus 1 \(time 0\): dose amount must be finite and > 0, got 0",
    ):
        twin.what_if({"A": None, "B": [tq.Bolus(0.0, 0.0)]}, [1.0, 2.0])
    with pytest.raises(tq.InputError, match=r"regimen '-50'.*got -50"):
        twin.recommend_dose(tq.Event("concentration", above=1.0, at=24.0), [-50.0, 100.0])


def test_negative_dose_in_what_if_cli(cli, fit_file, tmp_path):
    sched = tmp_path / "neg.csv"
    sched.write_text("time,amt\n0,-100\n")
    out = tmp_path / "w.csv"
    line = one_error_line(
        cli(
            "whatif", fit_file, "--patient", "P01", "--schedule", "A=own",
            "--schedule", f"B={sched}", "--times", "0:24:6", "--out", out,
        )
    )  # fmt: skip
    assert f"{sched} has 1 problem" not in line  # the one-line form
    assert f"{sched} line 2, column amt" in line and "needs AMT > 0, got -100" in line
    no_output_left(tmp_path, out)


def test_update_with_rows_of_another_patient_or_output(cli, oral_fit, fit_file, tmp_path):
    twin = oral_fit.twin("P01")
    with pytest.raises(
        tq.InputError, match=r"update\(\) of patient 'P01' got rows of patient\(s\) \['P02'\]"
    ):
        twin.update(pd.DataFrame({"id": ["P02"], "time": [30.0], "dv": [1.0]}))
    with pytest.raises(
        tq.InputError,
        match=r"new row 0 has output 'glucose', which model 'one_compartment_oral' does not define",
    ):
        twin.update(pd.DataFrame({"time": [30.0], "dv": [1.0], "output": ["glucose"]}))
    rows = tmp_path / "new.csv"
    rows.write_text("id,time,dv\nP02,30,1.0\n")
    out = tmp_path / "u.nc"
    line = one_error_line(cli("update", fit_file, "--patient", "P01", "--data", rows, "--out", out))
    assert f"{rows}: rows of other patients ['P02']" in line
    no_output_left(tmp_path, out)


# ---- corrupted fit files ---------------------------------------------------------------------


def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _random(src: Path, dst: Path) -> Path:
    dst.write_bytes(np.random.default_rng(0).bytes(4096))
    return dst


def _foreign(src: Path, dst: Path) -> Path:
    xr.Dataset({"x": ("t", [1.0, 2.0])}).to_netcdf(dst, engine="h5netcdf")
    return dst


def _zarr_without(group: str):
    def make(src: Path, dst: Path) -> Path:
        load_posterior(src).save(dst)
        shutil.rmtree(dst / group)
        return dst

    return make


FIT_CASES = {
    "truncated-netcdf": (_truncated, "fit.nc", "is corrupt, truncated or not netCDF/zarr"),
    "random-bytes": (_random, "fit.nc", "is corrupt, truncated or not netCDF/zarr"),
    "netcdf-not-a-fit": (_foreign, "fit.nc", "is not a twin_uq fit file: it has none of"),
    "zarr-missing-posterior": (
        _zarr_without("posterior"),
        "fit.zarr",
        "incomplete or damaged twin_uq fit file: missing group 'posterior'",
    ),
    "zarr-missing-constant-data": (
        _zarr_without("constant_data"),
        "fit.zarr",
        "incomplete or damaged twin_uq fit file: missing group 'constant_data'",
    ),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_corrupt_fit_file_api_and_cli(cli, fit_file, tmp_path, case):
    make, name, expected = FIT_CASES[case]
    bad = make(fit_file, tmp_path / name)
    with pytest.raises(PosteriorLoadError) as err:
        load_posterior(bad)
    assert str(bad) in str(err.value) and expected in str(err.value)
    out = tmp_path / "trust.csv"
    line = one_error_line(cli("trust", bad, "--out", out))
    assert str(bad) in line and expected in line
    no_output_left(tmp_path, out)


def test_fit_file_of_another_model_api_and_cli(cli, fit_file, tmp_path):
    expected = f"{fit_file} was fitted with model 'one_compartment_oral'"
    with pytest.raises(PosteriorLoadError, match="but the model given is 'one_compartment_iv'"):
        load_posterior(fit_file, model="one_compartment_iv")
    # The same model name, but its source changed since the fit (hash mismatch).
    edited = tmp_path / "one_compartment_oral.py"
    edited.write_text((Path(load_model(ORAL)._source_path)).read_text() + "\n# edited\n")
    with pytest.raises(PosteriorLoadError, match="Pass the model file used for the fit"):
        load_posterior(fit_file, model=edited)
    out = tmp_path / "trust.csv"
    line = one_error_line(cli("trust", fit_file, "--model", "one_compartment_iv", "--out", out))
    assert expected in line and "one_compartment_iv" in line
    no_output_left(tmp_path, out)


# ---- hostile text in ids and covariates: CSV outputs and HTML reports ------------------------

SCRIPT_ID = "<script>alert(1)</script>"
SCRIPT_SEX = "<script>alert(2)</script>"
HOSTILE_IDS = {"P01": FORMULAS[0], "P02": FORMULAS[1], "P03": FORMULAS[2], "P04": SCRIPT_ID}
HOSTILE_SEX = {"F": "=1+1", "M": SCRIPT_SEX}


def relabel(post: CohortPosterior, ids: dict, sex: dict) -> CohortPosterior:
    """``post`` with patients and SEX levels renamed (same draws; no refit)."""
    new_ids = np.asarray([ids.get(p, p) for p in post.patient_ids], dtype=object)
    table = post.cohort.table.reset_index(drop=True)
    table["id"] = table["id"].map(lambda p: ids.get(p, p))
    table["SEX"] = table["SEX"].astype(object).map(lambda v: sex.get(v, v))
    cohort = read_cohort(table, name=post.cohort.source)
    groups = {}
    for node in post.idata.subtree:
        ds = node.to_dataset(inherit=False)
        if "patient" in ds.coords:
            ds = ds.assign_coords(patient=new_ids)
        groups[node.path] = ds
    groups["/cohort_table"] = cohort_table_dataset(cohort.to_dataframe())
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = dict(post.idata.attrs)
    prepared = prepare_fit(post.prepared.spec, cohort, post.prepared.structure.settings)
    return CohortPosterior(idata=tree, model=post.model, cohort=cohort, prepared=prepared)


@pytest.fixture(scope="module")
def hostile(oral_fit, tmp_path_factory):
    post = relabel(oral_fit, HOSTILE_IDS, HOSTILE_SEX)
    return post, post.save(tmp_path_factory.mktemp("hostile") / "fit.nc")


def formula_cells(path: Path) -> list[str]:
    """Cells of a CSV file that a spreadsheet would run as formulas."""
    with open(path, newline="", encoding="utf-8") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    return [c for c in cells if c.startswith(FORMULA_PREFIXES) and neutralise(c) != c]


@pytest.fixture(scope="module")
def hostile_audit(hostile):
    return tq.audit(hostile[0], by="SEX")


def test_csv_outputs_neutralise_formula_ids_and_covariates(cli, hostile, hostile_audit, tmp_path):
    _, path = hostile
    assert load_posterior(path).patient_ids[:4] == tuple(HOSTILE_IDS.values())
    trust = tmp_path / "trust.csv"
    assert cli("trust", path, "--out", trust).exit_code == 0
    pred = tmp_path / "pred.csv"
    result = cli("predict", path, f"--patient={FORMULAS[0]}", "--times", "0:24:6", "--out", pred)
    assert result.exit_code == 0, result.output
    audit = hostile_audit.to_csv(tmp_path / "audit.csv")
    for written in (trust, pred, audit):
        assert formula_cells(written) == [], written
    assert "'=cmd|' /C calc'!A0" in trust.read_text() and "'@SUM(A1:A9)" in trust.read_text()
    assert set(pd.read_csv(pred)["patient"]) == {"'=cmd|' /C calc'!A0"}
    assert "SEX = =1+1" in audit.read_text()  # the label starts with the column name


def test_reports_escape_script_in_ids_and_covariates(hostile, hostile_audit, tmp_path):
    post, _ = hostile
    pages = [
        tq.report.patient(post, SCRIPT_ID, tmp_path / "patient.html", draws=200),
        tq.report.cohort(post, tmp_path / "cohort.html"),
        hostile_audit.to_html(tmp_path / "audit.html"),
    ]
    for page in pages:
        html = Path(page).read_text() if isinstance(page, Path) else page
        assert "<script>alert" not in html
    patient_html = (tmp_path / "patient.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in patient_html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in (tmp_path / "audit.html").read_text()


def test_model_file_paths_with_spaces_are_fine(tmp_path):
    # Guard for the model cases above: a valid model file loads (the checks do not over-refuse).
    folder = tmp_path / "my models"
    folder.mkdir()
    path = folder / "decay.py"
    path.write_text(textwrap.dedent(MODEL.format(tag="ok", params=K, rhs="-theta['k'] * y")))
    model = load_model(path)
    assert model.parameter_names == ("k",)


@pytest.mark.slow
def test_fit_of_a_model_returning_nan_counts_solver_failures(cli, tmp_path):
    path = tmp_path / "nan_fit_model.py"
    path.write_text(MODEL.format(tag="nan_fit", params=K, rhs=NAN_WHEN_DOSED))
    cohort = read_cohort(pd.read_csv(io.StringIO(GOOD), na_values="."))
    # Every solve fails, so the chain never leaves its start: the fit raises rather than
    # return constant draws, and keeps the failed fit for finding the cause.
    with pytest.raises(tq.FitFailedError, match="chain 0 never moved") as info:
        tq.fit(load_model(path), cohort, chains=1, warmup=20, draws=20, progress=False)
    diag = info.value.posterior.diagnostics()
    assert diag.solver_failures == 2 * 20  # every patient at every draw
    assert not diag.converged
    assert any("ODE solve failures" in r for r in diag.reasons)
    # The command line: one error line, no fit file, the failed fit kept beside it.
    data, out = tmp_path / "cohort.csv", tmp_path / "fit.nc"
    data.write_text(GOOD)
    result = cli("fit", data, "--model", path, "--out", out, "--chains", "1", "--warmup", "20",
                 "--draws", "20")  # fmt: skip
    assert "did not sample the posterior" in one_error_line(result)
    failed = tmp_path / "fit.failed.nc"
    assert not out.exists() and failed.exists()
    assert f"The failed fit is written to {failed}" in " ".join(result.stdout.split())
    with pytest.raises(tq.FitFailedError):
        tq.load_posterior(failed, model=path).population_summary()
