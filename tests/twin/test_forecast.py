"""Forecasts and risks of a twin conditioned on its last reading, against Gaussian algebra.

A twin whose draws all share one parameter vector isolates the residual: its forecast at
lead ``h`` must be Normal with mean ``f(t0 + h) + rho a r0`` and variance ``a² (1 - rho²)``
(additive error ``a``, ``rho = exp(-h / tau)``, ``r0`` the last standardised residual),
and independent residuals must give the marginal ``Normal(f, a²)``.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.posterior.patient import PatientPosterior
from twin_uq.posterior.population import PopulationDraws
from twin_uq.simulate.schedule import Schedule
from twin_uq.twin import PosteriorTwin

S, A, TAU = 2000, 0.05, 2.0
CL, V, DOSE = 5.0, 50.0, 100.0


def _f(t):
    return DOSE / V * np.exp(-CL / V * np.asarray(t))


def _twin(tau):
    model = tq.load_model("one_compartment_iv")
    obs = pd.DataFrame(
        {
            "time": [1.0, 2.0, 4.0],
            "output": ["concentration"] * 3,
            "value": [_f(1.0), _f(2.0), _f(4.0) + 0.06],  # last reading 1.2 SD high
            "censored": [False] * 3,
            "lloq": [-np.inf] * 3,
        }
    )
    add, prop = np.full((S, 1), A), np.zeros((S, 1))
    nu = np.full(S, 1e6)
    pop = PopulationDraws(
        mean=np.zeros((S, 2)), chol=np.broadcast_to(np.eye(2), (S, 2, 2)), add=add, prop=prop, nu=nu
    )
    posterior = PatientPosterior(
        patient_id="P1",
        model=model,
        settings=model.solver,
        theta=np.tile([CL, V], (S, 1)),
        add=add,
        prop=prop,
        nu=nu,
        n_chains=4,
        error_code=np.array([0]),  # additive
        covariates=np.array([70.0]),
        baseline={},
        schedule=Schedule.build([tq.Bolus(0.0, DOSE, 1)], []),
        observations=obs,
        table=pd.DataFrame(),
        population=pop,
        tau=None if tau is None else np.full((S, 1), tau),
    )
    return PosteriorTwin(posterior)


def test_forecast_and_risk_follow_gaussian_conditioning():
    h = np.array([0.5, 2.0, 6.0])
    r0 = 0.06 / A
    twin = _twin(TAU)
    fc = twin.forecast(h, level=0.9, seed=3)
    assert fc.correlated and fc.origin == 4.0 and fc.draws.shape == (S, 3)
    rho = np.exp(-h / TAU)
    mean = _f(4.0 + h) + rho * A * r0
    sd = A * np.sqrt(1 - rho**2)
    # Monte Carlo tolerances: 5 SE of a mean and of an SD from S draws
    assert np.all(np.abs(fc.draws.mean(0) - mean) < 5 * sd / np.sqrt(S))
    np.testing.assert_allclose(fc.draws.std(0), sd, rtol=5 / np.sqrt(2 * S))
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(fc.upper - fc.lower, 2 * z * sd, rtol=0.08)
    assert "Trust: not assessed" in str(fc)
    # risk at a given time: P(y < threshold) = Phi((threshold - mean) / sd)
    thr = float(mean[1])  # the conditional mean at +2: probability 1/2
    risk = twin.risk(thr, below=True, horizon=2.0, times=[2.0], seed=4)
    p_at = risk.at_times["probability"].iloc[0]
    assert abs(p_at - 0.5) < 5 * 0.5 / np.sqrt(S * risk.n_paths)
    # crossing at any time within the horizon is at least as likely as at its end
    assert risk.probability >= p_at and 0 <= risk.lower <= risk.probability <= risk.upper <= 1
    # independent residuals: the marginal, whatever the last reading
    indep = _twin(None).forecast(h, seed=3)
    assert not indep.correlated and any("independent" in c for c in indep.caveats)
    np.testing.assert_allclose(indep.draws.mean(0), _f(4.0 + h), atol=5 * A / np.sqrt(S))
    np.testing.assert_allclose(indep.draws.std(0), A, rtol=5 / np.sqrt(2 * S))
    with pytest.raises(InputError, match="horizons must be positive"):
        twin.forecast([0.0, 1.0])
    with pytest.raises(InputError, match="origin and value go together"):
        twin.forecast([1.0], origin=5.0)


def test_forecasts_from_nearby_origins_share_one_compiled_solve():
    # A fixed-step twin's horizon grows with each forecast origin; rounded to a step
    # bucket, origins a few minutes apart reuse the compiled prediction instead of
    # compiling one each (a CGM stream forecasts every 5 minutes).
    from twin_uq.twin.engine import predict_draws

    base = _twin(None)
    rk4 = tq.SolverSettings("rk4", fixed_step=0.05)
    twin = PosteriorTwin(dataclasses.replace(base.posterior, settings=rk4))
    twin.forecast([0.5, 1.0], origin=6.0, value=float(_f(6.0)), draws=50)
    compiled = predict_draws._cache_size()
    for origin in (6.1, 6.25, 6.4):
        fc = twin.forecast([0.5, 1.0], origin=origin, value=float(_f(origin)), draws=50)
        np.testing.assert_allclose(np.median(fc.draws, 0), _f(origin + fc.horizons), rtol=0.02)
    assert predict_draws._cache_size() == compiled
