"""The Dalla Man (2007) type 1 diabetes simulator used as test data (twin_uq.testing)."""

import warnings

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.data.model_checks import DepotInfusionWarning
from twin_uq.testing.glucose_simulator import (
    AGE_GROUPS,
    NORMAL,
    PMOL_PER_UNIT,
    basal_state,
    dalla_man_rhs,
    matched_therapy,
    sample_virtual_patients,
    simulate_person,
    simulate_t1d_cohort,
)

DAY = np.arange(0.0, 1441.0, 5.0)


@pytest.fixture(scope="module")
def adult():
    """A typical adult: Table 1 values, 75 kg, 1.0 U/h basal, well-matched therapy."""
    p = dict(NORMAL, BW=75.0, basal_u_per_h=1.0)
    _, p = basal_state(p, p["basal_u_per_h"] * PMOL_PER_UNIT / 60.0 / p["BW"])
    return p


def _run(p, meals=(), boluses=(), **kw):
    return simulate_person(p, list(meals), DAY, boluses=list(boluses), horizon=1440.0, **kw)


def test_basal_state_is_a_steady_state_at_basal_glucose(adult):
    for group in AGE_GROUPS:
        person = sample_virtual_patients({group: 3}, seed=4).iloc[0].to_dict()
        basal = person["basal_u_per_h"] * PMOL_PER_UNIT / 60.0 / person["BW"]
        x, p = basal_state(person, basal)
        rates = dalla_man_rhs(0.0, x, p, basal, 0.0)
        np.testing.assert_allclose(rates, 0.0, atol=1e-12 * np.abs(x).max())
        assert x[0] / p["VG"] == pytest.approx(person["Gb"], rel=1e-12)


def test_fasting_on_basal_insulin_stays_at_basal_glucose(adult):
    out = _run(adult)
    g = out["states"][:, 0] / adult["VG"]
    np.testing.assert_allclose(g, adult["Gb"], rtol=1e-6)


def test_meal_glucose_all_appears_in_plasma(adult):
    # Mass balance of the gut: f times the carbohydrate reaches plasma (most of it within
    # a day; the slow tail of gastric emptying leaves < 0.5 %).
    out = _run(adult, meals=[(60.0, 60.0)])
    s = out["states"]
    ra = adult["f"] * adult["kabs"] * s[:, 8] / adult["BW"]  # mg/kg/min on the 1-min grid
    appeared = np.trapezoid(ra, out["grid"]) * adult["BW"]
    assert appeared == pytest.approx(adult["f"] * 60_000.0, rel=5e-3)


def test_insulin_bolus_area_matches_linear_kinetics(adult):
    # Insulin kinetics are linear: the extra plasma insulin area of a bolus of B pmol/kg is
    # B / (VI * (m2 + m4 - m1 m2 / (m1 + m30))) whatever the absorption rates.
    units = 4.0
    out = _run(adult, boluses=[(30.0, units)])
    insulin = out["states"][:, 3] / adult["VI"]
    area = np.trapezoid(insulin - adult["Ib"], out["grid"])
    c = adult["m2"] + adult["m4"] - adult["m1"] * adult["m2"] / (adult["m1"] + adult["m30"])
    expected = units * PMOL_PER_UNIT / adult["BW"] / (adult["VI"] * c)
    # ~1 % of the bolus is still under the skin after 23.5 h (ka2 0.018/min is slow).
    assert area == pytest.approx(expected, rel=0.02)


def test_meal_raises_glucose_and_a_matched_bolus_brings_it_back(adult):
    cr, cf = matched_therapy(adult, adult["BW"])
    assert 4.0 < cr < 25.0 and 10.0 < cf < 120.0  # the clinical range of adults
    g0 = adult["Gb"]
    no_bolus = _run(adult, meals=[(60.0, 60.0)])["states"][:, 0] / adult["VG"]
    bolus = _run(adult, meals=[(60.0, 60.0)], carb_ratio=cr)["states"][:, 0] / adult["VG"]
    assert no_bolus.max() > g0 + 80.0
    assert bolus.max() > g0 + 30.0  # the bolus acts later than the meal
    assert bolus.max() < no_bolus.max() - 30.0
    six_h = 60 + 360
    assert abs(bolus[six_h] - g0) < 25.0  # back near fasting glucose within six hours
    assert no_bolus[six_h] > g0 + 80.0  # without the bolus it is still high


