"""Heart twins built from chosen parameter draws, without a fit (tests of their questions).

``circulation_twin(theta)`` is a ``windkessel3`` twin of one patient recorded over two
beats of a half-sine inflow (70 mL at 75 beats/min); ``restitution_twin(theta)`` a
``mitchell_schaeffer_restitution`` twin measured at four cycle lengths. ``theta`` is
``(S, K)`` in the model's parameter order; the draws count as ``n_chains`` chains.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

import twin_uq as tq
from twin_uq.posterior.patient import PatientPosterior
from twin_uq.posterior.population import PopulationDraws
from twin_uq.simulate.schedule import Schedule
from twin_uq.twin import PosteriorTwin

PERIOD = 0.8  # s: 75 beats/min
STROKE_VOLUME = 70.0  # mL
P0 = 80.0  # mmHg


def _twin(model, theta, n_chains, schedule, observations, covariates, add) -> PosteriorTwin:
    theta = np.asarray(theta, dtype=float)
    S, K = theta.shape
    add = np.full((S, 1), add)
    prop, nu = np.zeros((S, 1)), np.full(S, 1e6)
    pop = PopulationDraws(
        mean=np.log(theta).mean(0) + np.zeros((S, K)),
        chol=np.broadcast_to(0.3 * np.eye(K), (S, K, K)),
        add=add,
        prop=prop,
        nu=nu,
    )
    posterior = PatientPosterior(
        patient_id="H1",
        model=model,
        settings=model.solver,
        theta=theta,
        add=add,
        prop=prop,
        nu=nu,
        n_chains=n_chains,
        error_code=np.array([0]),  # additive
        covariates=np.asarray(covariates, dtype=float),
        baseline={},
        schedule=schedule,
        observations=observations,
        table=pd.DataFrame(),
        population=pop,
    )
    return PosteriorTwin(posterior)


def _observations(times, output, values) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame(
        {
            "time": np.asarray(times, float),
            "output": [output] * n,
            "value": np.asarray(values, float),
            "censored": [False] * n,
            "lloq": [-np.inf] * n,
        }
    )


def inflow(n_beats: int) -> tq.Signal:
    """The half-sine inflow of the circulation twin over ``n_beats`` beats (every 5 ms)."""
    module = sys.modules[type(tq.load_model("windkessel3")).__module__]
    return module.half_sine_inflow(STROKE_VOLUME, 60.0 / PERIOD, 0.3, n_beats, 0.005)


def circulation_twin(theta, n_chains: int = 1) -> PosteriorTwin:
    """A ``windkessel3`` twin with draws ``theta`` (``(S, 3)``: R, C, Z), P0 = 80 mmHg."""
    model = tq.load_model("windkessel3")
    schedule = Schedule.build(signals=[inflow(2)], signal_names=model.signals)
    t = np.arange(0.0, 2 * PERIOD, 0.05)
    obs = _observations(t, "pressure", np.full(t.size, 90.0))
    return _twin(model, theta, n_chains, schedule, obs, [P0], 2.0)


def restitution_twin(theta, n_chains: int = 1, noise_sd: float = 4.0) -> PosteriorTwin:
    """A restitution twin with draws ``theta`` (``(S, 3)``: apd_slow, shortening, h_min).

    ``noise_sd``: the additive residual SD (ms) of every draw.
    """
    model = tq.load_model("mitchell_schaeffer_restitution")
    bcl = [460.0, 600.0, 800.0, 1000.0]
    obs = _observations(bcl, "apd90", [220.0, 250.0, 280.0, 300.0])
    covariates = [model.covariate_defaults[c] for c in model.covariates]
    return _twin(model, theta, n_chains, Schedule.build([], []), obs, covariates, noise_sd)
