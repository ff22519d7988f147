"""three_compartment against the tri-exponential solution and an independent scipy solve.

The analytic reference takes the three disposition rates from numpy's polynomial roots of
the characteristic cubic and the coefficients from partial fractions (Gibaldi & Perrier),
which share nothing with the engine's matrix exponential.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import twin_uq as tq
from twin_uq.simulate import Bolus, Infusion, Schedule
from twin_uq.testing import check_model

# Propofol-like (Schnider 1998 at 70 kg, in L and L/h): three well-separated phases.
THETA = {"CL": 96.0, "V1": 4.27, "Q2": 77.0, "V2": 24.0, "Q3": 50.0, "V3": 238.0}
TIMES = np.array([0.0, 0.02, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 6.0, 12.0, 24.0])


def rates(theta):
    k10, k12, k13 = (theta[k] / theta["V1"] for k in ("CL", "Q2", "Q3"))
    k21, k31 = theta["Q2"] / theta["V2"], theta["Q3"] / theta["V3"]
    return k10, k12, k21, k13, k31


def disposition(theta):
    """(λ_i, c_i): C(t) = D/V1 · Σ c_i exp(-λ_i t) after a unit bolus (D = 1)."""
    k10, k12, k21, k13, k31 = rates(theta)
    a2 = k10 + k12 + k13 + k21 + k31
    a1 = k10 * k21 + k10 * k31 + k12 * k31 + k13 * k21 + k21 * k31
    a0 = k10 * k21 * k31
    lam = np.sort(np.roots([1.0, -a2, a1, -a0]).real)[::-1]
    c = np.array(
        [
            (k21 - lam[i]) * (k31 - lam[i]) / np.prod([lam[j] - lam[i] for j in range(3) if j != i])
            for i in range(3)
        ]
    )
    return lam, c


def bolus_conc(t, dose, t_dose, theta):
    lam, c = disposition(theta)
    dt = np.maximum(t - t_dose, 0.0)[:, None]
    return dose / theta["V1"] * np.sum(c * np.exp(-lam * dt), axis=1) * (t >= t_dose)


def infusion_conc(t, rate, start, duration, theta):
    lam, c = disposition(theta)
    s = np.maximum(t - start, 0.0)[:, None]
    during = (1 - np.exp(-lam * np.minimum(s, duration))) * np.exp(
        -lam * np.maximum(s - duration, 0)
    )
    return rate / theta["V1"] * np.sum(c / lam * during, axis=1)


@pytest.fixture(scope="module")
def model():
    return tq.load_model("three_compartment")


def test_passes_check_model(model):
    assert check_model(model) is model


def test_declaration(model):
    assert model.states == ("central", "peripheral1", "peripheral2")
    assert model.parameter_names == ("CL", "V1", "Q2", "V2", "Q3", "V3")
    assert model.default_dose_cmt == 1
    assert model.solver.method == "exact" and model.is_linear and not model.has_transition
    assert "three_compartment" in tq.list_models()


def test_analytic_reference_is_sane():
    # The reference itself: C(0) = D/V1 (Σ c_i = 1), and the AUC of a bolus is D/CL.
    lam, c = disposition(THETA)
    assert np.all(lam > 0) and lam[0] > lam[1] > lam[2]
    assert np.sum(c) == pytest.approx(1.0, rel=1e-12)
    assert 1.0 / THETA["V1"] * np.sum(c / lam) == pytest.approx(1.0 / THETA["CL"], rel=1e-10)


@pytest.mark.parametrize("method", ["exact", "kvaerno5"])
def test_bolus_is_tri_exponential(model, method):
    sched = Schedule.build([Bolus(0.0, 200.0)], n_bolus=2, n_infusion=1)
    settings = tq.SolverSettings(method=method, rtol=1e-10, atol=1e-12, max_steps=100_000)
    traj = tq.simulate(model, THETA, sched, TIMES, settings=settings)
    assert bool(traj.ok)
    expected = bolus_conc(TIMES, 200.0, 0.0, THETA)
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("method", ["exact", "kvaerno5"])
def test_infusion_is_integrated_tri_exponential(model, method):
    rate, start, dur = 150.0, 0.5, 2.0
    sched = Schedule.build([], [Infusion(start, rate, dur)], n_bolus=1, n_infusion=2)
    settings = tq.SolverSettings(method=method, rtol=1e-10, atol=1e-12, max_steps=100_000)
    traj = tq.simulate(model, THETA, sched, TIMES, settings=settings)
    expected = infusion_conc(TIMES, rate, start, dur, THETA)
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-7, atol=1e-12)


def test_long_infusion_reaches_rate_over_clearance(model):
    theta = {**THETA, "Q3": 5.0, "V3": 50.0}  # deep phase of hours, not days
    rate = 100.0
    times = np.array([50.0, 100.0, 200.0])
    sched = Schedule.build([], [Infusion(0.0, rate, 300.0)], n_bolus=1, n_infusion=1)
    traj = tq.simulate(model, theta, sched, times)
    np.testing.assert_allclose(traj.outputs[-1, 0], rate / theta["CL"], rtol=1e-9)


def _scipy_reference(theta, boluses, infusions, times):
    """Independent solution: Radau on the written-out ODE, restarted at every bolus."""
    k10, k12, k21, k13, k31 = rates(theta)

    def rate_at(t):
        return sum(r for s, r, d in infusions if s <= t < s + d)

    def f(t, a):
        return [
            -(k10 + k12 + k13) * a[0] + k21 * a[1] + k31 * a[2] + rate_at(t),
            k12 * a[0] - k21 * a[1],
            k13 * a[0] - k31 * a[2],
        ]

    # Break points: boluses (jumps) and infusion starts and stops (kinks).
    breaks = sorted(
        {
            0.0,
            *(t for t, _ in boluses),
            *(s for s, _, _ in infusions),
            *(s + d for s, _, d in infusions),
            float(times[-1]),
        }
    )
    y = np.zeros(3)
    out = np.full(len(times), np.nan)
    for a, b in itertools.pairwise(breaks):
        y[0] += sum(amt for t, amt in boluses if t == a)
        inside = (times >= a) & (times < b)
        sol = solve_ivp(
            f,
            (a, b),
            y,
            method="Radau",
            rtol=1e-11,
            atol=1e-13,
            t_eval=times[inside],
            dense_output=False,
        )
        out[inside] = sol.y[0] / theta["V1"]
        y = solve_ivp(f, (a, b), y, method="Radau", rtol=1e-11, atol=1e-13).y[:, -1]
    out[times == breaks[-1]] = y[0] / theta["V1"]
    return out


def test_doses_and_infusions_against_scipy(model):
    theta = {"CL": 3.0, "V1": 8.0, "Q2": 12.0, "V2": 15.0, "Q3": 1.5, "V3": 60.0}
    boluses = [(0.0, 100.0), (12.0, 50.0)]
    infusions = [(4.0, 20.0, 3.0), (20.0, 10.0, 8.0)]
    times = np.array([0.5, 1.0, 3.0, 4.0, 5.0, 7.0, 10.0, 13.0, 18.0, 22.0, 30.0, 48.0])
    sched = Schedule.build(
        [Bolus(t, a) for t, a in boluses],
        [Infusion(s, r, d) for s, r, d in infusions],
        n_bolus=3,
        n_infusion=3,
    )
    traj = tq.simulate(model, theta, sched, times)
    np.testing.assert_allclose(
        traj.outputs[:, 0], _scipy_reference(theta, boluses, infusions, times), rtol=1e-7
    )


def test_gradient_matches_finite_differences(model):
    # The exact path is differentiated by the fit: check one concentration's gradient.
    sched = Schedule.build([Bolus(0.0, 100.0)], [Infusion(1.0, 30.0, 2.0)], n_bolus=1, n_infusion=1)
    names = model.parameter_names
    x0 = jnp.log(jnp.array([THETA[n] for n in names]))

    def conc(x):
        return tq.simulate(model, jnp.exp(x), sched, jnp.array([2.5, 8.0])).outputs[:, 0].sum()

    g = np.asarray(jax.grad(conc)(x0))
    eps = 1e-6
    fd = np.array(
        [(conc(x0.at[k].add(eps)) - conc(x0.at[k].add(-eps))) / (2 * eps) for k in range(6)]
    )
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9)
