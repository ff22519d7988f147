"""michaelis_menten_iv and michaelis_menten_oral against analytic limits and scipy.

References that share nothing with the engine: the Lambert W solution of an IV bolus
(Schnell & Mendoza 1997), the infusion steady state Km·R/(Vmax - R), the linear models at
concentrations far below Km (CL = Vmax/Km), and scipy's Radau on the written-out ODE.
"""

import itertools

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.special import lambertw

import twin_uq as tq
from twin_uq.simulate import Bolus, Infusion, Schedule
from twin_uq.testing import check_model

VMAX, KM, V, KA = 20.0, 4.0, 50.0, 1.2
TIGHT = tq.SolverSettings(method="tsit5", rtol=1e-11, atol=1e-14, max_steps=100_000)
TIMES = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0, 36.0, 48.0])


@pytest.fixture(scope="module")
def iv():
    return tq.load_model("michaelis_menten_iv")


@pytest.fixture(scope="module")
def oral():
    return tq.load_model("michaelis_menten_oral")


@pytest.mark.parametrize("name", ["michaelis_menten_iv", "michaelis_menten_oral"])
def test_pass_check_model(name):
    model = tq.load_model(name)
    assert check_model(model) is model


def test_states_parameters_and_solver(iv, oral):
    assert iv.states == ("central",) and iv.parameter_names == ("Vmax", "Km", "V")
    assert oral.states == ("depot", "central")
    assert oral.parameter_names == ("ka", "Vmax", "Km", "V")
    assert not iv.is_linear and not oral.is_linear
    assert iv.solver.method == oral.solver.method == "tsit5"


def test_iv_bolus_is_the_lambert_w_solution(iv):
    dose = 1000.0  # C0 = 20 mg/L = 5 Km: elimination starts close to zero order
    sched = Schedule.build([Bolus(0.0, dose)], n_bolus=1, n_infusion=1)
    traj = tq.simulate(iv, {"Vmax": VMAX, "Km": KM, "V": V}, sched, TIMES, settings=TIGHT)
    c0 = dose / V
    expected = KM * lambertw(c0 / KM * np.exp((c0 - VMAX * TIMES / V) / KM)).real
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-8)
    # Nonlinear indeed: the first hours lose drug at almost Vmax, not at CL·C0.
    assert expected[3] == pytest.approx(c0 - VMAX * 2.0 / V, rel=0.05)


@pytest.mark.parametrize("dose", [0.01, 100.0])
def test_low_concentrations_are_linear_with_clearance_vmax_over_km(iv, dose):
    sched = Schedule.build([Bolus(0.0, dose)], n_bolus=1, n_infusion=1)
    traj = tq.simulate(iv, {"Vmax": VMAX, "Km": KM, "V": V}, sched, TIMES, settings=TIGHT)
    linear = dose / V * np.exp(-VMAX / KM / V * TIMES)
    ratio = np.asarray(traj.outputs[:, 0]) / linear
    # Saturation only slows elimination, and by at most a factor exp(C0/Km) (the rate
    # k·Km/(Km + C) differs from k by k·C/(Km + C) <= k·C, whose integral is <= C0/Km).
    bound = dose / V / KM
    assert np.all(ratio >= 1.0 - 1e-9)
    assert np.all(ratio - 1.0 <= np.expm1(bound) * (1 + 1e-6))
    if dose == 0.01:
        assert np.max(ratio - 1.0) < 1e-4  # C0/Km = 5e-5: the linear model to 1e-4
    else:
        assert np.max(ratio - 1.0) > 0.1  # C0/Km = 0.5: visibly nonlinear (positive control)


def test_oral_low_dose_equals_one_compartment_oral(oral):
    dose = 0.01  # Cmax about 1.6e-4 mg/L << Km
    sched = Schedule.build([Bolus(0.0, dose), Bolus(12.0, dose)], n_bolus=2)
    mm = tq.simulate(oral, {"ka": KA, "Vmax": VMAX, "Km": KM, "V": V}, sched, TIMES, settings=TIGHT)
    lin = tq.simulate("one_compartment_oral", {"ka": KA, "CL": VMAX / KM, "V": V}, sched, TIMES)
    # Relative difference at most about Cmax/Km = 4e-5 (see the IV test's bound).
    np.testing.assert_allclose(mm.outputs[:, 0], lin.outputs[:, 0], rtol=1e-4, atol=1e-16)
    # Same depot (to the solver tolerance: atol 1e-14 mg per step on amounts down to 1e-21).
    np.testing.assert_allclose(mm.states[:, 0], lin.states[:, 0], rtol=1e-9, atol=1e-12)


