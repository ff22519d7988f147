"""The steady state itself against NONMEM, in each SS scenario until its first plain dose.

Independent of how the solve paths apply doses: for every nmtests 1001 scenario whose
first record is a steady-state dose (``SS = 1`` at ``t0 = 0``), the state after each of
its steady-state records (``SS = 1`` resets to, ``SS = 2`` adds, the steady state) is
built from :func:`~twin_uq.simulate.steady_state.steady_state` (``y_ss``, ``r_ss``),
:func:`~twin_uq.simulate.steady_state.steady_state_tails` and the record's own dose, and
carried forward with the model's exact transition up to the first dose that is not a
steady-state record (an ``ADDL`` dose or a plain record); NONMEM's ``CP`` at the
observations in that window must agree to 1e-4 relative / 1e-6 absolute.
Fixture and model: ``test_nmtests_dosing.py`` and ``tests/fixtures/nmtests_dosing``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_nmtests_dosing import (
    ATOL,
    KEY,
    NONMEM,
    RECORDS,
    RTOL,
    Nmtests1001,
    patient_parameters,
)

from twin_uq.simulate.exact import transition_matrices
from twin_uq.simulate.status import explain
from twin_uq.simulate.steady_state import (
    SteadyDose,
    steady_state,
    steady_state_tails,
)

MODEL = Nmtests1001()


def _first_ss_scenarios() -> list[int]:
    out = []
    for scenario, rows in RECORDS.groupby("ID"):
        first = rows[rows["EVID"] != 0].iloc[0]
        if first["SS"] == 1 and first["TIME"] == 0:
            out.append(int(scenario))
    return out


SS_SCENARIOS = _first_ss_scenarios()


def _record_dose(record, params) -> tuple[SteadyDose, float, float]:
    """The record's dose as NONMEM resolves it: ``(SteadyDose, lag, duration)``."""
    into_central = int(record["CMT"]) == 2
    f = params["F2"] if into_central else 1.0
    lag = params["ALAG2"] if into_central else 0.0
    amount = f * float(record["AMT"])
    rate = float(record["RATE"])
    ii = float(record["II"])
    if rate == -2:
        duration = params["D2"]
        rate = amount / duration
    elif rate > 0:
        duration = amount / rate if ii > 0 else np.inf
    else:
        rate, duration = 0.0, 0.0
    dose = SteadyDose(
        jnp.asarray(amount),
        jnp.asarray(int(record["CMT"]) - 1),
        jnp.asarray(rate),
        jnp.asarray(duration),
        jnp.asarray(lag),
        jnp.asarray(ii),
    )
    return dose, lag, duration


def _carry(A, actions, t):
    """State at ``t`` from zero, applying ``(time, order, keep, add_y, add_r)`` actions.

    At an action ``y = keep·y + add_y`` and ``r = keep·r + add_r``; at equal times steady
    states (order 1) before doses (order 2); an action at ``t`` acts before the observation.
    """
    y, r, now = np.zeros(2), np.zeros(2), 0.0
    for when, _, keep, add_y, add_r in sorted(actions, key=lambda a: (a[0], a[1])):
        if when > t:
            break
        y = _step(A, y, r, when - now)
        y, r, now = keep * y + add_y, keep * r + add_r, when
    return _step(A, y, r, t - now)


def _step(A, y, r, dt):
    phi, psi = transition_matrices(A, jnp.asarray([dt]))
    return np.asarray(phi[0]) @ y + np.asarray(psi[0]) @ r


def _steady_state_actions(record, params, theta):
    """The actions of one SS record at its time: the steady state, its tails, its own dose."""
    t0 = float(record["TIME"])
    dose, lag, duration = _record_dose(record, params)
    y_ss, r_ss, status = steady_state(MODEL, MODEL.solver, theta, jnp.zeros(0), dose)
    assert explain(status).name == "successful"
    tails, tail_status = steady_state_tails(dose)
    assert explain(tail_status).name == "successful"
    keep = 0.0 if int(record["SS"]) == 1 else 1.0
    actions = [(t0, 1, keep, np.asarray(y_ss), np.asarray(r_ss))]
    e = np.eye(2)[int(record["CMT"]) - 1]
    for t, j, rc, m in zip(tails.time, tails.jump, tails.rate_change, tails.mask, strict=True):
        if m:
            actions.append((t0 + float(t), 2, 1.0, float(j) * e, float(rc) * e))
    rate = float(dose.rate)
    if rate == 0:
        actions.append((t0 + lag, 2, 1.0, float(dose.amount) * e, 0.0 * e))
    elif np.isfinite(duration):
        actions.append((t0 + lag, 2, 1.0, 0.0 * e, rate * e))
        actions.append((t0 + lag + duration, 2, 1.0, 0.0 * e, -rate * e))
    # else a constant infusion's record (AMT = 0): nothing of its own after t0.
    return actions


@pytest.mark.parametrize("scenario", SS_SCENARIOS, ids=[f"ID{i}" for i in SS_SCENARIOS])
def test_steady_state_records_match_nonmem_until_the_next_plain_dose(scenario):
    # Scenarios 25 (three EVID 4 SS=1 records) and 28 (SS=1, then SS=2 added at 12 h) run
    # through several steady-state records; the others to the first ADDL dose.
    rows = RECORDS[RECORDS["ID"] == scenario]
    doses = rows[rows["EVID"] != 0]
    params = patient_parameters(rows)
    theta = jnp.asarray([params[n] for n in MODEL.parameter_names])
    steady = doses[doses["SS"] > 0]
    plain = doses[doses["SS"] == 0]["TIME"].tolist()
    addl = (steady["TIME"] + steady["II"])[steady["ADDL"] > 0].tolist()
    end = min(plain + addl, default=np.inf)
    actions = []
    for _, record in steady[steady["TIME"] < end].iterrows():
        actions += _steady_state_actions(record, params, theta)

    reference = NONMEM[(NONMEM["ID"] == scenario) & (NONMEM["TIME"] < end)]
    A = np.asarray(MODEL.linear_system(MODEL.theta_dict(theta)))
    got = np.array([_carry(A, actions, t)[1] / (params["V"] / 1000) for t in reference["TIME"]])
    expected = reference["CP"].to_numpy()
    bad = np.abs(got - expected) > np.maximum(RTOL * np.abs(expected), ATOL)
    assert not bad.any(), (
        f"ID {scenario} ({KEY[scenario]}): t = {reference['TIME'][bad].tolist()[:5]}, "
        f"steady state {got[bad][:5].tolist()} vs NONMEM {expected[bad][:5].tolist()}"
    )
    assert len(reference) >= 5  # the window holds real evidence
