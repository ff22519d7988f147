"""A CGM twin built without a fit: test data for streaming, forecasts and insulin policies.

One ``glucose_meal`` patient on a 1 U/h basal with a 50 g meal and 5 U at 60 min, read
every 5 minutes: the model at its typical parameters plus an AR(1) deviation (correlation
time ``tau`` min, SD ``sd`` mg/dL). :func:`cgm_twin` makes the twin of the readings up to
``fit_end`` with ``population_draws`` population draws around the typical parameters (log
SD 0.05 between draws, 0.2 between patients) and the true residual model (combined error,
OU with the true ``tau``): the shapes and arithmetic of a real fit's twin, in a second.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

import twin_uq as tq
from twin_uq.inference.residual import ERROR_CODES
from twin_uq.posterior.patient import PatientPosterior, observations_frame
from twin_uq.posterior.population import PopulationDraws
from twin_uq.twin import PosteriorTwin

__all__ = ["cgm_trace", "cgm_twin"]


def _schedule():
    return tq.Schedule.build(
        [tq.Bolus(60.0, 50.0, 1), tq.Bolus(60.0, 5.0, 2)], [tq.Infusion(0.0, 1 / 60, 5000.0, 2)]
    )


def cgm_trace(
    end: float = 300.0, tau: float = 45.0, sd: float = 8.0, seed: int = 3
) -> pd.DataFrame:
    """Readings every 5 min over ``(0, end]``: columns ``time`` (min), ``glucose`` (mg/dL)."""
    model = tq.load_model("glucose_meal")
    theta = {p.name: p.typical for p in model.parameters}
    t = np.arange(5.0, end + 1e-9, 5.0)
    traj = tq.simulate(model, theta, _schedule(), t, covariates={"WT": 70.0, "BASAL": 1.0})
    rng = np.random.default_rng(seed)
    rho = np.exp(-5.0 / tau)
    e = np.empty(t.size)
    e[0] = rng.standard_normal()
    for j in range(1, t.size):
        e[j] = rho * e[j - 1] + np.sqrt(1 - rho**2) * rng.standard_normal()
    return pd.DataFrame({"time": t, "glucose": np.asarray(traj.outputs)[:, 0] + sd * e})


def cgm_twin(
    trace: pd.DataFrame,
    fit_end: float = 240.0,
    population_draws: int = 64,
    tau: float = 45.0,
    sd: float = 8.0,
    seed: int = 0,
) -> PosteriorTwin:
    """The twin of patient ``"P1"`` knowing the readings of ``trace`` up to ``fit_end``."""
    model = tq.load_model("glucose_meal")
    seen = trace[trace["time"] <= fit_end]
    doses = pd.DataFrame(
        {"time": [0.0, 60.0, 60.0], "amt": [5000.0 / 60, 50.0, 5.0], "rate": [1 / 60, 0, 0],
         "cmt": [2, 1, 2], "evid": [1, 1, 1]}
    )  # fmt: skip
    obs = pd.DataFrame({"time": seen["time"], "dv": seen["glucose"], "evid": 0})
    frame = pd.concat([doses, obs]).sort_values("time", kind="stable")
    frame = frame.assign(id="P1", WT=70.0, BASAL=1.0, output="glucose")
    with warnings.catch_warnings():  # basal insulin into the depot is this design's intent
        warnings.simplefilter("ignore")
        cohort = tq.read_cohort(frame.reset_index(drop=True), time_unit="min")
    arrays = cohort.for_model(model)
    rng = np.random.default_rng(seed)
    S = int(population_draws)
    typical = np.log([p.typical for p in model.parameters])
    K = typical.size
    mean = typical + 0.05 * rng.standard_normal((S, K))
    add, prop = np.full((S, 1), sd), np.full((S, 1), 0.02)
    nu, taus = np.full(S, 1e6), np.full((S, 1), tau)
    pop = PopulationDraws(
        mean=mean, chol=np.broadcast_to(0.2 * np.eye(K), (S, K, K)), add=add, prop=prop,
        nu=nu, tau=taus,
    )  # fmt: skip
    posterior = PatientPosterior(
        patient_id="P1",
        model=model,
        settings=model.solver,
        theta=np.exp(mean + 0.05 * rng.standard_normal((S, K))),
        add=add,
        prop=prop,
        nu=nu,
        n_chains=1,
        error_code=np.array([ERROR_CODES["combined"]]),
        covariates=np.array([70.0, 1.0]),
        baseline={"WT": 70.0, "BASAL": 1.0},
        schedule=cohort.schedule("P1", signals=model.signals),
        observations=observations_frame(arrays, 0, model),
        table=cohort.table.copy(),
        population=pop,
        tau=taus,
    )
    return PosteriorTwin(posterior)
