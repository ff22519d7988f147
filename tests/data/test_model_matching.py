"""Nothing silent when a cohort meets a model: covariates, units, compartments, outputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.data import (
    CohortError,
    CovariateDefaultWarning,
    DepotInfusionWarning,
    read_cohort,
)
from twin_uq.inference.population import PopulationModel, build_covariate_design

NAN = np.nan


@pytest.fixture(scope="module")
def oral():
    return tq.load_model("one_compartment_oral")


@pytest.fixture(scope="module")
def pkpd():
    return tq.load_model("pkpd_emax")  # outputs: concentration, effect


def oral_frame(**extra) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "ID": ["a", "a", "b", "b"],
            "TIME": [0.0, 2.0, 0.0, 2.0],
            "DV": [NAN, 1.0, NAN, 2.0],
            "AMT": [100.0, NAN, 100.0, NAN],
        }
    )
    for k, v in extra.items():
        df[k] = v
    return df


def quiet_for_model(cohort, model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return cohort.for_model(model)


# ---- covariates: case, mapping, defaults --------------------------------------------------


def test_lowercase_wt_gives_the_same_allometry_as_wt(oral):
    """Verified bug: ``wt`` reached the arrays but gave all-zero allometric offsets."""
    upper = read_cohort(oral_frame(WT=[50.0, 50.0, 100.0, 100.0]))
    lower = read_cohort(oral_frame(wt=[50.0, 50.0, 100.0, 100.0]))
    spec = PopulationModel(oral)
    a_up = build_covariate_design(spec, upper).allometric
    a_low = build_covariate_design(spec, lower).allometric
    k = oral.parameter_names.index("CL")
    np.testing.assert_allclose(a_up[:, k], 0.75 * np.log(np.array([50.0, 100.0]) / 70.0))
    np.testing.assert_array_equal(a_low, a_up)
    np.testing.assert_array_equal(
        np.asarray(quiet_for_model(lower, oral).covariates),
        np.asarray(quiet_for_model(upper, oral).covariates),
    )


def test_covariate_effect_named_in_another_case(oral):
    c = read_cohort(oral_frame(WT=[50.0, 50.0, 100.0, 100.0], age=[30.0, 30.0, 60.0, 60.0]))
    design = build_covariate_design(PopulationModel(oral, covariate_effects={"CL": ["AGE"]}), c)
    # two values: a two-level term, named as requested, from the ``age`` column
    assert design.terms == ("AGE[60.0]",)
    np.testing.assert_array_equal(design.matrix[:, 0], [0.0, 1.0])


def test_explicit_mapping_of_a_covariate_column(oral):
    c = read_cohort(oral_frame(weight_kg=[50.0, 50.0, 100.0, 100.0]), rename={"weight_kg": "WT"})
    np.testing.assert_array_equal(np.asarray(quiet_for_model(c, oral).covariates)[:, 0], [50, 100])


def test_absent_covariate_taking_its_default_is_announced(oral):
    c = read_cohort(oral_frame())
    with pytest.warns(CovariateDefaultWarning, match="covariate 'WT'.*default WT = 70"):
        arrays = c.for_model(oral)
    np.testing.assert_array_equal(np.asarray(arrays.covariates)[:, 0], [70.0, 70.0])


def test_patient_without_a_value_taking_the_default_is_announced(oral):
    c = read_cohort(oral_frame(WT=[50.0, 50.0, NAN, NAN]))
    with pytest.warns(CovariateDefaultWarning, match=r"1 patient\(s\) .* default WT = 70: 'b'"):
        c.for_model(oral)


# ---- time unit ------------------------------------------------------------------------------


def test_declared_time_unit_other_than_the_models_is_refused_with_the_conversion(oral):
    c = read_cohort(oral_frame(WT=[70.0] * 4), time_unit="min")
    with pytest.raises(CohortError) as info:
        c.for_model(oral)
    msg = str(info.value)
    assert "time unit is 'min' but model 'one_compartment_oral' works in 'h'" in msg
    assert "multiply TIME, II and DUR by 0.0166667 and divide RATE by 0.0166667" in msg


def test_declared_time_unit_equal_to_the_models_passes(oral):
    c = read_cohort(oral_frame(WT=[70.0] * 4), time_unit="hours")
    assert c.time_unit == "h"
    quiet_for_model(c, oral)


def test_unknown_time_unit_is_refused():
    with pytest.raises(CohortError, match="time_unit='fortnight' is not a unit of time"):
        read_cohort(oral_frame(), time_unit="fortnight")


# ---- compartments and outputs ---------------------------------------------------------------


def test_observation_in_a_compartment_the_model_lacks_is_refused(oral):
    c = read_cohort(oral_frame(WT=[70.0] * 4, CMT=[1, 99, 1, 2]))
    with pytest.raises(CohortError) as info:
        c.for_model(oral)
    assert "index 1, column cmt, patient 'a': observation with CMT=99" in str(info.value)


def test_dvid_number_beyond_the_outputs_is_refused(pkpd):
    c = read_cohort(oral_frame(WT=[70.0] * 4, DVID=[NAN, 1, NAN, 3]))
    with pytest.raises(CohortError) as info:
        c.for_model(pkpd)
    assert "index 3, column dvid, patient 'b': DVID=3 names no output" in str(info.value)
    assert "1 = concentration, 2 = effect" in str(info.value)


def test_dvid_numbers_pick_the_outputs(pkpd):
    c = read_cohort(oral_frame(WT=[70.0] * 4, DVID=[NAN, 2, NAN, 1]))
    arrays = c.for_model(pkpd)
    np.testing.assert_array_equal(np.asarray(arrays.obs_output)[:, 0], [1, 0])


def test_dvid_name_naming_no_output_is_refused(pkpd):
    c = read_cohort(oral_frame(DVID=[NAN, "conc", NAN, "effect"]))
    with pytest.raises(CohortError, match="output\\(s\\) that model 'pkpd_emax' does not define"):
        c.for_model(pkpd)


def test_dvid_number_and_output_name_that_disagree_are_refused(pkpd):
    c = read_cohort(oral_frame(DVID=[NAN, 2, NAN, 1], output=[NAN, "concentration", NAN, "concentration"]))  # fmt: skip
    with pytest.raises(CohortError, match=r"DVID=2 is output 'effect'.*output column says"):
        c.for_model(pkpd)


# ---- doses ----------------------------------------------------------------------------------


def test_infusion_into_the_depot_is_questioned(oral):
    c = read_cohort(oral_frame(WT=[70.0] * 4, RATE=[50.0, NAN, 0.0, NAN]))
    with pytest.warns(DepotInfusionWarning, match="compartment 1 \\('depot'\\).*index 0 \\(patient 'a'\\)"):  # fmt: skip
        c.for_model(oral)


def test_infusion_into_a_declared_infusion_compartment_is_not_questioned(oral):
    class PumpedDepot(type(oral)):
        name = "oral_with_a_pump_into_the_depot"
        infusion_compartments = (1,)

    c = read_cohort(oral_frame(WT=[70.0] * 4, RATE=[50.0, NAN, 0.0, NAN]))
    quiet_for_model(c, PumpedDepot())


def test_infusion_into_the_central_compartment_is_not_questioned(oral):
    c = read_cohort(oral_frame(WT=[70.0] * 4, RATE=[50.0, NAN, 0.0, NAN], CMT=[2, 0, 1, 0]))
    quiet_for_model(c, oral)


def test_modelled_rate_needs_the_models_declaration(oral):
    c = read_cohort(oral_frame(WT=[70.0] * 4, RATE=[-1.0, NAN, 0.0, NAN]))
    with pytest.raises(CohortError) as info:
        c.for_model(oral)
    msg = str(info.value)
    assert (
        "index 0, column rate, patient 'a': RATE=-1 takes the infusion rate from the model" in msg
    )
    assert "tq.with_dose_parameters(model, 1, rate=tq.Parameter(...))" in msg
    declared = tq.with_dose_parameters(oral, 1, rate=tq.Parameter("R1", "mg/h", 10.0))
    quiet_for_model(c, declared)


def test_dur_beside_a_modelled_duration_is_ambiguous(oral):
    declared = tq.with_dose_parameters(oral, 1, duration=tq.Parameter("D1", "h", 2.0))
    c = read_cohort(oral_frame(WT=[70.0] * 4, RATE=[-2.0, NAN, -2.0, NAN], DUR=[3.0, NAN, NAN, NAN]))  # fmt: skip
    with pytest.raises(CohortError, match="index 0, column dur, patient 'a': RATE=-2 with DUR=3"):
        c.for_model(declared)
