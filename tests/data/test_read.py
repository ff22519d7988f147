"""Reading cohort tables: NONMEM rules, the hand-written hospital file, Parquet, round trips."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.data import Cohort, read_cohort
from twin_uq.simulate.schedule import Bolus, Infusion

HOSPITAL = Path(__file__).parent / "files" / "hospital_cohort.csv"


@pytest.fixture(scope="module")
def hospital() -> Cohort:
    return read_cohort(HOSPITAL)


def frame(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


# ---- the hand-written, real-world-shaped file ---------------------------------------------------


def test_hospital_ids_outputs_and_exports(hospital):
    assert tq.read_cohort is read_cohort and tq.Cohort is Cohort
    assert hospital.ids == ("H-0042", "H-0107", "H-0213", "H-0388", "H-0501", "H-0777")
    assert hospital.outputs == ("conc", "effect")
    assert hospital.source == str(HOSPITAL)


def test_hospital_observations(hospital):
    # H-0042: 4 conc obs, the last (0.3 < lloq 0.5) censored but keeps its value
    k = hospital.index("H-0042")
    np.testing.assert_array_equal(hospital.obs_time[k], [1, 4, 11.5, 36])
    np.testing.assert_array_equal(hospital.obs_value[k], [4.1, 6.8, 2.2, 0.3])
    np.testing.assert_array_equal(hospital.obs_censored[k], [False, False, False, True])
    np.testing.assert_array_equal(hospital.obs_lloq[k], [0.5] * 4)
    # H-0107: MDV=1 row at t=6 excluded; t=24 has no DV and BLQ=1 -> censored, value 0
    k = hospital.index("H-0107")
    np.testing.assert_array_equal(hospital.obs_mask[k], [True, True, True, False])
    np.testing.assert_array_equal(hospital.obs_time[k, :3], [1, 2, 24])
    np.testing.assert_array_equal(hospital.obs_value[k, :3], [21.3, 19.8, 0.0])
    np.testing.assert_array_equal(hospital.obs_censored[k], [False, False, True, False])
    assert hospital.obs_lloq[k, 3] == -np.inf
    # H-0388: two outputs at t=3; "effect" has no lloq
    k = hospital.index("H-0388")
    np.testing.assert_array_equal(hospital.obs_output[k, :3], [0, 1, 0])
    np.testing.assert_array_equal(hospital.obs_lloq[k, :3], [0.5, -np.inf, 0.5])
    # data-poor patients are present, with no observations
    assert hospital.n_obs.tolist() == [4, 3, 3, 3, 0, 0]
    assert hospital.obs_mask.shape == (6, 4)


def test_hospital_doses(hospital):
    b = dict(zip(hospital.ids, hospital.boluses, strict=True))
    i = dict(zip(hospital.ids, hospital.infusions, strict=True))
    # ADDL=2, II=12 -> 3 oral doses into CMT 1
    assert b["H-0042"] == tuple(Bolus(t, 500.0, 1) for t in (0.0, 12.0, 24.0))
    assert [d.time for d in b["H-0213"]] == [0, 8, 16, 24, 32, 40]
    # RATE=500 for AMT=1000 -> a 2 h infusion into CMT 2
    assert i["H-0107"] == (Infusion(0.0, 500.0, 2.0, 2),)
    assert b["H-0107"] == ()
    # RATE=-2 with DUR=0.5: 200 over 0.5 h, alongside ADDL oral doses
    assert i["H-0501"] == (Infusion(0.0, 400.0, 0.5, 2),)
    assert len(b["H-0501"]) == 4
    assert b["H-0777"] == (Bolus(0.0, 500.0, 1), Bolus(12.0, 500.0, 1))


def test_hospital_exclusions_name_lines_and_reasons(hospital):
    ex = hospital.excluded
    assert list(ex.index) == [10, 14, 23]  # CSV line numbers, header = line 1
    assert list(ex["id"]) == ["H-0107", "H-0213", "H-0501"]
    assert ex["reason"].str.startswith("MDV=1").tolist() == [True, False, True]
    assert ex.loc[14, "reason"].startswith("EVID=2")


def test_hospital_covariates(hospital):
    cov = hospital.covariates
    assert list(cov.columns) == ["WT", "AGE", "SEX"]
    assert list(cov.index) == list(hospital.ids)
    assert cov.loc["H-0213", "WT"] == 55.0  # baseline, before the EVID=2 update to 57
    assert np.isnan(cov.loc["H-0777", "AGE"])
    assert isinstance(cov["SEX"].dtype, pd.CategoricalDtype)
    assert list(cov["SEX"].cat.categories) == ["F", "M"]
    assert cov["WT"].dtype == np.float64
    # WT changes within H-0213 only, so it is the one time-varying covariate
    assert hospital.time_varying == ("WT",)
    s = hospital.covariate_series
    s213 = s[s["id"] == "H-0213"]
    assert s213["time"].tolist() == [0, 2, 10, 26, 48]
    assert s213["value"].tolist() == [55, 55, 57, 57, 57]


def test_hospital_summary(hospital):
    s = hospital.summary()
    assert s.patients == 6
    assert s.obs_per_patient == (0, 3.0, 4)
    assert s.doses == 3 + 1 + 6 + 2 + 5 + 2
    assert s.censored == 3
    assert s.excluded == 3
    text = str(s)
    assert "patients:              6" in text
    assert "time-varying: WT" in text


# ---- round trips ----------------------------------------------------------------------------


def test_round_trip_through_dataframe(hospital):
    again = read_cohort(hospital.to_dataframe())
    assert again == hospital
    assert again.source == "DataFrame"
    assert list(again.excluded.index) == [8, 12, 21]  # DataFrame index labels now


def test_round_trip_through_csv_and_parquet(hospital, tmp_path):
    hospital.to_dataframe().to_csv(tmp_path / "c.csv", index=False)
    assert read_cohort(tmp_path / "c.csv") == hospital
    hospital.to_dataframe().to_parquet(tmp_path / "c.parquet")
    assert read_cohort(tmp_path / "c.parquet") == hospital


def test_parquet_of_raw_table_equals_csv(hospital, tmp_path):
    raw = pd.read_csv(HOSPITAL, na_values=["."])
    raw.to_parquet(tmp_path / "raw.parquet")
    c = read_cohort(tmp_path / "raw.parquet")
    assert c == hospital
    assert c.row_word == "row"


def test_equality_detects_differences(hospital):
    df = hospital.to_dataframe()
    df.loc[1, "dv"] = 4.2
    assert read_cohort(df) != hospital
    assert hospital != "not a cohort"


# ---- NONMEM rules ------------------------------------------------------------------------------


def test_evid_inferred_from_amt():
    c = read_cohort(frame(ID=[1, 1, 1], TIME=[0, 1, 2], AMT=[10, 0, np.nan], DV=[np.nan, 3, 4]))
    assert c.boluses == ((Bolus(0.0, 10.0, 0),),)
    np.testing.assert_array_equal(c.obs_value, [[3.0, 4.0]])
    assert c.table["evid"].tolist() == [1, 0, 0]


def test_ids_numbers_or_text_in_order_of_first_appearance():
    c = read_cohort(frame(ID=[10, 10, 2, 2.0, 30], TIME=[0, 1, 0, 1, 0], DV=[1, 2, 3, 4, 5]))
    assert c.ids == ("10", "2", "30")
    assert c.n_patients == 3


def test_case_insensitive_columns():
    c = read_cohort(frame(id=["a"], Time=[0.5], dV=[2.0], Output=["x"]))
    assert c.outputs == ("x",)
    assert list(c.table.columns[:3]) == ["id", "time", "dv"]


def test_cmt_absent_means_default_compartment():
    c = read_cohort(frame(ID=["a", "a"], TIME=[0, 1], AMT=[5, np.nan], DV=[np.nan, 1]))
    assert c.boluses[0][0].cmt == 0


def test_infusion_rate_and_dur():
    c = read_cohort(
        frame(
            ID=["a"] * 3,
            TIME=[0, 1, 2],
            AMT=[100, 60, np.nan],
            RATE=[25, -2, np.nan],
            DUR=[np.nan, 3, np.nan],
            DV=[np.nan, np.nan, 1.0],
        )
    )
    assert c.infusions[0] == (Infusion(0.0, 25.0, 4.0, 0), Infusion(1.0, 20.0, 3.0, 0))
    assert c.boluses[0] == ()


def test_addl_ii_expansion_of_infusions():
    c = read_cohort(frame(ID=["a"], TIME=[1.0], AMT=[10.0], RATE=[5.0], ADDL=[2], II=[6.0]))
    assert [i.start for i in c.infusions[0]] == [1.0, 7.0, 13.0]
    assert all(i.duration == 2.0 for i in c.infusions[0])


def test_censoring_rules():
    c = read_cohort(
        frame(
            ID=["a"] * 6,
            TIME=[0, 1, 2, 3, 4, 5],
            DV=[0.1, np.nan, 2.0, 2.0, np.nan, 0.1],
            LLOQ=[0.5, 0.5, 0.5, 0.5, np.nan, np.nan],
            BLQ=[0, 0, 1, 0, 0, 0],
        )
    )
    # below lloq; missing with lloq; flagged; above lloq; missing without lloq; no lloq
    np.testing.assert_array_equal(c.obs_time[0, :5], [0, 1, 2, 3, 5])
    np.testing.assert_array_equal(c.obs_censored[0, :5], [True, True, True, False, False])
    np.testing.assert_array_equal(c.obs_value[0, :5], [0.1, 0.0, 2.0, 2.0, 0.1])
    np.testing.assert_array_equal(c.obs_lloq[0, :5], [0.5, 0.5, 0.5, 0.5, -np.inf])
    assert c.excluded["reason"].tolist() == ["DV missing and no LLOQ: nothing observed"]
    assert c.excluded.index.tolist() == [4]


def test_mdv_row_kept_in_table_but_excluded():
    c = read_cohort(frame(ID=["a", "a"], TIME=[0, 1], DV=[1.0, 2.0], MDV=[0, 1]))
    assert len(c.table) == 2
    assert c.n_obs.tolist() == [1]
    assert c.excluded["reason"].tolist() == ["MDV=1: observation row marked missing"]


def test_no_output_column_means_empty_outputs():
    c = read_cohort(frame(ID=["a"], TIME=[0], DV=[1.0]))
    assert c.outputs == ()
    assert c.obs_output.tolist() == [[0]]


def test_dose_only_table_pads_to_one():
    c = read_cohort(frame(ID=["a", "b"], TIME=[0, 0], AMT=[1.0, 2.0]))
    assert c.obs_mask.shape == (2, 1)
    assert not c.obs_mask.any()
    assert c.excluded.empty


def test_string_and_numeric_covariates(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("ID,TIME,DV,SEX,CODE,CRCL\nA,0,1,F,1,.\nA,1,2,F,1,80\nB,0,1,M,2,95\n")
    c = read_cohort(p)
    assert isinstance(c.covariates["SEX"].dtype, pd.CategoricalDtype)
    assert c.covariates["CODE"].tolist() == [1.0, 2.0]
    assert c.covariates["CRCL"].tolist() == [80.0, 95.0]  # first non-missing value
    assert c.time_varying == ()
    assert c.covariate_series.empty


def test_table_to_cohort_to_table(hospital):
    table = hospital.to_dataframe()
    pd.testing.assert_frame_equal(read_cohort(table).to_dataframe(), table)
    assert table.columns[:4].tolist() == ["id", "time", "dv", "amt"]
