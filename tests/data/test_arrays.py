"""Cohort.for_model: outputs mapped to the model, schedules stacked, covariates gathered."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from twin_uq import Model, ModelCard, Output, Parameter
from twin_uq.data import Cohort, CohortArrays, CohortError, read_cohort

HOSPITAL = Path(__file__).parent / "files" / "hospital_cohort.csv"
CARD = ModelCard(summary="test model", equations="dy/dt = -k y", time_unit="h")


class TwoOutputs(Model):
    name = "two_outputs"
    states = ("gut", "central")
    parameters = (Parameter("k", "1/h", 0.5),)
    outputs = (Output("effect", "%"), Output("conc", "mg/L"))  # order differs from the data
    card = CARD
    covariates = ("WT", "AGE")
    covariate_defaults = {"AGE": 50.0}  # noqa: RUF012

    # Only the declaration matters to Cohort.for_model; a model must still say both.
    def rhs(self, t, y, theta, inputs, covariates):
        return -theta["k"] * y

    def observe(self, y, theta):
        return y[::-1]


class NeedsSignal(TwoOutputs):
    name = "needs_signal"
    signals = ("insulin",)


class NeedsWeightSignal(TwoOutputs):
    name = "needs_weight_signal"
    signals = ("WT",)


class NeedsCrcl(TwoOutputs):
    name = "needs_crcl"
    covariates = ("CRCL",)
    covariate_defaults = {}  # noqa: RUF012


class NeedsSex(TwoOutputs):
    name = "needs_sex"
    covariates = ("SEX",)


class OneState(TwoOutputs):
    name = "one_state"
    states = ("central",)


class OnlyConc(TwoOutputs):
    name = "only_conc"
    outputs = (Output("conc", "mg/L"),)


@pytest.fixture(scope="module")
def hospital() -> Cohort:
    return read_cohort(HOSPITAL)


@pytest.fixture(scope="module")
def arrays(hospital) -> CohortArrays:
    return hospital.for_model(TwoOutputs())


def test_shapes_and_dtypes(arrays):
    for name in ("obs_time", "obs_value", "obs_lloq", "covariates"):
        assert getattr(arrays, name).dtype == jnp.float64, name
    assert arrays.obs_time.shape == (6, 4)
    assert arrays.obs_mask.dtype == jnp.bool_
    assert jnp.issubdtype(arrays.obs_output.dtype, jnp.integer)
    assert arrays.covariates.shape == (6, 2)
    assert arrays.n_patients == 6


def test_outputs_mapped_to_model_order(hospital, arrays):
    k = hospital.index("H-0388")
    # data: conc, effect, conc -> model order (effect, conc)
    np.testing.assert_array_equal(np.asarray(arrays.obs_output[k, :3]), [1, 0, 1])
    assert arrays.output_names == ("effect", "conc")


def test_covariates_with_defaults(hospital, arrays):
    np.testing.assert_array_equal(np.asarray(arrays.covariates[:, 0]), hospital.covariates["WT"])
    age = np.asarray(arrays.covariates[:, 1])
    assert age[hospital.index("H-0777")] == 50.0  # missing -> model default
    assert age[hospital.index("H-0042")] == 54.0


def test_batched_schedule(hospital, arrays):
    s = arrays.schedule
    assert s.bolus_time.shape == (6, 6)  # H-0213 has 6 expanded doses
    assert s.infusion_rate.shape == (6, 1)
    assert np.asarray(s.bolus_mask).sum(axis=1).tolist() == [len(b) for b in hospital.boluses]
    assert float(s.infusion_rate[1, 0]) == 500.0


def test_is_a_vmappable_pytree(arrays):
    n_obs = jax.vmap(lambda a: a.obs_mask.sum())(arrays)
    np.testing.assert_array_equal(np.asarray(n_obs), [4, 3, 3, 3, 0, 0])


def test_model_signals_from_time_varying_covariates(hospital):
    a = hospital.for_model(NeedsWeightSignal())
    k = hospital.index("H-0213")
    m = np.asarray(a.schedule.signal_mask[k])
    np.testing.assert_array_equal(
        np.asarray(a.schedule.signal_value[k, m, 0]), [55, 55, 57, 57, 57]
    )
    assert a.schedule.signal_value.shape[-1] == 1


def test_missing_signal_named(hospital):
    with pytest.raises(
        CohortError,
        match=r"Model 'needs_signal' needs the measured signal 'insulin'.*no signal column",
    ):
        hospital.for_model(NeedsSignal())


def test_unknown_output_names_listed_with_rows(hospital):
    with pytest.raises(CohortError) as info:
        hospital.for_model(OnlyConc())
    msg = str(info.value)
    assert "'effect' (first lines 19)" in msg
    assert "['conc']" in msg
    assert info.value.problems[0].patient == "H-0388"


def test_cohort_without_outputs_maps_to_first_output():
    c = read_cohort(pd.DataFrame({"ID": ["a", "a"], "TIME": [0, 1], "DV": [1.0, 2.0], "WT": 70}))
    a = c.for_model(TwoOutputs())
    assert np.asarray(a.obs_output).tolist() == [[0, 0]]


def test_missing_covariate_value_without_default(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("ID,TIME,DV,CRCL\nA,0,1,80\nB,0,1,.\n")
    with pytest.raises(CohortError) as info:
        read_cohort(p).for_model(NeedsCrcl())
    assert "column CRCL, patient 'B': no value of covariate 'CRCL'" in str(info.value)


def test_missing_covariate_column_without_default():
    c = read_cohort(pd.DataFrame({"ID": ["a"], "TIME": [0], "DV": [1.0]}))
    with pytest.raises(CohortError, match="needs covariate 'CRCL'"):
        c.for_model(NeedsCrcl())

    class NeedsAge(TwoOutputs):
        name = "needs_age"
        covariates = ("AGE",)

    # the model's default fills a column the data lacks
    a = c.for_model(NeedsAge())
    assert np.asarray(a.covariates).tolist() == [[50.0]]


def test_categorical_covariate_refused(hospital):
    with pytest.raises(CohortError, match="covariate 'SEX' is categorical"):
        hospital.for_model(NeedsSex())


def test_dose_compartment_beyond_model_states(hospital):
    with pytest.raises(CohortError) as info:
        hospital.for_model(OneState())
    assert "line 7, column cmt, patient 'H-0107': CMT=2" in str(info.value)


def test_a_cohort_with_other_ids_reuses_the_compiled_programs(tmp_path):
    # Patient ids are not part of the arrays' pytree: a static field keys jit's cache, and
    # a cohort of the same shapes under other ids recompiled every program of a fit.
    table = pd.read_csv(HOSPITAL)
    id_column = table.columns[0]
    renamed = tmp_path / "renamed.csv"
    table.assign(**{id_column: "X-" + table[id_column].astype(str)}).to_csv(renamed, index=False)
    first, second = read_cohort(HOSPITAL), read_cohort(renamed)
    assert first.ids != second.ids
    total = jax.jit(lambda a: a.obs_value.sum() + a.covariates.sum())
    a, b = first.for_model(TwoOutputs()), second.for_model(TwoOutputs())
    assert float(total(a)) == float(total(b))
    assert total._cache_size() == 1
