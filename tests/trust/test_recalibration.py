"""The trust score's recalibration: logistic fit against known truth, the stored fit, its domain."""

import math

import numpy as np
import xarray as xr

from twin_uq.trust.prediction import _calibrated_score
from twin_uq.trust.recalibration import (
    Recalibration,
    fit_logistic,
    load_recalibration,
    logit,
    recalibration_inputs,
)


def test_fit_logistic_recovers_known_coefficients():
    rng = np.random.default_rng(7)
    n, beta = 20000, np.array([-1.0, 0.8, -0.5])
    X = np.column_stack([np.ones(n), rng.standard_normal(n), rng.uniform(0, 2, n)])
    y = rng.random(n) < 1 / (1 + np.exp(-(X @ beta)))
    b = fit_logistic(X, y)
    mu = 1 / (1 + np.exp(-(X @ b)))
    se = np.sqrt(np.diag(np.linalg.inv(X.T @ (X * (mu * (1 - mu))[:, None]))))
    assert np.all(np.abs(b - beta) < 4 * se), (b, se)


def test_apply_is_the_stated_formula():
    rec = Recalibration(-1.0, {"logit:p": 0.5, "x": 2.0}, eps=1e-3)
    z = -1.0 + 0.5 * math.log(0.2 / 0.8) + 2.0 * 0.1
    z0 = -1.0 + 0.5 * math.log(1e-3 / (1 - 1e-3))  # p = 0 is clipped to eps
    got = rec.apply({"p": np.array([0.2, 0.0]), "x": np.array([0.1, 0.0])})
    np.testing.assert_allclose(got, [1 / (1 + math.exp(-z)), 1 / (1 + math.exp(-z0))], rtol=1e-12)
    assert rec.inputs == ["p", "x"]
    assert Recalibration.from_dict(rec.to_dict()) == rec
    assert np.isnan(logit(np.nan))


def test_domain():
    rec = Recalibration(0.0, {"logit:p": 1.0}, models=("one_compartment_oral",))
    assert rec.covers("one_compartment_oral", approximate=True)
    assert not rec.covers("one_compartment_oral", approximate=False)  # NUTS: outside
    assert not rec.covers("glucose_meal", approximate=True)


def test_stored_recalibration_has_its_provenance_and_is_used_only_in_domain():
    rec = load_recalibration()
    for key in ("study", "commit", "date", "fitted_on", "tested_on", "outcome"):
        assert rec.provenance.get(key), key
    assert rec.models and rec.approximate_only
    metrics = {"p_miss_patient": 0.3, "contraction_median": 0.4, "contraction_CL": 0.9,
               "contraction_min": 0.1, "n_obs": 1, "span_fraction": 0.2,
               "covariate_max_abs_z": 1.0, "ppc_pvalue": 0.5, "ppc_extreme": 0}  # fmt: skip
    inside = xr.Dataset(attrs={"approximate": 1, "model_name": rec.models[0]})
    m = dict(metrics)
    _calibrated_score(inside, 0.1, m)
    want = rec.apply(recalibration_inputs({**metrics, "p_miss": 0.3}, 0.1))
    assert m["p_miss_calibrated"] == float(want[0])
    for attrs in ({"approximate": 0, "model_name": rec.models[0]},
                  {"approximate": 1, "model_name": "not_in_the_study"}):  # fmt: skip
        m = dict(metrics)
        _calibrated_score(xr.Dataset(attrs=attrs), 0.1, m)
        assert "p_miss_calibrated" not in m


def test_inputs_from_metrics():
    v = recalibration_inputs(
        {"p_miss": 0.2, "contraction_median": -3.0, "contraction_min": -3.0,
         "contraction_V": 0.2, "contraction_CL": 0.9, "n_obs": 1, "ppc_pvalue": 0.001,
         "ppc_extreme": 2},
        0.05,
    )  # fmt: skip
    assert v["contraction"] == -1.0 and v["contraction_max"] == 0.9
    assert v["few_obs"] == 1.0 and v["ppc_flag"] == 2.0
    assert np.isnan(v["span_fraction"])  # not given: NaN, never a silent default
