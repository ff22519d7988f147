"""Closed-loop insulin policies on a twin's draws, against open-loop solves and monotonicity.

Twins built by hand (no fit): ``glucose_meal`` draws at chosen parameters, the patient on
a basal infusion of 1 U/h with one reading at 60 min.
"""

import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.posterior.patient import PatientPosterior
from twin_uq.posterior.population import PopulationDraws
from twin_uq.simulate.schedule import Schedule
from twin_uq.twin import PosteriorTwin, policy as policy_module
from twin_uq.twin.policy import BasalBolus, ForecastPID

BASAL = 1.0  # U/h


def _twin(theta: np.ndarray, n_chains: int = 1) -> PosteriorTwin:
    model = tq.load_model("glucose_meal")
    S, K = theta.shape
    obs = pd.DataFrame(
        {"time": [60.0], "output": ["glucose"], "value": [150.0], "censored": [False],
         "lloq": [-np.inf]}
    )  # fmt: skip
    add, prop, nu = np.full((S, 1), 5.0), np.full((S, 1), 0.05), np.full(S, 1e6)
    pop = PopulationDraws(
        mean=np.log(theta), chol=np.broadcast_to(0.1 * np.eye(K), (S, K, K)), add=add,
        prop=prop, nu=nu,
    )  # fmt: skip
    posterior = PatientPosterior(
        patient_id="P1",
        model=model,
        settings=model.solver,
        theta=theta,
        add=add,
        prop=prop,
        nu=nu,
        n_chains=n_chains,
        error_code=np.array([1]),
        covariates=np.array([70.0, BASAL]),
        baseline={},
        schedule=Schedule.build([], [tq.Infusion(0.0, BASAL / 60.0, 5000.0, 2)]),
        observations=obs,
        table=pd.DataFrame(),
        population=pop,
    )
    return PosteriorTwin(posterior)


def _typical():
    model = tq.load_model("glucose_meal")
    return np.array([p.typical for p in model.parameters])


def _spread(S: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _typical() * np.exp(0.25 * rng.standard_normal((S, _typical().size)))


def test_basal_bolus_on_a_point_twin_equals_the_open_loop_solve():
    twin = _twin(np.tile(_typical(), (4, 1)))
    meals = [(60.0, 50.0), (300.0, 70.0)]
    cmp = twin.compare_policies(
        {"bb": BasalBolus(BASAL, carb_ratio=10.0)}, meals=meals, horizon=480.0
    )
    out = cmp.outcomes["bb"]
    # The same therapy as a schedule, solved by the package's solver (RK4 on its own grid).
    boluses = []
    for lead, g in meals:
        boluses += [tq.Bolus(60.0 + lead, g, 1), tq.Bolus(60.0 + lead, g / 10.0, 2)]
    sched = tq.Schedule.build(boluses, [tq.Infusion(0.0, BASAL / 60.0, 5000.0, 2)])
    traj = tq.simulate(
        twin.model, dict(zip(twin.model.parameter_names, _typical(), strict=True)), sched,
        out.times, covariates={"WT": 70.0, "BASAL": BASAL},
    )  # fmt: skip
    ref = np.asarray(traj.outputs)[:, 0]
    # A bolus at a control time acts after the reading there: compare the pre-dose value.
    # Both are RK4 (2-min steps vs 5/3-min steps), each ~2e-3 mg/dL from the exact solution
    # (the model file's measured accuracy); 0.05 mg/dL is far below any clinical difference.
    np.testing.assert_allclose(out.glucose, np.broadcast_to(ref, out.glucose.shape), atol=0.05)
    assert np.ptp(out.glucose[:, 0]) == 0 and out.glucose.max() > out.glucose[0, 0] + 20
    np.testing.assert_allclose(out.metrics["insulin_u"], 12.0 + 8.0 * BASAL, rtol=1e-9)
    # A PID rule with zero gains and the same carb ratio is the same therapy.
    pid = twin.compare_policies(
        {"pid": ForecastPID(BASAL, kp=0.0, carb_ratio=10.0)}, meals=meals, horizon=480.0
    )
    np.testing.assert_allclose(pid.outcomes["pid"].glucose, out.glucose, rtol=1e-12)


@pytest.mark.slow
def test_insulin_lowers_glucose_on_every_draw_and_mcse_shrinks():
    twin = _twin(_spread(400, 1), n_chains=4)
    meals = [(30.0, 60.0), (330.0, 80.0)]
    policies = {
        "none": BasalBolus(0.0, math.inf),
        "basal-bolus": BasalBolus(BASAL, carb_ratio=10.0, correction_factor=40.0),
        "pid": ForecastPID(BASAL, kp=0.02, ki=0.001, carb_ratio=12.0),
    }
    compiled = policy_module._loop_pytree._cache_size()
    cmp = twin.compare_policies(policies, meals=meals, horizon=600.0)
    # the two BasalBolus policies share one compiled loop (policies are data, not constants)
    assert policy_module._loop_pytree._cache_size() == compiled + 2
    g = {k: v.glucose for k, v in cmp.outcomes.items()}
    # Insulin only ever removes glucose in this model: zero insulin is higher at every draw
    # and time after the start (equal at the start).
    assert np.all(g["none"][:, 1:] > g["basal-bolus"][:, 1:])
    # The PID rule may give no insulin for a while (rate clipped at 0): never more glucose.
    assert np.all(g["none"][:, 1:] >= g["pid"][:, 1:]) and (g["none"] > g["pid"]).any(axis=1).all()
    table = cmp.table()
    assert table.loc[("none", "tar180"), "mean"] > table.loc[("basal-bolus", "tar180"), "mean"]
    row = table.loc[("basal-bolus", "tir")]
    assert row["lower"] <= row["mean"] <= row["upper"] and row["mcse"] > 0
    assert "Trust: not assessed" in str(cmp)
    # MCSE ~ sd / sqrt(draws): a quarter of the draws doubles it (sd estimates vary: +-30 %).
    small = twin.compare_policies(policies, meals=meals, horizon=600.0, draws=100).table()
    ratio = small.loc[("basal-bolus", "tir"), "mcse"] / row["mcse"]
    assert 1.4 < ratio < 2.8


def test_policy_inputs_are_checked():
    twin = _twin(np.tile(_typical(), (2, 1)))
    with pytest.raises(InputError, match="meal 0"):
        twin.compare_policies({"bb": BasalBolus(1.0, 10.0)}, meals=[(7.0, 50.0)], horizon=60.0)
    with pytest.raises(InputError, match="carb_ratio"):
        BasalBolus(1.0, 0.0)


@dataclass(frozen=True)
class _NoInsulin:
    """A user's own policy (not a registered pytree): compiled as a static argument."""

    def decide(self, inp, memory):
        return jnp.asarray(0.0), jnp.asarray(0.0), memory


@pytest.mark.slow
def test_a_users_own_policy_runs_and_matches_the_built_in_equivalent():
    twin = _twin(_spread(8, 2))
    kw = dict(meals=[(30.0, 60.0)], horizon=240.0)
    mine = twin.compare_policies({"mine": _NoInsulin()}, **kw).outcomes["mine"].glucose
    built = twin.compare_policies({"zero": BasalBolus(0.0, math.inf)}, **kw).outcomes["zero"]
    np.testing.assert_allclose(mine, built.glucose, rtol=1e-12)
