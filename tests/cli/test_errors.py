"""Bad input ends every command with exit status 1 and one clear line on stderr."""

import pytest
from cli_helpers import one_error_line

GOOD = "ID,TIME,DV,AMT,EVID\nA,0,.,100,1\nA,1,5.0,.,0\nB,0,.,100,1\nB,2,3.0,.,0\n"


def replace_line(text, line, new):
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


# One case per kind of problem the data layer refuses: (table text, expected fragment).
DATA_CASES = {
    "missing column": ("ID,DV,AMT\nA,5,.\n", "required column(s) TIME missing"),
    "no dv or amt": ("ID,TIME,WT\nA,0,70\n", "DV or AMT"),
    "time not a number": (replace_line(GOOD, 3, "A,abc,5.0,.,0"), "line 3, column TIME, patient 'A': TIME is not a number"),
    "time infinite": (replace_line(GOOD, 3, "A,inf,5.0,.,0"), "TIME must be finite"),
    "time missing": (replace_line(GOOD, 3, "A,,5.0,.,0"), "TIME is missing"),
    "negative time": (replace_line(GOOD, 5, "B,-2,3.0,.,0"), "line 5, column TIME, patient 'B': TIME is negative (-2)"),
    "dv not a number": (replace_line(GOOD, 3, "A,1,<0.5,.,0"), "DV is not a number ('<0.5')"),
    "dv infinite": (replace_line(GOOD, 5, "B,2,-inf,.,0"), "DV must be finite"),
    "dose without amount": (replace_line(GOOD, 4, "B,0,.,.,1"), "dose row (EVID=1) has no amount"),
    "dose amount negative": (replace_line(GOOD, 2, "A,0,.,-5,1"), "needs AMT > 0"),
    "reset event": (replace_line(GOOD, 4, "B,0,.,100,3"), "EVID=3"),
    "unknown evid": (replace_line(GOOD, 3, "A,1,5.0,.,7"), "EVID must be 0 (observation), 1 (dose), 2"),
    "steady state without ii": ("ID,TIME,DV,AMT,EVID,SS,II\nA,0,.,100,1,1,.\nA,1,5.0,.,0,0,.\n", "SS=1 needs the dosing interval II > 0"),
    "reserved name": ("ID,TIME,DV,DATE\nA,0,1.0,2026-01-01\n", "'DATE' is a reserved NONMEM/Monolix name"),
    "addl without ii": ("ID,TIME,DV,AMT,EVID,ADDL,II\nA,0,.,100,1,3,.\nA,1,5.0,.,0,.,.\n", "need an interval II > 0"),
    "bad rate": ("ID,TIME,DV,AMT,EVID,RATE\nA,0,.,100,1,-3\nA,1,5.0,.,0,.\n", "RATE must be > 0"),
    "blq without lloq": ("ID,TIME,DV,AMT,EVID,LLOQ,BLQ\nA,0,.,100,1,.,.\nA,1,.,.,0,.,1\n", "BLQ=1 but no LLOQ"),
    "missing id": (replace_line(GOOD, 3, ",1,5.0,.,0"), "line 3, column ID: patient ID is missing"),
    "duplicate row": (GOOD + "B,2,3.0,.,0\n", "row duplicates line 5 exactly"),
    "unsorted": ("ID,TIME,DV\nA,0,1.0\nA,5,2.0\nA,3,3.0\n", "time 3 is earlier than time 5 at line 3"),
    "empty file": ("", "the file is empty"),
    "header only": ("ID,TIME,DV\n", "the table has no rows"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_cohort_gives_one_line(cli, tmp_path, case):
    text, expected = DATA_CASES[case]
    path = tmp_path / "cohort.csv"
    path.write_text(text)
    out = tmp_path / "fit.nc"
    line = one_error_line(cli("fit", path, "--model", "one_compartment_oral", "--out", out))
    assert str(path) in line
    assert expected in line
    assert not out.exists()


def test_fit_prints_the_load_summary_and_refuses_another_time_unit(cli, tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text("ID,TIME,DV,AMT,EVID,CENS,WT\nA,0,.,100,1,0,60\nA,1,5.0,.,0,0,60\nB,0,.,100,1,0,80\nB,2,0.1,.,0,1,80\n")
    out = tmp_path / "fit.nc"
    result = cli("fit", path, "--model", "one_compartment_oral", "--out", out, "--time-unit", "min")
    line = one_error_line(result)
    assert "time unit is 'min' but model 'one_compartment_oral' works in 'h'" in line
    assert "columns understood:    ID, TIME, DV, AMT, EVID, CENS" in result.stdout
    assert "baseline covariates:   WT" in result.stdout
    assert "time unit:             min" in result.stdout
    assert not out.exists()


def test_many_problems_are_counted_on_the_one_line(cli, tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text("ID,TIME,DV\nA,-1,1\nA,-2,1\nA,x,1\n")
    line = one_error_line(cli("fit", path, "--model", "one_compartment_oral", "--out", tmp_path / "f.nc"))
    assert "more problems; --verbose lists them" in line


def test_verbose_shows_the_traceback(cli, tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text(replace_line(GOOD, 5, "B,-2,3.0,.,0"))
    result = cli("fit", path, "--model", "one_compartment_oral", "--out", tmp_path / "f.nc", "--verbose")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "CohortError" in result.stderr


def test_missing_cohort_file(cli, tmp_path):
    line = one_error_line(cli("fit", tmp_path / "nope.csv", "--model", "one_compartment_oral", "--out", tmp_path / "f.nc"))
    assert "Cohort file not found" in line and "nope.csv" in line


def test_unknown_model(cli, tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text(GOOD)
    line = one_error_line(cli("fit", path, "--model", "one_compartment_orl", "--out", tmp_path / "f.nc"))
    assert "one_compartment_orl" in line and "one_compartment_oral" in line


def test_bad_fit_options(cli, tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text(GOOD)
    args = ("fit", path, "--model", "one_compartment_oral")
    assert "unsupported file type '.csv'" in one_error_line(cli(*args, "--out", tmp_path / "f.csv"))
    assert "expected KEY=VALUE" in one_error_line(cli(*args, "--out", tmp_path / "f.nc", "--covariate", "CL"))
    assert "choose diagonal or lkj" in one_error_line(cli(*args, "--out", tmp_path / "f.nc", "--correlation", "full"))
    assert "--method 'hmc': choose nuts, svi or laplace" in one_error_line(cli(*args, "--out", tmp_path / "f.nc", "--method", "hmc"))
    for bad in ("1.5", "half"):
        assert f"--centering {bad!r}: choose auto or a number from 0 to 1" in one_error_line(
            cli(*args, "--out", tmp_path / "f.nc", "--centering", bad)
        )


def test_corrupt_fit_file(cli, tmp_path):
    bad = tmp_path / "fit.nc"
    bad.write_bytes(b"not a netcdf file")
    line = one_error_line(cli("trust", bad))
    assert "corrupt, truncated or not netCDF" in line


def test_missing_fit_file(cli, tmp_path):
    line = one_error_line(cli("predict", tmp_path / "nope.nc", "--patient", "P01", "--times", "0:24:1", "--out", tmp_path / "p.csv"))
    assert "Fit file not found" in line


@pytest.mark.parametrize(
    ("times", "expected"),
    [("0:24", "START:STOP:STEP"), ("0:24:-1", "STEP > 0"), ("a,b", "comma list"), ("10:0:1", "STOP >= START")],
)
def test_bad_times(cli, tmp_path, times, expected):
    line = one_error_line(cli("predict", tmp_path / "fit.nc", "--patient", "P01", "--times", times, "--out", tmp_path / "p.csv"))
    assert expected in line


def test_report_needs_one_target(cli, tmp_path):
    line = one_error_line(cli("report", tmp_path / "fit.nc", "--out", tmp_path / "r.html"))
    assert "exactly one of --patient ID or --cohort" in line


@pytest.mark.parametrize("bug", [TypeError("unhashable type: 'list'"), KeyError("mu"), ValueError("boom")])
def test_a_library_bug_prints_its_traceback(cli, monkeypatch, bug):
    # A builtin error escaping from twin_uq is a bug, not bad input: the traceback shows
    # where it happened, then one error line says so (exit status 1).
    import twin_uq.model.load

    def broken():
        raise bug

    monkeypatch.setattr(twin_uq.model.load, "list_models", broken)
    result = cli("models")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "in broken" in result.stderr  # the frame that raised
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: unexpected {type(bug).__name__}: ")
    assert "a bug in twin_uq or in the model's code" in last


def test_os_errors_on_a_users_file_stay_one_line(cli, monkeypatch, tmp_path):
    import twin_uq.model.load

    def unreadable():
        raise PermissionError(13, "Permission denied", str(tmp_path / "models"))

    monkeypatch.setattr(twin_uq.model.load, "list_models", unreadable)
    line = one_error_line(cli("models"))
    assert "Permission denied" in line and str(tmp_path / "models") in line


def test_every_bad_input_error_is_a_twin_uq_error():
    import twin_uq as tq
    from twin_uq.cli._errors import CLIError
    from twin_uq.data import CohortError
    from twin_uq.distributed import IncompleteResultError
    from twin_uq.model.load import ModelLoadError
    from twin_uq.posterior import PosteriorLoadError
    from twin_uq.twin import UnknownPatientError

    # each keeps its builtin base, so `except ValueError` / `except KeyError` still work
    for cls, builtin in [
        (CohortError, ValueError), (ModelLoadError, ValueError), (PosteriorLoadError, ValueError),
        (CLIError, ValueError), (tq.InputError, ValueError), (UnknownPatientError, KeyError),
        (IncompleteResultError, RuntimeError),
    ]:  # fmt: skip
        assert issubclass(cls, tq.TwinUQError) and issubclass(cls, builtin), cls