def test_insulin_bolus_lowers_glucose(adult):
    g = _run(adult, boluses=[(60.0, 3.0)])["states"][:, 0] / adult["VG"]
    assert np.all(g[:61] == pytest.approx(adult["Gb"], rel=1e-6))
    assert g.min() < adult["Gb"] - 30.0
    assert 60 + 60 < np.argmin(g) < 60 + 400  # subcutaneous insulin acts with a delay


@pytest.fixture(scope="module")
def cgm_cohort():
    return simulate_t1d_cohort(1, sampling="cgm", seed=3)


def test_cgm_table_reads_and_fits_glucose_meal_contract(cgm_cohort):
    table = cgm_cohort.table
    cohort = tq.read_cohort(table, time_unit="min")
    model = tq.load_model("glucose_meal")
    # Basal insulin is an infusion into the subcutaneous depot, as glucose_meal asks and
    # declares (infusion_compartments): the depot-infusion check must stay quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DepotInfusionWarning)
        arrays = cohort.for_model(model)
    assert np.asarray(arrays.obs_mask).sum() == 3 * 288
    assert set(cohort.covariates.columns) >= {"WT", "BASAL", "AGE_GROUP"}
    doses = table[table.EVID == 1]
    assert set(doses.CMT) == {1, 2}
    assert (doses.CMT == 1).sum() == 3 * 3  # three meals per person
    basal = doses[doses.RATE > 0]
    np.testing.assert_allclose(basal.RATE.to_numpy(), basal.BASAL.to_numpy() / 60.0)
    obs = table[table.EVID == 0]
    assert obs.DV.between(20.0, 600.0).all()


def test_cgm_error_is_autocorrelated_with_the_stated_sd(cgm_cohort):
    obs = cgm_cohort.table[cgm_cohort.table.EVID == 0]
    truth = cgm_cohort.observed_truth
    np.testing.assert_array_equal(obs.TIME.to_numpy(), truth.TIME.to_numpy())
    e = (obs.DV.to_numpy() - truth.f.to_numpy()).reshape(3, -1)
    lag1 = np.mean([np.corrcoef(r[:-1], r[1:])[0, 1] for r in e])
    # 864 AR(1) residuals: SE of the lag-1 correlation ~ sqrt((1 - 0.49)/864) = 0.024.
    assert lag1 == pytest.approx(0.7, abs=0.1)
    assert e.std() == pytest.approx(8.0, abs=1.5)  # SE ~0.33 with 864 AR(1) values
    # The sensor lags plasma glucose: it differs from it while glucose moves.
    tr = cgm_cohort.truth
    assert np.abs(tr.Gs - tr.G).max() > 5.0


def test_fingerstick_design_observes_plasma_glucose():
    c = simulate_t1d_cohort({"adult": 1}, sampling="fingerstick", seed=5)
    obs = c.table[c.table.EVID == 0]
    assert obs.TIME.tolist() == [55.0, 180.0, 355.0, 715.0, 840.0, 960.0]
    at = c.truth.set_index("TIME").loc[obs.TIME, "G"].to_numpy()
    np.testing.assert_allclose(c.observed_truth.f.to_numpy(), at, rtol=1e-6)
    tq.read_cohort(c.table, time_unit="min")


def test_children_have_more_variable_insulin_action():
    people = sample_virtual_patients({"child": 300, "adult": 300}, seed=0)
    sd = people.groupby("group")["Vmx"].apply(lambda v: np.log(v).std())
    assert sd["child"] > sd["adult"] + 0.1  # 0.7 against 0.45 by design; SE ~0.03 each
    assert people.groupby("group")["BW"].median()["child"] < 45.0
