"""Fits with a covariate that changes within a patient: the log density by hand.

One-compartment IV bolus (100 mg at 0 h) with allometric CL (WT^0.75) and V (WT^1), whose
weight changes at 12 h for one patient: the likelihood site of the NumPyro program must
equal the additive-error log density of the observations around the piecewise
exponential written out here, with each segment's parameters computed from its weight.
"""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from scipy import stats

import twin_uq as tq
from models.one_compartment_iv import OneCompartmentIV
from twin_uq.inference.numpyro_model import cohort_program
from twin_uq.inference.prepare import prepare_fit

OBS = [1.0, 6.0, 12.0, 14.0, 20.0]


def _cohort():
    rows = []
    # (id, WT at 0, WT from 12 on): P1 grows (a weight recorded at 12), P2 constant.
    for pid, w0, w1 in (("1", 60.0, 80.0), ("2", 70.0, 70.0), ("3", 50.0, 50.0)):
        rows.append(dict(ID=pid, TIME=0.0, AMT=100.0, EVID=1, DV=np.nan, WT=w0))
        for t in OBS:
            rows.append(dict(ID=pid, TIME=t, AMT=0.0, EVID=0, DV=2.0 - 0.05 * t, WT=np.nan))
        rows.append(dict(ID=pid, TIME=12.0, AMT=0.0, EVID=2, DV=np.nan, WT=w1))
    frame = pd.DataFrame(rows).sort_values(["ID", "TIME", "EVID"], kind="stable")
    return tq.read_cohort(frame.reset_index(drop=True)), {
        "1": (60, 80),
        "2": (70, 70),
        "3": (50, 50),
    }


def _by_hand(mu, omega, z, sigma, weights, cohort):
    total = 0.0
    for i, pid in enumerate(cohort.ids):
        w0, w1 = weights[pid]
        base = np.exp(np.asarray(mu) + np.asarray(omega) * np.asarray(z[i]))  # CL, V at 70 kg
        cl0, v0 = base[0] * (w0 / 70) ** 0.75, base[1] * (w0 / 70)
        cl1, v1 = base[0] * (w1 / 70) ** 0.75, base[1] * (w1 / 70)
        t = np.asarray(OBS)
        a12 = 100.0 * np.exp(-cl0 / v0 * 12.0)
        amount = np.where(
            t < 12.0, 100.0 * np.exp(-cl0 / v0 * t), a12 * np.exp(-cl1 / v1 * (t - 12.0))
        )
        conc = amount / np.where(t < 12.0, v0, v1)
        total += stats.norm.logpdf(2.0 - 0.05 * t, conc, sigma).sum()
    return total


def test_likelihood_uses_the_weight_in_force_on_each_segment():
    cohort, weights = _cohort()
    assert cohort.time_varying == ("WT",)
    spec = tq.PopulationModel(
        OneCompartmentIV(), centering=0.0, error={"concentration": "additive"}, prior_check="off"
    )
    prepared = prepare_fit(spec, cohort)
    np.testing.assert_array_equal(
        np.asarray(prepared.data.arrays.change_time), [[0.0, 12.0], [0.0, np.inf], [0.0, np.inf]]
    )
    mu = jnp.log(jnp.array([4.0, 45.0]))
    omega = jnp.array([0.3, 0.2])
    z = jnp.array([[0.5, -0.4], [-1.0, 0.2], [0.3, 0.7]])
    point = {"mu": mu, "omega": omega, "z": z, "sigma_add": jnp.array([0.1])}
    with handlers.trace() as tr, handlers.substitute(data=point):
        cohort_program(prepared.structure, *prepared.program_args())
    loglik = float(tr["loglik"]["fn"].log_factor)
    expected = _by_hand(mu, omega, z, 0.1, weights, cohort)
    assert loglik == pytest.approx(expected, rel=1e-12)
    # The recorded theta is the baseline (first weight), as for constant covariates.
    theta = np.asarray(tr["theta"]["value"])
    np.testing.assert_allclose(
        theta[0],
        np.exp(np.asarray(mu) + np.asarray(omega) * np.asarray(z[0]))
        * [(60 / 70) ** 0.75, 60 / 70],
    )


def test_pymc_backend_refuses_time_varying_covariates():
    cohort, _ = _cohort()
    spec = tq.PopulationModel(OneCompartmentIV(), prior_check="off")
    prepared = prepare_fit(spec, cohort)
    with pytest.raises(tq.errors.InputError, match="NumPyro"):
        tq.PyMC().run(prepared, None, seed=0, progress=False)


def test_parameter_path_of_a_patient_follows_its_weight():
    from twin_uq.inference.population import build_covariate_design
    from twin_uq.posterior.patient import parameter_path

    cohort, _ = _cohort()
    model = OneCompartmentIV()
    spec = tq.PopulationModel(model, covariate_effects={"CL": ["WT"]}, prior_check="off")
    design = build_covariate_design(spec, cohort)
    np.testing.assert_array_equal(design.change_time, [[0, 12], [0, np.inf], [0, np.inf]])
    theta = np.array([[4.0, 40.0], [6.0, 60.0]])  # two draws of patient 1 (baseline 60 kg)
    beta = np.array([[0.0], [0.2]])
    change, path, covariates = parameter_path(model, design, 0, theta, beta)
    np.testing.assert_array_equal(change, [0.0, 12.0])
    assert covariates["WT"].tolist() == [60.0, 80.0]
    # Allometry and the standardised effect of WT (centre/scale of the baseline weights).
    dx = (80.0 - 60.0) / design.scale[0]
    expected = theta * [(80 / 60) ** 0.75, 80 / 60] * np.exp(np.outer(beta[:, 0] * dx, [1, 0]))
    np.testing.assert_allclose(path[:, 0], theta, rtol=1e-12)
    np.testing.assert_allclose(path[:, 1], expected, rtol=1e-12)
    assert parameter_path(model, design, 1, theta, beta) == (None, None, None)


def test_a_model_covariate_read_once_is_announced():
    from twin_uq.data import CohortWarning
    from twin_uq.inference.population import build_covariate_design
    from twin_uq.inference.prepare import _warn_baseline_only

    class ReadsWeight(OneCompartmentIV):
        name = "reads_weight"
        allometric = ()  # WT only in the model's own equations

    cohort, _ = _cohort()
    spec = tq.PopulationModel(ReadsWeight(), prior_check="off")
    with pytest.warns(CohortWarning, match=r"\['WT'\].*first"):
        _warn_baseline_only(spec, cohort, build_covariate_design(spec, cohort))
    spec = tq.PopulationModel(OneCompartmentIV(), prior_check="off")  # allometric: follows
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CohortWarning)
        _warn_baseline_only(spec, cohort, build_covariate_design(spec, cohort))
