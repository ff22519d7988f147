"""Steady-state APD restitution of the Mitchell-Schaeffer model, against pacing cycle length.

**The independent variable of this model is the pacing cycle length (BCL, ms), not
time.** Its data are a restitution protocol: at each basic cycle length ``BCL`` the
steady-state action potential duration (APD90, ms) measured from monophasic action
potential or optical mapping records, one row per cycle length with ``time`` = BCL. A
cohort table keeps its ``time`` column, which twin_uq reads as given (nothing is
converted): here it holds cycle lengths in ms, and every "time" the engine, the twin and
the reports mention (horizon, observation span, extrapolation) is a cycle length.

Model. Mitchell & Schaeffer (2003) reduce their two-current cell to a one-dimensional
restitution map: the APD of a beat follows from the diastolic interval (DI) before it,

    f(DI) = tau_close · ln[(1 - (1 - h_min)·exp(-DI/tau_open)) / h_min]

(``h_min = 4·tau_in/tau_out``: the gate value below which the inward current cannot hold
the plateau). Paced at ``BCL``, ``APD_{n+1} = f(BCL - APD_n)``; the steady state is the
fixed point ``APD* = f(BCL - APD*)`` and it is stable while the restitution slope
``f'(BCL - APD*)`` is below 1: above it the beats alternate long-short (APD alternans,
Nolasco & Dahlen 1968).

Solver. ``g(A) = A - f(BCL - A)`` is increasing and convex in ``A`` on ``[0, BCL]``
(``f`` is increasing and concave), ``g(0) < 0 < g(BCL)``: the fixed point is unique and
Newton's method started to its right converges monotonically. The start is
``min(BCL, f(BCL))`` (``g >= 0`` there) and :data:`NEWTON_ITERATIONS` iterations are
unrolled, so the solve is differentiable and of fixed cost. After them the residual
``|g(A)|`` is checked against :data:`NEWTON_TOLERANCE`; an unconverged solve returns NaN,
which the engine counts as a failed solve (the draw is rejected in a fit, excluded and
counted in predictions, and reported by the trust assessment), never as a number.

The engine still needs a state that says where on the axis an observation lies: a linear
"clock" (``d bcl/dt = 1`` from 0, exact solution ``bcl = t``) carries the cycle length to
``observe``, which evaluates the fixed point. No ODE is integrated.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import twin_uq as tq
from twin_uq.errors import UnavailableError

#: Newton iterations unrolled for the fixed point (monotone convergence, see the module text).
NEWTON_ITERATIONS = 40
#: Largest accepted residual |APD - f(BCL - APD)| (ms) after the iterations.
NEWTON_TOLERANCE = 1e-6


def _restitution(di, tau_close, tau_open, h_min):
    """``f(DI)`` (ms) and its slope ``f'(DI)`` (dimensionless); ``di >= 0``."""
    e = (1.0 - h_min) * jnp.exp(-di / tau_open)
    apd = tau_close * jnp.log((1.0 - e) / h_min)
    slope = tau_close / tau_open * e / (1.0 - e)
    return apd, slope


def steady_state(bcl, tau_close, tau_open, h_min):
    """Steady-state APD, restitution slope there, and the Newton residual at ``bcl``.

    Parameters
    ----------
    bcl
        Basic cycle length(s) (ms), > 0; broadcast with the parameters.
    tau_close, tau_open
        Closing and opening time constants of the gate (ms).
    h_min
        Gate value at which the plateau ends (dimensionless, in (0, 1)).

    Returns
    -------
    apd, slope, residual
        ``APD*`` (ms) with ``APD* = f(bcl - APD*)``, ``f'(bcl - APD*)`` (alternans when
        above 1), and ``|APD* - f(bcl - APD*)|`` (ms) after :data:`NEWTON_ITERATIONS`
        iterations. ``apd`` and ``slope`` are NaN where the residual exceeds
        :data:`NEWTON_TOLERANCE`.
    """
    bcl = jnp.asarray(bcl, dtype=float)
    first, _ = _restitution(bcl, tau_close, tau_open, h_min)
    start = jnp.minimum(bcl, first)

    def newton(_, a):
        f, s = _restitution(bcl - a, tau_close, tau_open, h_min)
        return a - (a - f) / (1.0 + s)

    apd = jax.lax.fori_loop(0, NEWTON_ITERATIONS, newton, start)
    f, slope = _restitution(bcl - apd, tau_close, tau_open, h_min)
    residual = jnp.abs(apd - f)
    ok = residual <= NEWTON_TOLERANCE
    return jnp.where(ok, apd, jnp.nan), jnp.where(ok, slope, jnp.nan), residual


