"""Standard NONMEM columns read with their NONMEM meaning, never as covariates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from twin_uq.data import CohortError, read_cohort
from twin_uq.simulate.schedule import Bolus, Infusion, ModelledInfusion, Reset


def frame(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


NAN = np.nan


# ---- censoring: CENS with DV as the limit, LIMIT the other bound ------------------------------


def test_cens_and_limit_are_censoring_not_covariates():
    c = read_cohort(
        frame(
            ID=["a"] * 5,
            TIME=[0, 1, 2, 3, 4],
            DV=[5.0, 0.5, 0.5, 40.0, 3.0],
            CENS=[0, 1, 1, -1, 0],
            LIMIT=[NAN, NAN, 0.0, NAN, 0.0],  # LIMIT on an uncensored row means nothing
        )
    )
    assert c.covariate_names == ()
    np.testing.assert_array_equal(c.obs_cens[0], [0, 1, 1, -1, 0])
    np.testing.assert_array_equal(c.obs_censored[0], [False, True, True, True, False])
    # DV holds the limit of a censored row (NONMEM/Monolix convention)
    np.testing.assert_array_equal(c.obs_lloq[0], [-np.inf, 0.5, 0.5, 40.0, -np.inf])
    np.testing.assert_array_equal(c.obs_limit[0], [NAN, NAN, 0.0, NAN, NAN])
    assert c.summary().censored == 3


def test_blq_alias_is_cens_one_with_lloq_as_the_limit():
    alias = read_cohort(frame(ID=["a", "a"], TIME=[0, 1], DV=[2.0, NAN], lloq=[0.5, 0.5]))
    cens = read_cohort(frame(ID=["a", "a"], TIME=[0, 1], DV=[2.0, 0.5], CENS=[0, 1]))
    for c in (alias, cens):
        np.testing.assert_array_equal(c.obs_cens[0], [0, 1])
        assert c.obs_lloq[0, 1] == 0.5


def test_cens_and_blq_that_agree_are_accepted():
    c = read_cohort(
        frame(ID=["a", "a"], TIME=[0, 1], DV=[2.0, 0.5], CENS=[0, 1], LLOQ=[0.5, 0.5], BLQ=[0, 1])
    )
    np.testing.assert_array_equal(c.obs_cens[0], [0, 1])


# ---- DVID ------------------------------------------------------------------------------------


def test_numeric_dvid_is_the_output_index_not_a_covariate():
    c = read_cohort(frame(ID=["a"] * 3, TIME=[0, 1, 2], DV=[1.0, 2.0, 3.0], DVID=[1, 2, 1]))
    assert c.covariate_names == ()
    assert c.outputs == ()
    np.testing.assert_array_equal(c.obs_dvid[0], [1, 2, 1])


def test_dvid_of_names_is_the_output_column():
    c = read_cohort(frame(ID=["a"] * 2, TIME=[0, 1], DV=[1.0, 2.0], DVID=["conc", "effect"]))
    assert c.outputs == ("conc", "effect")
    np.testing.assert_array_equal(c.obs_output[0], [0, 1])
    assert c.covariate_names == ()


# ---- OCC -------------------------------------------------------------------------------------


def test_occasion_is_kept_per_row_and_per_observation():
    c = read_cohort(
        frame(
            ID=["a"] * 4,
            TIME=[0, 1, 24, 25],
            DV=[NAN, 2.0, NAN, 3.0],
            AMT=[100, NAN, 100, NAN],
            OCC=[1, 1, 2, 2],
        )
    )
    assert c.covariate_names == ()
    assert c.table["occ"].tolist() == [1, 1, 2, 2]
    np.testing.assert_array_equal(c.obs_occ[0], [1, 2])


# ---- dose records ------------------------------------------------------------------------------


def test_steady_state_dose_with_addl_is_one_ss_dose_then_plain_doses():
    c = read_cohort(
        frame(
            ID=["a", "a"],
            TIME=[0, 30],
            DV=[NAN, 1.0],
            AMT=[100, NAN],
            SS=[1, 0],
            II=[12, NAN],
            ADDL=[2, NAN],
        )
    )
    assert c.boluses[0] == (
        Bolus(0.0, 100.0, 0, ss=1, ii=12.0),
        Bolus(12.0, 100.0, 0),
        Bolus(24.0, 100.0, 0),
    )


def test_ss2_infusion_and_constant_infusion():
    c = read_cohort(
        frame(
            ID=["a", "a", "a"],
            TIME=[0, 0, 5],
            DV=[NAN, NAN, 1.0],
            AMT=[0, 100, NAN],
            EVID=[1, 1, 0],
            RATE=[10, 50, NAN],
            SS=[1, 2, 0],
            II=[0, 24, NAN],
            CMT=[2, 2, 0],
        )
    )
    assert c.infusions[0] == (
        Infusion(0.0, 10.0, math.inf, 2, ss=1, ii=0.0),
        Infusion(0.0, 50.0, 2.0, 2, ss=2, ii=24.0),
    )


def test_evid_3_and_4_are_resets():
    c = read_cohort(
        frame(
            ID=["a"] * 4,
            TIME=[0, 10, 20, 21],
            DV=[NAN, NAN, NAN, 1.0],
            AMT=[100, NAN, 50, NAN],
            EVID=[1, 3, 4, 0],
        )
    )
    assert c.resets[0] == (Reset(10.0), Reset(20.0))
    assert c.boluses[0] == (Bolus(0.0, 100.0), Bolus(20.0, 50.0))
    assert c.summary().doses == 2


def test_evid_4_before_any_dose_is_a_reset_of_nothing():
    c = read_cohort(frame(ID=["a", "a"], TIME=[0, 1], DV=[NAN, 1.0], AMT=[100, NAN], EVID=[4, 0]))
    assert c.resets[0] == (Reset(0.0),)
    assert c.boluses[0] == (Bolus(0.0, 100.0),)


def test_modelled_rate_and_duration():
    c = read_cohort(
        frame(
            ID=["a"] * 4,
            TIME=[0, 12, 24, 30],
            DV=[NAN, NAN, NAN, 1.0],
            AMT=[100, 100, 100, NAN],
            RATE=[-1, -2, -2, NAN],
            DUR=[NAN, NAN, 4.0, NAN],
        )
    )
    assert c.modelled[0] == (
        ModelledInfusion(0.0, 100.0, 0, "rate"),
        ModelledInfusion(12.0, 100.0, 0, "duration"),
    )
    # RATE=-2 with the project's DUR column keeps its old meaning: the duration is data
    assert c.infusions[0] == (Infusion(24.0, 25.0, 4.0, 0),)


def test_mdv_observation_is_a_prediction_time_not_data():
    c = read_cohort(frame(ID=["a", "a"], TIME=[0, 1], DV=[1.0, 2.0], MDV=[0, 1]))
    assert c.n_obs.tolist() == [1]
    assert "MDV=1" in c.excluded["reason"].iloc[0]


# ---- reserved names, rename, ignore ---------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "advice"),
    [
        ("DATE", "give elapsed TIME"),
        ("L2", "twin_uq does not use"),
        ("TAD", "derived from the dose records"),
        ("XVID3", "NONMEM event-id item"),
        ("YTYPE", "rename the column to DVID"),
        ("dat1", "NONMEM calendar date"),
    ],
)
def test_reserved_names_are_refused_with_what_to_do(column, advice):
    df = frame(ID=["a"], TIME=[0], DV=[1.0])
    df[column] = [1]
    with pytest.raises(CohortError) as info:
        read_cohort(df)
    msg = str(info.value)
    assert f"column {column}: {column!r} is a reserved NONMEM/Monolix name" in msg
    assert advice in msg
    assert "ignore=[...]" in msg or "rename" in msg


def test_ignore_reads_past_a_column_and_the_summary_says_so():
    df = frame(ID=["a"], TIME=[0], DV=[1.0], DATE=["2026-01-01"], WT=[70.0])
    c = read_cohort(df, ignore=["date"])
    assert c.covariate_names == ("WT",)
    assert c.ignored == ("DATE",)
    assert "ignored columns:       DATE" in str(c.summary())


def test_rename_maps_a_column_to_the_name_a_model_uses():
    c = read_cohort(
        frame(ID=["a"], TIME=[0], DV=[1.0], weight_kg=[80.0]), rename={"weight_kg": "WT"}
    )
    assert c.covariate_names == ("WT",)
    assert c.covariates["WT"].tolist() == [80.0]


def test_rename_or_ignore_of_a_missing_column_is_refused():
    with pytest.raises(CohortError, match="names column 'weight', which the table does not"):
        read_cohort(frame(ID=["a"], TIME=[0], DV=[1.0]), rename={"weight": "WT"})
    with pytest.raises(CohortError, match=r"read_cohort\(ignore=\.\.\.\) names column 'date'"):
        read_cohort(frame(ID=["a"], TIME=[0], DV=[1.0]), ignore=["date"])


# ---- the load summary ------------------------------------------------------------------------


def test_load_summary_lists_how_every_column_was_read():
    df = frame(
        ID=["a", "a", "b"],
        TIME=[0, 1, 0],
        DV=[1.0, 2.0, 0.5],
        CENS=[0, 0, 1],
        DVID=[1, 1, 1],
        blq=[0, 0, 1],
        lloq=[0.5, 0.5, 0.5],
        WT=[70.0, 72.0, 80.0],
        SEX=["F", "F", "M"],
        NOTE=["x", "y", "z"],
    )
    s = read_cohort(df, time_unit="hours", ignore=["NOTE"]).summary()
    assert s.understood == (
        ("ID", "id"),
        ("TIME", "time"),
        ("DV", "dv"),
        ("CENS", "cens"),
        ("DVID", "dvid"),
        ("blq", "blq"),
        ("lloq", "lloq"),
    )
    assert s.baseline == ("SEX",)
    assert s.time_varying == ("WT",)
    assert s.ignored == ("NOTE",)
    assert s.time_unit == "h"
    text = str(s)
    assert "columns understood:    ID, TIME, DV, CENS, DVID, blq, lloq" in text
    assert "blq: twin_uq's own column, CENS=1 with LLOQ as the limit" in text
    assert "baseline covariates:   SEX" in text
    assert "time-varying:          WT" in text
    assert "time unit:             h" in text


def test_undeclared_time_unit_is_said_in_the_summary():
    s = str(read_cohort(frame(ID=["a"], TIME=[0], DV=[1.0])).summary())
    assert "time unit:             not declared: taken to be the model's" in s


def test_summary_survives_select_and_split():
    df = frame(ID=["a", "b"], TIME=[0, 0], DV=[1.0, 2.0], N=[1, 2])
    c = read_cohort(df, time_unit="min", ignore=["n"])
    for sub in (c.select(["b"]), *c.split_at(0.5)):
        assert sub.time_unit == "min" and sub.ignored == ("N",)
