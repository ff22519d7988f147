"""Logit-normal and fixed-effect parameters through the whole fit: sites, recovery, views.

The model (tests/scales_models.py) has a logit-normal bioavailability ``F`` with
between-patient variability and a fixed-effect absorption rate ``ka``; each simulated
patient gets an IV and an oral dose, so ``F`` is identified patient by patient.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from numpyro.infer import Predictive
from scales_models import DESIGN, TRUTH, IvOralF

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prepare import prepare_fit
from twin_uq.model.check import check_model
from twin_uq.validate.sbc import draw_population_from_prior

MODEL = IvOralF()


@pytest.fixture(scope="module")
def sim():
    return tq.simulate_cohort(
        MODEL, 24, DESIGN, seed=4, typical=TRUTH["typical"], omega=TRUTH["omega"],
        sigma_prop=TRUTH["sigma_prop"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def fit(sim):
    return tq.fit(MODEL, sim.cohort, chains=2, warmup=400, draws=400, seed=2, progress=False)


def _prior_draws(prepared, n):
    """``n`` draws of every site of the prior-only program (vectorised: compiled once)."""

    def program():
        cohort_program(prepared.structure.prior_only(), *prepared.program_args())

    return Predictive(program, num_samples=n)(jax.random.key(0))


def test_simulated_truth_has_fractions_and_one_shared_fixed_value(sim):
    theta = sim.truth.theta
    assert ((theta["F"] > 0) & (theta["F"] < 1)).all()
    assert theta["F"].std() > 0.05  # it varies between patients
    assert (theta["ka"] == TRUTH["typical"]["ka"]).all()
    assert sim.truth.omega["ka"] == 0.0


def test_simulating_with_an_omega_for_a_fixed_effect_is_refused():
    with pytest.raises(InputError, match=r"omega given for 'ka'.*fixed effect \(bsv=False\)"):
        tq.simulate_cohort(MODEL, 2, DESIGN, seed=0, omega={"ka": 0.3})


@pytest.mark.parametrize(
    "population",
    [{"centering": "auto"}, {"centering": 0.0}, {"centering": 0.5}, {"correlation": "lkj"}],
    ids=["auto", "non-centred", "half-centred", "lkj"],
)
def test_fixed_effect_has_no_sampled_dimension_and_prior_draws_are_fractions(sim, population):
    prepared = prepare_fit(PopulationModel(model=MODEL, **population), sim.cohort)
    init = prepared.init_values()
    assert init["omega"].shape == (3,) and init["z"].shape == (24, 3)
    draws = _prior_draws(prepared, 200)
    assert draws["omega"].shape == (200, 3)
    assert draws["z"].shape == (200, 24, 3)
    if "correlation" in population:
        assert draws["corr_chol"].shape == (200, 3, 3)
    theta = np.asarray(draws["theta"])
    # ka: the population value, the same for every patient (no covariates on it)
    assert np.all(theta[:, :, 0] == theta[:, :1, 0])
    F = theta[:, :, 3].reshape(-1)
    assert np.all((F > 0) & (F < 1))
    # logit(F) ~ Normal(logit(0.6), 1 + omega^2): its median is logit(0.6) (4800 draws,
    # 200 independent mu draws: SE of the median about 0.09 on the logit scale)
    logit = np.log(F) - np.log1p(-F)
    assert abs(np.median(logit) - np.log(0.6 / 0.4)) < 0.3


def test_an_omega_prior_for_a_fixed_effect_is_refused():
    with pytest.raises(InputError, match=r"'omega.ka': parameter 'ka' is a fixed effect"):
        PopulationModel(model=MODEL, priors={"omega.ka": 0.2})


def test_allometric_scaling_of_a_logit_parameter_is_refused():
    class Bad(IvOralF):
        name = "bad_allometric_F"
        covariates = ("WT",)
        covariate_defaults = {"WT": 70.0}  # noqa: RUF012
        allometric = (tq.Allometric("F", "WT", 0.75, 70.0),)

    with pytest.raises(Exception, match=r"allometric effect on 'F', a logit-normal parameter"):
        check_model(Bad())


def test_nuts_recovers_logit_F_and_the_fixed_ka(fit, sim):
    post = fit.posterior
    diag = fit.diagnostics()
    assert diag.divergences == 0
    assert "omega[ka]" not in diag.table.index and "omega[F]" in diag.table.index
    # the fixed effect: omega and eta exactly 0, theta the same for all patients
    assert np.all(post["omega"].sel(parameter="ka").values == 0.0)
    assert np.all(post["eta"].sel(parameter="ka").values == 0.0)
    ka = post["theta"].sel(parameter="ka").values  # (chain, draw, patient)
    assert np.all(ka == ka[..., :1])
    theta_F = post["theta"].sel(parameter="F").values
    assert np.all((theta_F > 0) & (theta_F < 1))
    # 7 population quantities with known truth. Each lies in its 90 % interval with
    # probability 0.9: at least 5 of 7 (probability 0.97 if independent) and all 7 in
    # their 99.5 % intervals.
    checks = [("typical", p, v) for p, v in TRUTH["typical"].items()]
    checks += [("omega", p, v) for p, v in TRUTH["omega"].items() if p != "ka"]
    inside90 = 0
    for var, par, true in checks:
        x = post[var].sel(parameter=par).values.reshape(-1)
        lo, hi = np.quantile(x, [0.05, 0.95])
        inside90 += lo <= true <= hi
        lo, hi = np.quantile(x, [0.0025, 0.9975])
        assert lo <= true <= hi, (var, par, true, lo, hi)
    assert inside90 >= 5
    # individual F: the patients' true values inside their 90 % intervals at about 90 %
    q = np.quantile(theta_F.reshape(-1, theta_F.shape[-1]), [0.05, 0.95], axis=0)
    true_F = sim.truth.theta.loc[list(fit.patient_ids), "F"].to_numpy()
    covered = np.mean((q[0] <= true_F) & (true_F <= q[1]))
    assert covered >= 0.7  # 24 patients: P(Binomial(24, 0.9) < 17) ≈ 0.01


def test_summary_says_logit_and_fixed(fit):
    summ = fit.population_summary()
    F, ka, CL = summ.loc["F"], summ.loc["ka"], summ.loc["CL"]
    assert F["scale"] == "logit" and np.isnan(F["cv_percent"]) and F["omega"] > 0
    assert 0 < F["lower"] < F["median"] < F["upper"] < 1
    assert ka["variability"].startswith("fixed") and np.isnan(ka["omega"])
    assert np.isnan(ka["cv_percent"])
    assert CL["scale"] == "log" and CL["cv_percent"] > 0
    assert fit.idata.attrs["fixed_parameters"] == '["ka"]'


def test_new_patient_and_twin_update_keep_fractions(fit, sim):
    new = fit.new_patient({}, [tq.Bolus(0.0, 200.0, 1)])
    theta = np.asarray(new.theta)
    assert np.all((theta[:, 3] > 0) & (theta[:, 3] < 1))
    typical_ka = fit.posterior["typical"].sel(parameter="ka").values.reshape(-1)
    np.testing.assert_allclose(theta[:, 0], typical_ka, rtol=1e-12)
    twin = fit.twin(fit.patient_ids[0])
    rows = sim.table[sim.table["id"] == fit.patient_ids[0]].tail(1)[["time", "dv"]].copy()
    rows["time"] = 60.0
    updated = twin.update(rows, chains=1, warmup=150, draws=150, seed=0)
    th = np.asarray(updated.theta)
    assert np.all(np.isfinite(th)) and np.all((th[:, 3] > 0) & (th[:, 3] < 1))


def test_sbc_prior_draws_respect_scales():
    rng = np.random.default_rng(0)
    draws = [draw_population_from_prior(MODEL, rng) for _ in range(200)]
    F = np.array([d["typical"]["F"] for d in draws])
    assert np.all((F > 0) & (F < 1))
    assert all(d["omega"]["ka"] == 0.0 for d in draws)


def test_trust_and_report_read_the_scales(fit):
    from twin_uq.report.cohort import _population
    from twin_uq.trust import TrustThresholds
    from twin_uq.trust.metrics import information_metrics

    _, contraction = information_metrics(fit, TrustThresholds())
    assert contraction["ka"].isna().all()  # a fixed effect has no individual contraction
    assert contraction["F"].notna().all() and contraction["F"].median() > 0.3
    params = {row["quantity"]: row for row in _population(fit, 0.9)[0]}
    assert params["F"]["cv"].endswith("(logit scale)")
    assert params["ka"]["cv"].startswith("fixed")
    assert params["CL"]["cv"][0].isdigit()


def test_saved_fit_reloads_with_its_scales(fit, tmp_path):
    path = fit.save(tmp_path / "scales.nc")
    back = tq.load_posterior(path, model=MODEL)
    assert back.idata.attrs["parameter_scales"] == fit.idata.attrs["parameter_scales"]
    np.testing.assert_array_equal(back.posterior["typical"].values, fit.posterior["typical"].values)
    a = back.new_patient({}, [tq.Bolus(0.0, 200.0, 1)], seed=3).theta
    b = fit.new_patient({}, [tq.Bolus(0.0, 200.0, 1)], seed=3).theta
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert back.prepared.init_values()["z"].shape == (24, 3)


@pytest.mark.slow  # 43 s in CI; the NUTS tests above cover scales by default
def test_laplace_keeps_fractions_and_the_fixed_effect(sim):
    post = tq.fit(MODEL, sim.cohort, method="laplace", draws=200, seed=0, progress=False)
    theta = post.posterior["theta"].values
    assert np.all((theta[..., 3] > 0) & (theta[..., 3] < 1))
    assert np.all(theta[..., 0] == theta[..., :1, 0])
    assert np.all(post.posterior["omega"].sel(parameter="ka").values == 0.0)