class MitchellSchaefferRestitution(tq.Model):
    """Steady-state APD90 against pacing cycle length (the "time" axis is the BCL, ms)."""

    name = "mitchell_schaeffer_restitution"
    states = (
        "bcl",  # the pacing cycle length (ms) of the observation: a clock, bcl = t
        "clock_rate",  # constant 1 (ms per ms): drives the clock, keeps the system linear
    )

    parameters = (
        tq.Parameter(
            "tau_close",
            "ms",
            140.0,
            "closing time constant of the gate; scales every APD (max APD = tau_close·ln(1/h_min))",
            prior_sd=0.5,
            bsv_prior_scale=0.3,
            valid_range=(30.0, 600.0),
        ),
        tq.Parameter(
            "tau_open",
            "ms",
            150.0,
            "recovery (opening) time constant of the gate; how fast APD recovers with DI",
            prior_sd=0.7,
            bsv_prior_scale=0.4,
            valid_range=(10.0, 1000.0),
        ),
        tq.Parameter(
            "h_min",
            "1",
            0.1,
            "gate value at which the plateau ends (4·tau_in/tau_out of the cell model)",
            prior_sd=1.0,
            bsv_prior_scale=0.3,
            valid_range=(0.001, 0.9),
            scale="logit",
        ),
    )
    outputs = (
        tq.Output(
            "apd90",
            "ms",
            "steady-state action potential duration at 90 % repolarisation",
            error="additive",
            clinical_range=(150.0, 450.0),
            sigma_prior_scale=(10.0, 0.05),
        ),
    )
    # Exact: the only "dynamics" is the linear clock bcl = t; the fixed point is solved in
    # observe() by a fixed number of Newton iterations (see the module text).
    solver = tq.SolverSettings(method="exact")

    card = tq.ModelCard(
        summary="APD restitution (Mitchell-Schaeffer map): steady-state APD90 against "
        "pacing cycle length; the 'time' axis is the cycle length (ms).",
        equations=(
            "AXIS: 'time' = basic (pacing) cycle length BCL in ms, not time.\n"
            "f(DI) = tau_close·ln[(1 - (1 - h_min)·exp(-DI/tau_open))/h_min]\n"
            "APD* = f(BCL - APD*)   (steady state of APD_{n+1} = f(BCL - APD_n); "
            f"Newton, {NEWTON_ITERATIONS} iterations from min(BCL, f(BCL)), "
            f"residual <= {NEWTON_TOLERANCE:g} ms else a failed solve)\n"
            "restitution slope s = f'(BCL - APD*); APD alternans when s > 1\n"
            "clock: d bcl/dt = 1, bcl(0) = 0 (carries the cycle length to the observation)"
        ),
        time_unit="ms",  # of the axis, which is the pacing cycle length (see equations)
        assumptions=(
            "The 'time' column of the data holds the pacing cycle length (ms) of each "
            "steady-state APD measurement; one row per cycle length.",
            "Each measurement is at steady state (enough beats at that cycle length).",
            "APD depends on the preceding diastolic interval only (no memory beyond one "
            "beat), as in the Mitchell-Schaeffer map.",
            "The period-1 fixed point is unstable (alternans) when the restitution slope "
            "at it exceeds 1.",
        ),
        limitations=(
            "APD is not the clinical QT interval; restitution of one site, not of the "
            "whole heart; no conduction velocity restitution, no spatial dispersion.",
            "Alternans from calcium cycling or from memory (several beats) is not "
            "represented: the slope > 1 criterion is necessary-type evidence from a "
            "one-dimensional map, not a complete arrhythmia model.",
            "2:1 block at cycle lengths shorter than the APD is not modelled.",
        ),
        references=(
            "Mitchell CC, Schaeffer DG. A two-current model for the dynamics of cardiac "
            "membrane. Bull Math Biol. 2003;65(5):767-793.",
            "Nolasco JB, Dahlen RW. A graphic method for the study of alternation in "
            "cardiac action potentials. J Appl Physiol. 1968;25(2):191-196.",
            "Koller ML, Riccio ML, Gilmour RF Jr. Dynamic restitution of action potential "
            "duration during electrical alternans and ventricular fibrillation. Am J "
            "Physiol. 1998;275(5):H1635-H1642.",
        ),
    )

    def linear_system(self, theta):
        return jnp.array([[0.0, 1.0], [0.0, 0.0]])

    def transition(self, theta, dt):
        """``exp(A dt) = [[1, dt], [0, 1]]`` and its integral ``[[dt, dt²/2], [0, dt]]``."""
        one, zero = jnp.ones_like(dt), jnp.zeros_like(dt)
        phi = jnp.stack([jnp.stack([one, dt]), jnp.stack([zero, one])])
        psi = jnp.stack([jnp.stack([dt, dt**2 / 2]), jnp.stack([zero, dt])])
        return phi, psi

    def y0(self, theta, covariates):
        one = jnp.ones_like(jnp.asarray(theta["tau_close"]))
        return jnp.stack([0.0 * one, one])

    def observe(self, y, theta):
        apd, _, _ = steady_state(y[0], theta["tau_close"], theta["tau_open"], theta["h_min"])
        return apd[None]


