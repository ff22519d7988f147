"""Time-varying covariates as segments: change times and values, LOCF and NOCB."""

import numpy as np
import pandas as pd
import pytest

from twin_uq.data import read_cohort
from twin_uq.errors import InputError


def _cohort():
    # P1: WT recorded 3.0 at 0, 3.0 again at 24 (no change), 3.5 at 48; CRCL first at 10.
    # P2: nothing changes.
    rows = [
        dict(ID=1, TIME=0, AMT=10, EVID=1, DV=".", WT=3.0, CRCL=np.nan),
        dict(ID=1, TIME=10, AMT=0, EVID=2, DV=".", WT=np.nan, CRCL=20.0),
        dict(ID=1, TIME=12, AMT=0, EVID=0, DV=1.0, WT=np.nan, CRCL=np.nan),
        dict(ID=1, TIME=24, AMT=0, EVID=2, DV=".", WT=3.0, CRCL=np.nan),
        dict(ID=1, TIME=30, AMT=0, EVID=2, DV=".", WT=np.nan, CRCL=30.0),
        dict(ID=1, TIME=48, AMT=0, EVID=0, DV=2.0, WT=3.5, CRCL=np.nan),
        dict(ID=2, TIME=0, AMT=10, EVID=1, DV=".", WT=70.0, CRCL=90.0),
        dict(ID=2, TIME=12, AMT=0, EVID=0, DV=1.0, WT=70.0, CRCL=90.0),
    ]
    return read_cohort(pd.DataFrame(rows))


def test_locf_segments_start_where_a_value_changes():
    c = _cohort()
    seg = c.covariate_segments(["wt", "CRCL"])  # matched without regard to case
    assert seg.names == ("WT", "CRCL")
    # P1: WT changes at 48; CRCL's first value (20, at 10) applies before it, 30 from 30.
    np.testing.assert_array_equal(seg.time[0], [0.0, 30.0, 48.0])
    np.testing.assert_array_equal(seg.values[0], [[3.0, 20.0], [3.0, 30.0], [3.5, 30.0]])
    # P2: one segment, padded with +inf and the last values.
    np.testing.assert_array_equal(seg.time[1], [0.0, np.inf, np.inf])
    np.testing.assert_array_equal(seg.values[1], [[70.0, 90.0]] * 3)
    assert seg.n_live.tolist() == [3, 1]


def test_nocb_carries_the_next_value_back_to_the_previous_row():
    seg = _cohort().covariate_segments(["WT", "CRCL"], "nocb")
    # WT: 3.5 applies on (24, 48]; CRCL: 30 on (10, 30]; before 10 CRCL's first value.
    np.testing.assert_array_equal(seg.time[0], [0.0, 10.0, 24.0])
    np.testing.assert_array_equal(seg.values[0], [[3.0, 20.0], [3.0, 30.0], [3.5, 30.0]])


def test_without_changes_one_segment_and_baseline_values():
    c = _cohort()
    seg = c.covariate_segments([])
    assert seg.n_segments == 1
    seg = c.select(["2"]).covariate_segments(["WT"])
    assert seg.n_segments == 1
    assert seg.values[0, 0, 0] == c.covariates.loc["2", "WT"]


def test_unknown_interpolation_is_refused():
    with pytest.raises(InputError, match="locf"):
        _cohort().covariate_segments(["WT"], "linear")