def test_infusion_reaches_the_michaelis_menten_steady_state(iv):
    rate, v = 10.0, 10.0  # below Vmax: C_ss = Km·R/(Vmax - R) = 4 mg/L
    sched = Schedule.build([], [Infusion(0.0, rate, 500.0)], n_bolus=1, n_infusion=1)
    traj = tq.simulate(
        iv, {"Vmax": VMAX, "Km": KM, "V": v}, sched, np.array([400.0, 500.0]), settings=TIGHT
    )
    np.testing.assert_allclose(traj.outputs[:, 0], KM * rate / (VMAX - rate), rtol=1e-8)


def scipy_reference(rhs, n, boluses, infusions, times, observe):
    """Radau on ``rhs`` restarted at every bolus and infusion edge (independent solve)."""

    def f(t, y):
        r = np.zeros(n)
        for s, rate, d, cmt in infusions:
            if s <= t < s + d:
                r[cmt - 1] += rate
        return rhs(y) + r

    edges = {0.0, float(times[-1]), *(t for t, _, _ in boluses)}
    edges |= {s for s, *_ in infusions} | {s + d for s, _, d, _ in infusions}
    y = np.zeros(n)
    out = np.full(len(times), np.nan)
    for a, b in itertools.pairwise(sorted(edges)):
        for t, amount, cmt in boluses:
            if t == a:
                y[cmt - 1] += amount
        inside = (times >= a) & (times < b)
        sol = solve_ivp(f, (a, b), y, method="Radau", rtol=1e-11, atol=1e-13, dense_output=True)
        out[inside] = observe(sol.sol(times[inside]))
        y = sol.y[:, -1]
    out[times == times[-1]] = observe(y[:, None])[0]
    return out


def test_iv_doses_and_infusions_against_scipy(iv):
    boluses = [(0.0, 500.0, 1), (10.0, 300.0, 1)]
    infusions = [(4.0, 40.0, 3.0, 1), (20.0, 25.0, 10.0, 1)]
    times = np.array([0.5, 2.0, 4.0, 5.0, 7.0, 9.0, 10.0, 12.0, 18.0, 25.0, 31.0, 40.0, 60.0])
    sched = Schedule.build(
        [Bolus(t, a, c) for t, a, c in boluses],
        [Infusion(s, r, d, c) for s, r, d, c in infusions],
        n_bolus=2,
        n_infusion=2,
    )
    traj = tq.simulate(iv, {"Vmax": VMAX, "Km": KM, "V": V}, sched, times)  # model's own rtol

    def rhs(y):
        c = y[0] / V
        return np.array([-VMAX * c / (KM + c)])

    expected = scipy_reference(rhs, 1, boluses, infusions, times, lambda y: y[0] / V)
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-6)


def test_oral_doses_and_iv_infusion_against_scipy(oral):
    boluses = [(0.0, 400.0, 1), (8.0, 400.0, 1), (16.0, 400.0, 1), (30.0, 200.0, 2)]
    infusions = [(36.0, 50.0, 2.0, 2)]
    times = np.array([1.0, 3.0, 8.0, 9.0, 14.0, 17.0, 24.0, 30.0, 31.0, 37.0, 45.0, 72.0])
    sched = Schedule.build(
        [Bolus(t, a, c) for t, a, c in boluses],
        [Infusion(s, r, d, c) for s, r, d, c in infusions],
        n_bolus=4,
        n_infusion=1,
    )
    traj = tq.simulate(oral, {"ka": KA, "Vmax": VMAX, "Km": KM, "V": V}, sched, times)

    def rhs(y):
        c = y[1] / V
        return np.array([-KA * y[0], KA * y[0] - VMAX * c / (KM + c)])

    expected = scipy_reference(rhs, 2, boluses, infusions, times, lambda y: y[1] / V)
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-6)
