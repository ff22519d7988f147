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
from twin_uq.simulate.exact import transition_matrices
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
    assert model.solver.method == "exact" and model.is_linear and model.has_transition
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

    def central(h):
        return np.array(
            [(conc(x0.at[k].add(h)) - conc(x0.at[k].add(-h))) / (2 * h) for k in range(6)]
        )

    # Richardson-extrapolated central differences (error O(h^4)): a step large enough that
    # rounding noise in the solution (~1e-15 relative) stays below 1e-10.
    fd = (4 * central(5e-4) - central(1e-3)) / 3
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)


# Where the closed form could lose accuracy: stiff (fast central elimination, slow deep
# compartment), two rates nearly equal (k21 == k31 with weak coupling), all rates close.
HARD_THETAS = [
    THETA,
    {"CL": 1328.5, "V1": 4.35, "Q2": 1.585, "V2": 185.3, "Q3": 3.128, "V3": 6758.6},
    {"CL": 5.0, "V1": 10.0, "Q2": 1e-6, "V2": 20.0, "Q3": 5e-6, "V3": 100.0},
    {"CL": 1.0, "V1": 10.0, "Q2": 0.5, "V2": 5.0, "Q3": 0.5, "V3": 5.0},
    {"CL": 0.1, "V1": 1.0, "Q2": 1e-4, "V2": 1.0, "Q3": 1e-4, "V3": 1.0},
]
DTS = jnp.array([0.0, 1e-9, 1e-6, 1e-3, 0.3, 2.0, 24.0, 200.0])


@pytest.mark.parametrize("theta", HARD_THETAS)
def test_closed_form_transition_matches_the_matrix_exponential(model, theta):
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    phi, psi = jax.vmap(model.transition, in_axes=(None, 0))(th, DTS)
    phi_ref, psi_ref = transition_matrices(model.linear_system(th), DTS)
    # Entries far below the largest one carry no information about the solution: compare
    # each matrix to its largest entry (|Φ| <= 1; Ψ's scale is that of dt and 1/rate).
    np.testing.assert_allclose(phi, phi_ref, rtol=0, atol=1e-10)
    scale = np.max(np.abs(np.asarray(psi_ref)), axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        psi / np.maximum(scale, 1e-300), psi_ref / np.maximum(scale, 1e-300), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("theta", HARD_THETAS)
def test_closed_form_gradient_matches_the_matrix_exponential(model, theta):
    names = model.parameter_names
    weights = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 3)))

    def contract(phi, psi):
        return jnp.sum(weights[0] * phi) + jnp.sum(weights[1] * psi)

    def closed(x, dt):
        return contract(*model.transition(dict(zip(names, jnp.exp(x), strict=True)), dt))

    def generic(x, dt):
        A = model.linear_system(dict(zip(names, jnp.exp(x), strict=True)))
        phi, psi = transition_matrices(A, jnp.atleast_1d(dt))
        return contract(phi[0], psi[0])

    x = jnp.log(jnp.array([theta[n] for n in names]))
    for dt in (1e-3, 0.5, 5.0, 48.0):
        g = np.asarray(jax.grad(closed)(x, dt))
        g_ref = np.asarray(jax.grad(generic)(x, dt))
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, g_ref, rtol=0, atol=1e-9 * np.max(np.abs(g_ref)))


def test_steady_state_bolus_is_the_geometric_sum_of_tri_exponentials(model):
    # SS=1: the regimen "D every II since forever"; each phase sums to c_i/(1 - exp(-λ_i II)).
    dose, ii = 100.0, 12.0
    lam, c = disposition(THETA)
    times = np.array([0.0, 0.5, 2.0, 6.0, 11.9])
    sched = Schedule.build([Bolus(0.0, dose, ss=1, ii=ii)])
    traj = tq.simulate(model, THETA, sched, times)
    expected = (
        dose
        / THETA["V1"]
        * np.sum(c * np.exp(-lam * times[:, None]) / (1 - np.exp(-lam * ii)), axis=1)
    )
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-8)


def test_steady_state_infusion_equals_the_regimen_written_out(model):
    # 2-h infusions every 12 h at steady state: the superposed integrated tri-exponential
    # of the current and past infusions (400; the slowest phase, 0.14/h, needs 15 for 1e-10).
    rate, dur, ii = 50.0, 2.0, 12.0
    times = np.array([0.0, 1.0, 2.0, 3.0, 8.0, 11.5])
    sched = Schedule.build([], [Infusion(0.0, rate, dur, ss=1, ii=ii)])
    traj = tq.simulate(model, THETA, sched, times)
    expected = sum(infusion_conc(times, rate, -k * ii, dur, THETA) for k in range(400))
    np.testing.assert_allclose(traj.outputs[:, 0], expected, rtol=1e-8)
