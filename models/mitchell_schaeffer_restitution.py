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

Parameters. A restitution protocol pins down the height of the curve and how far it
falls over the measured cycle lengths; the gate constants ``tau_close`` and ``h_min``
trade off almost exactly against each other along it (towards ``h_min -> 1``,
``tau_close -> inf``: local correlations of 0.98-1.0 in least-squares fits to
Fenton-Karma restitution curves), which left a cohort fit in those parameters
unconverged. The model is therefore fitted in

* ``apd_slow``: the steady-state APD at :data:`BCL_SLOW` (1000 ms), close to a measured
  value;
* ``shortening``: where the steady-state APD at :data:`BCL_FAST` (500 ms) lies in the
  interval every Mitchell-Schaeffer map allows (:func:`fast_apd`), a fraction in (0, 1)
  so that no draw falls outside it;
* ``h_min``: the remaining shape (how the curve bends between and beyond the reference
  cycle lengths), which the data inform least and the population prior most;

and the gate constants follow inside the model (:func:`gate_parameters`: ``tau_open`` by
a bracketed one-dimensional root, ``tau_close`` in closed form). Every draw of the three
is a valid map; ``tau_open`` and ``tau_close`` are NaN (a failed solve) only where the
root leaves its bracket (a ``shortening`` within about 1e-6 of 0 or 1).

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
#: The two reference cycle lengths (ms) at which the fitted parameters are defined.
BCL_SLOW = 1000.0
BCL_FAST = 500.0
#: Bisection steps for ``tau_open`` (on ``log tau_open`` over :data:`TAU_OPEN_BRACKET`) and
#: the bracket (ms): 64 halvings of a width of 18.4 leave 1e-18, below double precision.
BISECTION_STEPS = 64
TAU_OPEN_BRACKET = (0.01, 1.0e6)
#: Largest accepted relative residual of the APD at :data:`BCL_FAST` after the solve.
SHAPE_TOLERANCE = 1e-9


def _log_ratio(di, tau_open, h_min):
    """``ln[(1 - (1 - h)·exp(-DI/tau_open))/h]`` (> 0), accurate also for ``h`` near 1."""
    return jnp.log1p(-(1.0 - h_min) * jnp.expm1(-di / tau_open) / h_min)


def _restitution(di, tau_close, tau_open, h_min):
    """``f(DI)`` (ms) and its slope ``f'(DI)`` (dimensionless); ``di >= 0``."""
    e = (1.0 - h_min) * jnp.exp(-di / tau_open)
    apd = tau_close * _log_ratio(di, tau_open, h_min)
    # 1 - e written as h - (1 - h)·expm1(-DI/tau_open): no cancellation when h is near 1.
    slope = tau_close / tau_open * e / (h_min - (1.0 - h_min) * jnp.expm1(-di / tau_open))
    return apd, slope


def fast_apd(apd_slow, shortening):
    """Steady-state APD (ms) at :data:`BCL_FAST` from the APD at :data:`BCL_SLOW`.

    ``shortening`` in (0, 1) places it in the interval every Mitchell-Schaeffer map
    allows: ``apd_slow·BCL_FAST/BCL_SLOW < APD_fast < min(apd_slow, BCL_FAST)`` (the map
    increases, is concave and passes through 0, so ``APD/DI`` is larger at the shorter
    diastolic interval; and an APD longer than the cycle length is no 1:1 steady state).
    """
    low = apd_slow * (BCL_FAST / BCL_SLOW)
    high = jnp.minimum(apd_slow, BCL_FAST)
    return high - shortening * (high - low)


