"""Hostile inputs for the NONMEM columns: each refused naming file, line, column and patient.

Every case is decided as NONMEM would (docs: Data format, "Hostile inputs"); where NONMEM
accepts a record, twin_uq accepts it too and the test says what it is read as.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_uq.data import CohortError, read_cohort
from twin_uq.simulate.schedule import Bolus, ModelledInfusion, Reset

HEAD = "ID,TIME,DV,AMT,EVID,RATE,SS,II,ADDL,CENS,LIMIT,OCC,DVID\n"
OBS = "A,30,5.0,.,0,.,.,.,.,0,.,1,1\n"


def write(tmp_path: Path, rows: str, head: str = HEAD) -> Path:
    p = tmp_path / "hostile.csv"
    p.write_text(head + rows)
    return p


def refused(tmp_path: Path, rows: str, head: str = HEAD) -> str:
    path = write(tmp_path, rows, head)
    with pytest.raises(CohortError) as info:
        read_cohort(path)
    msg = str(info.value)
    assert str(path) in msg  # the file
    return msg


# Each case: the first (offending) row, the column and the message it must be refused with;
# the second row is a plain observation. "line 2" is the offending row (header = line 1).
REFUSED = [
    ("ss_without_ii", "A,0,.,100,1,0,1,.,.,0,.,1,.", "II", "SS=1 needs the dosing interval II > 0"),
    ("ss2_without_ii", "A,0,.,100,1,0,2,0,.,0,.,1,.", "II", "SS=2 (add steady state) needs"),
    ("ss_on_observation", "A,0,1.0,.,0,.,1,12,.,0,.,1,1", "SS", "SS=1 on a row that is not a dose"),
    ("ss_code", "A,0,.,100,1,0,3,12,.,0,.,1,.", "SS", "SS must be 0, 1 (reset to steady state)"),
    ("ss_not_whole", "A,0,.,100,1,0,1.5,12,.,0,.,1,.", "SS", "SS must be 0, 1 or 2, got 1.5"),
    ("negative_ii", "A,0,.,100,1,0,1,-12,.,0,.,1,.", "II", "II must be >= 0, got -12"),
    ("evid3_with_amount", "A,0,.,100,3,.,.,.,.,0,.,1,.", "AMT", "EVID=3 resets the patient"),
    ("evid3_with_ss", "A,0,.,.,3,.,1,12,.,0,.,1,.", "SS", "SS=1 on a row that is not a dose"),
    ("evid4_without_amount", "A,0,.,.,4,.,.,.,.,0,.,1,.", "AMT", "dose row (EVID=4) has no amount"),
    ("evid_code", "A,0,.,100,5,.,.,.,.,0,.,1,.", "EVID", "EVID must be 0 (observation), 1 (dose)"),
    ("constant_infusion_amount", "A,0,.,100,1,10,1,0,.,0,.,1,.", "AMT", "a constant steady-state"),
    ("rate_code", "A,0,.,100,1,-3,.,.,.,0,.,1,.", "RATE", "RATE must be > 0 (infusion), 0"),
    ("cens_code", "A,0,1.0,.,0,.,.,.,.,2,.,1,1", "CENS", "CENS must be -1 (above the limit), 0"),
    ("cens_on_dose", "A,0,.,100,1,0,.,.,.,1,.,1,.", "CENS", "CENS=1 on a row that is not an obs"),
    ("cens_without_dv", "A,0,.,.,0,.,.,.,.,1,.,1,1", "DV", "CENS=1 needs DV = the quantification"),
    (
        "limit_above_dv",
        "A,0,0.5,.,0,.,.,.,.,1,0.7,1,1",
        "LIMIT",
        "CENS=1 is the interval LIMIT < value",
    ),
    (
        "limit_below_dv_up",
        "A,0,40,.,0,.,.,.,.,-1,30,1,1",
        "LIMIT",
        "CENS=-1 is the interval DV < value",
    ),
    ("occ_not_integer", "A,0,1.0,.,0,.,.,.,.,0,.,1.5,1", "OCC", "OCC must be a whole number"),
    ("occ_missing", "A,0,1.0,.,0,.,.,.,.,0,.,.,1", "OCC", "OCC is missing; with an OCC column"),
    ("dvid_zero", "A,0,1.0,.,0,.,.,.,.,0,.,1,0", "DVID", "DVID must be >= 1 (1-based index"),
    ("dvid_missing", "A,0,1.0,.,0,.,.,.,.,0,.,1,.", "DVID", "observation has no DVID"),
]


@pytest.mark.parametrize(("row", "column", "expected"), [c[1:] for c in REFUSED],
                         ids=[c[0] for c in REFUSED])  # fmt: skip
def test_refused_naming_line_column_and_patient(tmp_path, row, column, expected):
    msg = refused(tmp_path, row + "\n" + OBS)
    assert f"line 2, column {column}, patient 'A': {expected}" in msg


def test_limit_without_cens_is_refused(tmp_path):
    head = "ID,TIME,DV,LIMIT\n"
    msg = refused(tmp_path, "A,0,1.0,.\nA,1,0.5,0\n", head)
    assert "line 3, column LIMIT, patient 'A': LIMIT is given but the table has no CENS" in msg


@pytest.mark.parametrize(
    ("rows", "line", "column", "expected"),
    [
        ("A,0,0.3,0.5,0,0", 2, "CENS", "CENS=0 but DV is below (or has no value under) LLOQ=0.5"),
        ("A,0,0.5,0.5,1,0", 2, "CENS", "CENS=1 but BLQ=0"),
        ("A,0,0.5,0.5,0,1", 2, "CENS", "CENS=0 but BLQ=1"),
        ("A,0,0.4,0.5,1,1", 2, "LLOQ", "CENS=1 says DV=0.4 is the limit, but LLOQ=0.5"),
        ("A,0,40,0.5,-1,1", 2, "CENS", "CENS=-1 (above the limit) but BLQ/LLOQ say below"),
    ],
)
def test_cens_and_blq_columns_that_disagree_are_refused(tmp_path, rows, line, column, expected):
    head = "ID,TIME,DV,LLOQ,CENS,BLQ\n"
    msg = refused(tmp_path, rows + "\nA,1,2.0,0.5,0,0\n", head)
    assert f"line {line}, column {column}, patient 'A': {expected}" in msg


def test_dvid_names_that_disagree_with_output_are_refused(tmp_path):
    head = "ID,TIME,DV,DVID,output\n"
    msg = refused(tmp_path, "A,0,1.0,conc,effect\nA,1,2.0,conc,conc\n", head)
    assert "line 2, column DVID, patient 'A': DVID='conc' but output='effect'" in msg


# ---- accepted, as NONMEM accepts them: read as stated -----------------------------------------


def test_cens_without_limit_is_m3(tmp_path):
    c = read_cohort(write(tmp_path, "A,0,0.5,.,0,.,.,.,.,1,.,1,1\n" + OBS))
    assert c.obs_cens[0].tolist() == [1, 0]
    assert c.obs_lloq[0, 0] == 0.5


def test_evid4_before_any_dose_resets_nothing_and_doses(tmp_path):
    c = read_cohort(write(tmp_path, "A,0,.,100,4,0,.,.,.,0,.,1,.\n" + OBS))
    assert c.resets[0] == (Reset(0.0),)
    assert c.boluses[0] == (Bolus(0.0, 100.0),)


def test_ss1_with_rate_minus_2_is_a_steady_state_of_modelled_infusions(tmp_path):
    c = read_cohort(write(tmp_path, "A,0,.,100,1,-2,1,12,.,0,.,1,.\n" + OBS))
    assert c.modelled[0] == (ModelledInfusion(0.0, 100.0, 0, "duration", ss=1, ii=12.0),)


def test_all_problems_of_a_file_are_listed_with_rows(tmp_path):
    rows = (
        "A,0,.,100,1,0,1,.,.,0,.,1,.\n"  # SS without II
        "A,1,1.0,.,0,.,.,.,.,0,.,1.5,1\n"  # OCC not an integer
        "B,0,.,100,3,.,.,.,.,0,.,1,.\n"  # EVID=3 with an amount
    )
    msg = refused(tmp_path, rows)
    assert "line 2, column II, patient 'A'" in msg
    assert "line 3, column OCC, patient 'A'" in msg
    assert "line 4, column AMT, patient 'B'" in msg