def restitution_slopes(theta: dict[str, np.ndarray], bcl: float) -> np.ndarray:
    """Restitution slope ``f'(DI*)`` at the steady state of ``bcl`` for each parameter draw.

    ``theta`` maps each parameter name to an ``(S,)`` array (e.g. a twin's posterior
    draws); NaN where the fixed point did not converge.
    """
    _, slope, _ = steady_state(
        bcl,
        jnp.asarray(theta["tau_close"]),
        jnp.asarray(theta["tau_open"]),
        jnp.asarray(theta["h_min"]),
    )
    return np.asarray(slope)


def alternans_probability(twin, bcl: float) -> dict[str, float]:
    """Posterior probability of APD alternans (restitution slope > 1) at cycle length ``bcl``.

    Counted over the twin's posterior parameter draws (``twin.theta``), with its Monte
    Carlo standard error ``sqrt(p (1 - p) / ess)``, ``ess`` the effective sample size of
    the indicator over the chains (the number of draws when it cannot be estimated).

    Returns
    -------
    dict
        ``probability``, ``mcse``, ``ess``, ``n_draws`` (draws used), ``n_failed``
        (draws whose fixed point did not converge: excluded and counted, never imputed),
        ``slope_median``, ``slope_lower``, ``slope_upper`` (90 % interval of the slope).
    """
    import arviz_stats as azs  # the library's ESS, as the twin's own probabilities use

    names = twin.model.parameter_names
    theta = {n: np.asarray(twin.theta)[:, k] for k, n in enumerate(names)}
    slope = restitution_slopes(theta, bcl)
    ok = np.isfinite(slope)
    hit = (slope[ok] > 1.0).astype(float)
    n = hit.size
    if n == 0:
        raise UnavailableError(
            f"Patient {twin.patient_id}: the steady state at BCL {bcl:g} ms did not converge "
            "for any posterior draw."
        )
    p = float(hit.mean())
    ess = float(n)
    chains = int(twin.n_chains)
    if ok.all() and chains >= 1 and n % chains == 0 and 0.0 < p < 1.0:
        est = float(azs.ess(hit.reshape(chains, -1)))
        ess = min(est, float(n)) if np.isfinite(est) else float(n)
    q = np.quantile(slope[ok], [0.5, 0.05, 0.95])
    return {
        "probability": p,
        "mcse": float(np.sqrt(p * (1.0 - p) / ess)),
        "ess": ess,
        "n_draws": n,
        "n_failed": int((~ok).sum()),
        "slope_median": float(q[0]),
        "slope_lower": float(q[1]),
        "slope_upper": float(q[2]),
    }
