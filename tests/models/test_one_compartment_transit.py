"""one_compartment_transit against Savic's analytic Erlang input (any number of transits).

The references are written from the paper's equations, not from the model's matrix: the
amount in the n-th transit compartment after a dose D is D·(ktr·t)^n·exp(-ktr·t)/n!, and
the plasma concentration is that input (times ktr) convolved with the Bateman kernel of
absorption and elimination, integrated by adaptive quadrature.
"""

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
from scipy.integrate import quad

import twin_uq as tq
from twin_uq.simulate import Bolus, Schedule
from twin_uq.testing import check_model

MTT, KA, CL, V = 1.5, 0.8, 4.0, 40.0
K = CL / V
TIMES = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0])


def erlang_amount(t, dose, n, ktr):
    """Amount in transit compartment n (the gut is n = 0) at time t after the dose."""
    t = np.maximum(t, 0.0)
    return dose * (ktr * t) ** n * np.exp(-ktr * t) / math.factorial(n)


def concentration(t, dose, n):
    """Plasma concentration: Erlang input convolved with absorption and elimination."""
    ktr = (n + 1) / MTT

    def integrand(tau):
        s = t - tau
        kernel = KA / (KA - K) * (np.exp(-K * s) - np.exp(-KA * s))
        return ktr * erlang_amount(tau, dose, n, ktr) * kernel

    if t <= 0:
        return 0.0
    value, err = quad(integrand, 0.0, t, epsabs=1e-14, epsrel=1e-12, limit=200)
    assert err < 1e-9
    return value / V


@pytest.fixture(scope="module")
def model():
    return tq.load_model("one_compartment_transit")


def test_passes_check_model(model):
    assert check_model(model) is model
    for n in (0, 1, 7):
        assert check_model(model.with_transits(n)).n_transit == n


def test_declaration(model):
    assert model.n_transit == 3
    assert model.states == ("gut", "transit1", "transit2", "transit3", "absorption", "central")
    assert model.parameter_names == ("MTT", "ka", "CL", "V")
    assert model.default_dose_cmt == 1
    assert model.solver.method == "exact" and model.is_linear


def test_other_numbers_of_transits_are_models_of_their_own(model):
    m5 = model.with_transits(5)
    assert m5.name == "one_compartment_transit_n5" and len(m5.states) == 8
    assert m5.n_transit == 5 and "5 transit compartments" in m5.card.summary
    # One class per n (compiled functions are cached per class), distinct from the default.
    assert model.with_transits(5) == m5 and hash(model.with_transits(5)) == hash(m5)
    assert m5 != model and hash(m5) != hash(model)
    assert model.with_transits(3) == model
    assert m5.with_transits(3) == model  # from a variant back to the file's own n
    for bad in (-1, 2.5, True, 41):
        with pytest.raises(tq.InputError, match="whole number from 0 to 40"):
            model.with_transits(bad)


@pytest.mark.parametrize("n", [0, 3, 7])
def test_transit_chain_is_erlang(model, n):
    m = model.with_transits(n)
    ktr = (n + 1) / MTT
    sched = Schedule.build([Bolus(0.0, 100.0)], n_bolus=1)
    traj = tq.simulate(m, {"MTT": MTT, "ka": KA, "CL": CL, "V": V}, sched, TIMES)
    assert bool(traj.ok)
    for i in range(n + 1):  # gut (i = 0) and transit compartments 1..n
        np.testing.assert_allclose(
            traj.states[:, i], erlang_amount(TIMES, 100.0, i, ktr), rtol=1e-8, atol=1e-10
        )
    expected = [concentration(t, 100.0, n) for t in TIMES]
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-7, atol=1e-11)


def test_repeated_doses_superpose(model):
    doses = [(0.0, 100.0), (6.0, 50.0), (12.0, 100.0)]
    times = np.array([1.0, 5.0, 6.0, 6.5, 8.0, 12.0, 13.0, 16.0, 30.0])
    sched = Schedule.build([Bolus(t, a) for t, a in doses], n_bolus=3)
    traj = tq.simulate(model, {"MTT": MTT, "ka": KA, "CL": CL, "V": V}, sched, times)
    expected = [sum(concentration(t - td, a, 3) for td, a in doses) for t in times]
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-7, atol=1e-11)


def test_iv_dose_goes_to_the_last_compartment(model):
    sched = Schedule.build([Bolus(0.0, 100.0, cmt=6)], n_bolus=1)
    traj = tq.simulate(model, {"MTT": MTT, "ka": KA, "CL": CL, "V": V}, sched, TIMES)
    np.testing.assert_allclose(traj.outputs[:, 0], 100.0 / V * np.exp(-K * TIMES), rtol=1e-9)


def test_variant_pickles_as_a_reload_in_a_fresh_process(model):
    # A posterior sent to a Dask worker pickles its model: a run-time class must survive.
    data = pickle.dumps(model.with_transits(6))
    code = (
        "import pickle, sys; m = pickle.loads(sys.stdin.buffer.read()); "
        "print(m.name, m.n_transit, len(m.states))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=120
    )
    assert out.stdout.decode().split() == ["one_compartment_transit_n6", "6", "9"]


def test_variant_of_a_model_with_dose_parameters_keeps_both_when_pickled(model):
    with_f = tq.with_dose_parameters(
        model, bioavailability=tq.Parameter("F", "1", 0.8, "bioavailability", scale="logit")
    )
    m5 = with_f.with_transits(5)
    assert m5.n_transit == 5 and m5.dose_parameters[1].bioavailability == "F"
    assert m5.with_transits(3) is with_f
    copy = pickle.loads(pickle.dumps(m5))
    assert copy == m5 and copy.n_transit == 5 and copy.parameter_names[-1] == "F"


def test_steady_state_dose_equals_the_sum_over_past_doses(model):
    # SS=1, a dose every 8 h since forever: the Savic reference summed over past doses
    # (terminal rate CL/V = 0.1/h: 40 intervals leave exp(-32) ~ 1e-14).
    ii, times = 8.0, np.array([0.0, 0.5, 1.5, 3.0, 7.5])
    sched = Schedule.build([Bolus(0.0, 100.0, ss=1, ii=ii)])
    traj = tq.simulate(model, {"MTT": MTT, "ka": KA, "CL": CL, "V": V}, sched, times)
    expected = [sum(concentration(t + k * ii, 100.0, 3) for k in range(40)) for t in times]
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-7)
