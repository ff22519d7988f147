"""External conformance: NONMEM's own runs of mrgsolve's dosing test suite (nmtests 1001).

Each scenario (one patient of ``1001-records.csv``: bolus, infusion, ADDL, lag, F, SS=1/2
with II <, =, > DUR, modelled duration, EVID 3/4 resets, constant infusion) is read
through twin_uq's data loader (``tq.read_cohort``), simulated by ``tq.simulate`` with a
model equivalent to NONMEM's control stream ``1001.ctl``, and compared with the
concentration NONMEM reported (``1001-nonmem-cp.csv``) at every observation record: within
1e-4 relative or 1e-6 absolute. Source, license and column meanings:
``tests/fixtures/nmtests_dosing/README.md``; the results table: ``docs/conformance.md``
(``python tests/conformance/test_nmtests_dosing.py`` prints it from a fresh run).

The control stream's model (ADVAN2 TRANS2): depot (compartment 1) -> central
(compartment 2), ``CL = 1.1``, ``V = 20``, ``KA = 1.5``, ``CP = A(2)/(V/1000)``; lag time
``ALAG2 = LAGT``, bioavailability ``F2 = BIOAV``, modelled rate ``R2 = RAT2`` and
duration ``D2 = DUR2`` act on doses into compartment 2 only. In twin_uq they are dose
parameters of compartment 2 (``tq.with_dose_parameters``), their values per patient those
of the data columns at the patient's dose records into compartment 2 (NONMEM evaluates
them at the dose record).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
from twin_uq.simulate.status import explain

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nmtests_dosing"
RECORDS = pd.read_csv(FIXTURES / "1001-records.csv")
NONMEM = pd.read_csv(FIXTURES / "1001-nonmem-cp.csv")
KEY = pd.read_csv(FIXTURES / "1001-run-key.csv").set_index("ID")["descr"]
SCENARIOS = sorted(int(i) for i in RECORDS["ID"].unique())
RTOL, ATOL = 1e-4, 1e-6


class Nmtests1001(tq.Model):
    """``1001.ctl``: one-compartment model with first-order absorption (ADVAN2 TRANS2)."""

    name = "nmtests_1001"
    states = ("depot", "central")
    default_dose_cmt = 1
    parameters = (
        tq.Parameter("CL", "L/h", 1.1),
        tq.Parameter("V", "L", 20.0),
        tq.Parameter("KA", "1/h", 1.5),
    )
    # $ERROR: IPRED = A(2)/(V/1000): amount per 1000 volume units.
    outputs = (tq.Output("CP", "mg/m3"),)
    card = tq.ModelCard("nmtests 1001.ctl (test model)", "ADVAN2", "h")
    solver = tq.SolverSettings("exact")

    def linear_system(self, theta):
        ka, k = theta["KA"], theta["CL"] / theta["V"]
        zero = jnp.zeros_like(ka)
        return jnp.stack([jnp.stack([-ka, zero]), jnp.stack([ka, -k])])

    def observe(self, y, theta):
        return y[1:2] / (theta["V"] / 1000.0)


def control_stream_model() -> tq.Model:
    """:class:`Nmtests1001` with ALAG2, F2, R2 and D2 declared on compartment 2."""
    return tq.with_dose_parameters(
        Nmtests1001(),
        2,
        lag=tq.Parameter("ALAG2", "h", 1.0),
        bioavailability=tq.Parameter("F2", "1", 1.0, valid_range=(0.0, 1.0)),
        rate=tq.Parameter("R2", "mg/h", 10.0),
        duration=tq.Parameter("D2", "h", 2.0),
    )


_COLUMNS = {"ALAG2": "LAGT", "F2": "BIOAV", "R2": "RAT2", "D2": "DUR2"}


def patient_parameters(rows: pd.DataFrame) -> dict[str, float]:
    """The patient's parameters: THETAs of 1001.ctl and the dose columns at cmt-2 doses."""
    doses = rows[(rows["EVID"].isin([1, 4])) & (rows["CMT"] == 2)]
    source = doses if len(doses) else rows.iloc[:1]
    params = {"CL": 1.1, "V": 20.0, "KA": 1.5}
    for name, col in _COLUMNS.items():
        values = source[col].unique()
        # A constant per patient is what a twin_uq parameter can hold; the fixture has it.
        assert len(values) == 1, f"{col} differs between the patient's cmt-2 dose records"
        params[name] = float(values[0])
    return params


def simulate_scenario(scenario: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times, twin_uq CP, NONMEM CP)`` at the scenario's observation records."""
    rows = RECORDS[RECORDS["ID"] == scenario]
    cohort = tq.read_cohort(rows, name=f"nmtests 1001, ID {scenario}")
    schedule = cohort.schedule(cohort.ids[0])
    reference = NONMEM[NONMEM["ID"] == scenario]
    times = reference["TIME"].to_numpy(dtype=float)
    traj = tq.simulate(control_stream_model(), patient_parameters(rows), schedule, times)
    assert bool(traj.ok), f"solve failed: {explain(traj.status).text}"
    return times, np.asarray(traj.outputs[:, 0]), reference["CP"].to_numpy(dtype=float)


def max_relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest ``|got - expected| / |expected|`` over points above the absolute floor."""
    big = np.abs(expected) > ATOL
    if not big.any():
        return 0.0
    return float(np.max(np.abs(got[big] - expected[big]) / np.abs(expected[big])))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"ID{i}" for i in SCENARIOS])
def test_scenario_reproduces_nonmem(scenario):
    times, got, expected = simulate_scenario(scenario)
    bad = np.abs(got - expected) > np.maximum(RTOL * np.abs(expected), ATOL)
    assert not bad.any(), (
        f"ID {scenario} ({KEY[scenario]}): {bad.sum()} of {bad.size} points differ from "
        f"NONMEM by more than {RTOL:g} relative / {ATOL:g} absolute; first at t = "
        f"{times[bad][:5].tolist()}: twin_uq {got[bad][:5].tolist()} vs NONMEM "
        f"{expected[bad][:5].tolist()} (max relative error "
        f"{max_relative_error(got, expected):.2e})"
    )


def conformance_table() -> str:
    """The Markdown table of ``docs/conformance.md`` from a fresh run of every scenario."""
    lines = ["| ID | scenario | status | max relative error |", "|---|---|---|---|"]
    for scenario in SCENARIOS:
        try:
            _, got, expected = simulate_scenario(scenario)
            bad = np.abs(got - expected) > np.maximum(RTOL * np.abs(expected), ATOL)
            status = "fails" if bad.any() else "passes"
            err = f"{max_relative_error(got, expected):.1e}"
        except Exception as exc:  # the table reports why a scenario fails
            status = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            err = "—"
        lines.append(f"| {scenario} | {KEY[scenario]} | {status} | {err} |")
    return "\n".join(lines)


if __name__ == "__main__":
    tq.configure()
    sys.stdout.write(conformance_table() + "\n")
