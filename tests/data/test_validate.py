"""Bad cohort tables are refused with messages naming file, row, column and patient."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin_uq.data import CohortError, CohortWarning, Problem, read_cohort
from twin_uq.data.validate import MAX_PROBLEMS

GOOD = """ID,TIME,DV,AMT,EVID
A,0,.,100,1
A,1,5.0,.,0
B,0,.,100,1
B,2,3.0,.,0
"""


def write(tmp_path: Path, text: str, name: str = "cohort.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def replace_line(text: str, line: int, new: str) -> str:
    """Replace 1-based ``line`` (header = 1) of a CSV text."""
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def error_for(tmp_path: Path, text: str, **kw) -> CohortError:
    path = write(tmp_path, text)
    with pytest.raises(CohortError) as info:
        read_cohort(path, **kw)
    msg = str(info.value)
    assert str(path) in msg  # every message names the file
    return info.value


def only(err: CohortError) -> Problem:
    assert len(err.problems) == 1, err.problems
    return err.problems[0]


def test_good_table_reads(tmp_path):
    c = read_cohort(write(tmp_path, GOOD))
    assert c.ids == ("A", "B")


def test_cohort_error_is_value_error():
    assert issubclass(CohortError, ValueError)


@pytest.mark.parametrize("drop", ["ID", "TIME"])
def test_missing_required_column(tmp_path, drop):
    df = pd.read_csv(write(tmp_path, GOOD), dtype=str).drop(columns=drop)
    err = error_for(tmp_path, df.to_csv(index=False))
    assert f"required column(s) {drop} missing" in str(err)


def test_missing_dv_and_amt(tmp_path):
    err = error_for(tmp_path, "ID,TIME,WT\nA,0,70\n")
    assert "DV or AMT" in str(err)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "TIME is not a number ('abc')"),
        ("inf", "TIME must be finite"),
        ("", "TIME is missing"),
    ],
)
def test_bad_time(tmp_path, value, expected):
    err = error_for(tmp_path, replace_line(GOOD, 3, f"A,{value},5.0,.,0"))
    p = only(err)
    assert (p.row, p.column, p.patient) == (3, "TIME", "A")
    assert f"line 3, column TIME, patient 'A': {expected}" in str(err)


def test_negative_time(tmp_path):
    err = error_for(tmp_path, replace_line(GOOD, 5, "B,-2,3.0,.,0"))
    assert "line 5, column TIME, patient 'B': TIME is negative (-2)" in str(err)


def test_non_numeric_dv(tmp_path):
    err = error_for(tmp_path, replace_line(GOOD, 3, "A,1,<0.5,.,0"))
    assert "line 3, column DV, patient 'A': DV is not a number ('<0.5')" in str(err)


def test_infinite_dv(tmp_path):
    err = error_for(tmp_path, replace_line(GOOD, 5, "B,2,-inf,.,0"))
    assert "line 5, column DV, patient 'B': DV must be finite" in str(err)


def test_dose_without_amount(tmp_path):
    err = error_for(tmp_path, replace_line(GOOD, 4, "B,0,.,.,1"))
    assert "line 4, column AMT, patient 'B': dose row (EVID=1) has no amount" in str(err)


@pytest.mark.parametrize("amt", ["0", "-5"])
def test_dose_with_non_positive_amount(tmp_path, amt):
    err = error_for(tmp_path, replace_line(GOOD, 2, f"A,0,.,{amt},1"))
    assert "line 2, column AMT, patient 'A': dose row (EVID=1) needs AMT > 0" in str(err)


def test_dose_row_without_amt_column(tmp_path):
    err = error_for(tmp_path, "ID,TIME,DV,EVID\nA,0,.,1\nA,1,2.0,0\n")
    assert "line 2, column AMT, patient 'A': dose row (EVID=1) but the table has no AMT" in str(err)


INFUSION = """ID,TIME,DV,AMT,EVID,RATE,DUR
A,0,.,100,1,{rate},{dur}
A,1,5.0,.,0,.,.
"""


@pytest.mark.parametrize(
    ("rate", "dur", "column", "expected"),
    [
        ("-2", "0", "DUR", "infusion with RATE=-2 needs DUR > 0 (or DUR empty), got 0"),
        ("-1", "2", "DUR", "DUR=2 is given but RATE=-1 takes the rate from the model"),
        ("-3", ".", "RATE", "RATE must be > 0 (infusion), 0 (bolus), -1 (rate from the model) or"),
        ("0", "2", "DUR", "DUR=2 is given but RATE is not -2"),
    ],
)
def test_bad_infusion(tmp_path, rate, dur, column, expected):
    err = error_for(tmp_path, INFUSION.format(rate=rate, dur=dur))
    assert f"line 2, column {column}, patient 'A': {expected}" in str(err)


def test_reset_with_an_amount_refused(tmp_path):
    # NONMEM: EVID=3 is a reset only; an amount on it would be dropped without a word.
    err = error_for(tmp_path, replace_line(GOOD, 4, "B,0,.,100,3"))
    assert "line 4, column AMT, patient 'B': EVID=3 resets the patient without a dose, so " in str(
        err
    )
    assert "use EVID=4" in str(err)


def test_unknown_evid(tmp_path):
    err = error_for(tmp_path, replace_line(GOOD, 3, "A,1,5.0,.,7"))
    assert "line 3, column EVID, patient 'A': EVID must be 0 (observation), 1 (dose), 2" in str(err)


def test_steady_state_without_interval_refused(tmp_path):
    text = "ID,TIME,DV,AMT,EVID,SS,II\nA,0,.,100,1,1,.\nA,1,5.0,.,0,0,.\n"
    err = error_for(tmp_path, text)
    assert "line 2, column II, patient 'A': SS=1 needs the dosing interval II > 0, got 0" in str(
        err
    )


def test_addl_without_interval(tmp_path):
    text = "ID,TIME,DV,AMT,EVID,ADDL,II\nA,0,.,100,1,3,.\nA,1,5.0,.,0,.,.\n"
    err = error_for(tmp_path, text)
    assert "line 2, column II, patient 'A': ADDL=3 additional doses need an interval II > 0" in str(
        err
    )


def test_blq_flag_without_lloq(tmp_path):
    text = "ID,TIME,DV,AMT,EVID,LLOQ,BLQ\nA,0,.,100,1,.,.\nA,1,.,.,0,.,1\n"
    err = error_for(tmp_path, text)
    assert "line 3, column BLQ, patient 'A': BLQ=1 but no LLOQ is given" in str(err)


def test_observation_without_output_name(tmp_path):
    text = "ID,TIME,DV,output\nA,0,1.0,conc\nA,1,2.0,\n"
    err = error_for(tmp_path, text)
    assert "line 3, column output, patient 'A': observation has no output name" in str(err)


def test_missing_patient_id(tmp_path):
    err = error_for(tmp_path, replace_line(GOOD, 3, ",1,5.0,.,0"))
    p = only(err)
    assert (p.row, p.column, p.patient) == (3, "ID", None)
    assert "line 3, column ID: patient ID is missing" in str(err)


def test_duplicate_rows(tmp_path):
    text = GOOD + "B,2,3.0,.,0\n"
    err = error_for(tmp_path, text)
    p = only(err)
    assert (p.row, p.patient) == (6, "B")
    assert "line 6, patient 'B': row duplicates line 5 exactly" in str(err)


def test_unsorted_times_refused_by_default(tmp_path):
    text = "ID,TIME,DV\nA,0,1.0\nA,5,2.0\nA,3,3.0\nB,1,1.0\n"
    err = error_for(tmp_path, text)
    p = only(err)
    assert (p.row, p.column, p.patient) == (4, "TIME", "A")
    msg = str(err)
    assert "line 4, column TIME, patient 'A': time 3 is earlier than time 5 at line 3" in msg
    assert "sort=True" in msg


def test_unsorted_times_sorted_on_request(tmp_path):
    text = "ID,TIME,DV\nA,0,1.0\nB,1,7.0\nA,5,2.0\nA,3,3.0\n"
    with pytest.warns(CohortWarning, match="'A'"):
        c = read_cohort(write(tmp_path, text), sort=True)
    assert c.ids == ("A", "B")
    np.testing.assert_array_equal(c.obs_time[0], [0, 3, 5])
    np.testing.assert_array_equal(c.obs_value[0], [1.0, 3.0, 2.0])
    # the table keeps the file's line numbers after sorting
    assert list(c.table.index) == [2, 5, 4, 3]


def test_interleaved_patients_are_not_unsorted(tmp_path):
    text = "ID,TIME,DV\nA,0,1.0\nB,0,7.0\nA,5,2.0\nB,1,3.0\n"
    c = read_cohort(write(tmp_path, text))
    np.testing.assert_array_equal(c.obs_value, [[1.0, 2.0], [7.0, 3.0]])


def test_empty_file(tmp_path):
    err = error_for(tmp_path, "")
    assert "the file is empty" in str(err)


def test_header_only(tmp_path):
    err = error_for(tmp_path, "ID,TIME,DV\n")
    assert "the table has no rows" in str(err)


def test_empty_dataframe():
    with pytest.raises(CohortError, match=r"(?s)'DataFrame'.*no columns"):
        read_cohort(pd.DataFrame())
    with pytest.raises(CohortError, match="no rows"):
        read_cohort(pd.DataFrame({"ID": [], "TIME": [], "DV": []}))


def test_missing_file(tmp_path):
    with pytest.raises(CohortError, match=r"Cannot read cohort file .*nope\.csv.*no such file"):
        read_cohort(tmp_path / "nope.csv")


def test_unknown_extension(tmp_path):
    with pytest.raises(CohortError, match=r"unknown file type '\.xlsx'"):
        read_cohort(write(tmp_path, GOOD, "cohort.xlsx"))


def test_corrupt_parquet(tmp_path):
    p = tmp_path / "cohort.parquet"
    p.write_bytes(b"this is not parquet")
    with pytest.raises(CohortError, match=r"Cannot read cohort file .*cohort\.parquet"):
        read_cohort(p)


def test_not_utf8(tmp_path):
    p = tmp_path / "cohort.csv"
    p.write_bytes(b"ID,TIME,DV\n\xff\xfe\x00\x81,0,1\n")
    with pytest.raises(CohortError, match="Cannot read cohort file"):
        read_cohort(p)


def test_case_insensitive_duplicate_columns(tmp_path):
    err = error_for(tmp_path, "ID,TIME,time,DV\nA,0,0,1\n")
    assert "column 'time' appears twice" in str(err)


def test_reserved_column(tmp_path):
    err = error_for(tmp_path, "ID,TIME,DV,reason\nA,0,1,x\n")
    assert "column name 'reason' is reserved" in str(err)


def test_many_problems_collected_in_one_error(tmp_path):
    rows = [f"P{k},{-k - 1},1.0" for k in range(MAX_PROBLEMS + 5)]
    err = error_for(tmp_path, "ID,TIME,DV\n" + "\n".join(rows) + "\n")
    assert len(err.problems) == MAX_PROBLEMS + 5
    msg = str(err)
    assert f"has {MAX_PROBLEMS + 5} problems" in msg
    assert "and 5 more" in msg
    assert msg.count("TIME is negative") == MAX_PROBLEMS
    assert [p.row for p in err.problems] == list(range(2, MAX_PROBLEMS + 7))


def test_different_problems_reported_together(tmp_path):
    text = "ID,TIME,DV,AMT,EVID\nA,0,.,.,1\nA,x,5.0,.,0\nB,1,oops,.,0\n"
    err = error_for(tmp_path, text)
    got = {(p.row, p.column, p.patient) for p in err.problems}
    assert got == {(2, "AMT", "A"), (3, "TIME", "A"), (4, "DV", "B")}


def test_dataframe_rows_named_by_index_label():
    df = pd.DataFrame(
        {"ID": ["A", "A"], "TIME": [0.0, -1.0], "DV": [1.0, 2.0]}, index=["first", "second"]
    )
    with pytest.raises(CohortError) as info:
        read_cohort(df, name="my_table")
    assert "index second, column TIME, patient 'A': TIME is negative" in str(info.value)
    assert "'my_table'" in str(info.value)


def test_parquet_rows_named_by_row_number(tmp_path):
    df = pd.DataFrame({"ID": ["A", "A"], "TIME": [0.0, np.inf], "DV": [1.0, 2.0]})
    p = tmp_path / "cohort.parquet"
    df.to_parquet(p)
    with pytest.raises(CohortError) as info:
        read_cohort(p)
    assert "row 2, column TIME, patient 'A': TIME must be finite" in str(info.value)


def test_blank_lines_keep_line_numbers(tmp_path):
    text = "ID,TIME,DV\nA,0,1.0\n\nA,-1,2.0\n"
    err = error_for(tmp_path, text)
    assert only(err).row == 4