def gate_parameters(apd_slow, shortening, h_min):
    """The Mitchell-Schaeffer ``(tau_close, tau_open, h_min)`` of the fitted parameters.

    ``tau_open`` is the root in ``x = log tau_open`` of
    ``F(x) = ln L(DI_slow) - ln L(DI_fast) - ln(apd_slow/APD_fast)``, with
    ``L(DI) = ln[(1 - (1 - h)·exp(-DI/tau_open))/h]`` and ``DI = BCL - APD`` at the two
    reference cycle lengths: ``L(DI_slow)/L(DI_fast)`` increases with ``tau_open`` from 1
    (``tau_open -> 0``) to ``DI_slow/DI_fast`` (``tau_open -> inf``), the open interval
    that :func:`fast_apd` keeps the ratio ``apd_slow/APD_fast`` in, so the root is unique.
    It is found by :data:`BISECTION_STEPS` bisection steps (no derivative needed, fixed
    cost) and then carries its derivative by the implicit function theorem (one Newton
    step whose slope is held fixed: exact first derivatives at the root).
    ``tau_close = apd_slow / L(DI_slow)``. Where the root lies outside
    :data:`TAU_OPEN_BRACKET` (a shortening within about 1e-6 of 0 or 1), or the APD at the
    slow cycle length is not below it, ``tau_close`` and ``tau_open`` are NaN (a failed
    solve), never clipped values.
    """
    apd_slow, shortening, h_min = jnp.broadcast_arrays(
        jnp.asarray(apd_slow, dtype=float), jnp.asarray(shortening), jnp.asarray(h_min)
    )
    apd_fast = fast_apd(apd_slow, shortening)
    di_slow, di_fast = BCL_SLOW - apd_slow, BCL_FAST - apd_fast
    target = jnp.log(apd_slow) - jnp.log(apd_fast)

    def residual(x):
        to = jnp.exp(x)
        return (
            jnp.log(_log_ratio(di_slow, to, h_min))
            - jnp.log(_log_ratio(di_fast, to, h_min))
            - target
        )

    def bisect(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        below = residual(mid) < 0.0  # F increases with x: the root lies above mid
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo0, hi0 = (jnp.full_like(apd_slow, np.log(b)) for b in TAU_OPEN_BRACKET)
    ok_bracket = (residual(lo0) < 0.0) & (residual(hi0) > 0.0) & (di_slow > 0.0)
    lo, hi = jax.lax.stop_gradient(jax.lax.fori_loop(0, BISECTION_STEPS, bisect, (lo0, hi0)))
    x0 = 0.5 * (lo + hi)
    slope = jax.lax.stop_gradient(jax.grad(lambda x: jnp.sum(residual(x)))(x0))
    x = x0 - residual(x0) / slope
    tau_open = jnp.exp(x)
    tau_close = apd_slow / _log_ratio(di_slow, tau_open, h_min)
    # The solve's own check: the map through these gates reproduces APD_fast at DI_fast.
    check = tau_close * _log_ratio(di_fast, tau_open, h_min)
    ok = ok_bracket & (jnp.abs(check - apd_fast) <= SHAPE_TOLERANCE * apd_fast)
    return jnp.where(ok, tau_close, jnp.nan), jnp.where(ok, tau_open, jnp.nan), h_min


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

    # Fitted in what a restitution protocol measures (see the module text): the APD at a
    # slow and, through `shortening`, at a fast reference cycle length; `h_min` shapes the
    # curve between and beyond them. tau_close and tau_open follow (gate_parameters).
    parameters = (
        tq.Parameter(
            "apd_slow",
            "ms",
            300.0,
            f"steady-state APD90 at the slow reference cycle length ({BCL_SLOW:g} ms)",
            prior_sd=0.3,
            bsv_prior_scale=0.3,
            valid_range=(100.0, 600.0),
        ),
        tq.Parameter(
            "shortening",
            "1",
            0.2,
            f"APD90 shortening from {BCL_SLOW:g} to {BCL_FAST:g} ms pacing, as a fraction of "
            "the most a restitution map allows (APD_fast = apd_slow - shortening·"
            f"(apd_slow - apd_slow·{BCL_FAST / BCL_SLOW:g}) when apd_slow < {BCL_FAST:g} ms)",
            prior_sd=1.5,
            bsv_prior_scale=1.0,
            valid_range=(0.001, 0.999),
            scale="logit",
        ),
        tq.Parameter(
            "h_min",
            "1",
            0.3,
            "gate value at which the plateau ends (4·tau_in/tau_out of the cell model); "
            "shapes the curve between and beyond the reference cycle lengths",
            prior_sd=1.5,
            bsv_prior_scale=0.5,
            valid_range=(0.001, 0.999),
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
            f"fitted: apd_slow = APD* at BCL {BCL_SLOW:g} ms; APD* at {BCL_FAST:g} ms = "
            "hi - shortening·(hi - lo), lo = apd_slow·"
            f"{BCL_FAST / BCL_SLOW:g}, hi = min(apd_slow, {BCL_FAST:g}); h_min\n"
            "tau_open: root of L(DI_slow)/L(DI_fast) = apd_slow/APD_fast, "
            "L(DI) = ln[(1 - (1 - h_min)·exp(-DI/tau_open))/h_min] "
            f"(bisection, {BISECTION_STEPS} steps on log tau_open); "
            "tau_close = apd_slow/L(DI_slow)\n"
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
        one = jnp.ones_like(jnp.asarray(theta["apd_slow"]))
        return jnp.stack([0.0 * one, one])

    def observe(self, y, theta):
        gates = gate_parameters(theta["apd_slow"], theta["shortening"], theta["h_min"])
        apd, _, _ = steady_state(y[0], *gates)
        return apd[None]


def restitution_slopes(theta: dict[str, np.ndarray], bcl: float) -> np.ndarray:
    """Restitution slope ``f'(DI*)`` at the steady state of ``bcl`` for each parameter draw.

    ``theta`` maps each parameter name (``apd_slow``, ``shortening``, ``h_min``) to an
    ``(S,)`` array (e.g. a twin's posterior draws); NaN where a solve did not converge.
    """
    gates = gate_parameters(
        jnp.asarray(theta["apd_slow"]),
        jnp.asarray(theta["shortening"]),
        jnp.asarray(theta["h_min"]),
    )
    _, slope, _ = steady_state(bcl, *gates)
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
