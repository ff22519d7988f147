"""The residual error contract: how an observation scatters around the model prediction.

One module holds all of it, so that fitting, posterior predictive checks, twin predictions,
twin updates, Dask workers and validation studies agree on one model:

* :class:`ErrorKind` names the error models (the integer value is the code carried in
  arrays such as ``FitData.error_code``);
* :func:`observation_loglik` scores an observation (the density, or the M3 probability of
  a below-limit point);
* :func:`sample_observations` draws a noisy replicate from exactly that density;
* :func:`per_output_residuals` turns a posterior draw's residual variables (``sigma_add``,
  ``sigma_prop``, ``nu``) into per-output vectors.

(The Normal and Student-t log-CDFs of the censored terms, with the Student-t's derivative
in ``nu``, are in :mod:`twin_uq.inference.residual_cdf`.)

Parameters per output (``a``: additive SD in output units, ``b``: proportional SD as a
fraction of the prediction, ``nu``: Student-t degrees of freedom):

* ``additive``      y ~ Normal(f, a)
* ``proportional``  y ~ Normal(f, b·|f|)
* ``combined``      y ~ Normal(f, sqrt(a² + b²·f²))
* ``lognormal``     log y ~ Normal(log f, b)           (b is the SD on the log scale)
* ``student_t``     y ~ StudentT(nu, f, sqrt(a² + b²·f²))  (robust to outliers)

Censored observations (NONMEM ``CENS``): below the limit (M3 method, Beal 2001)
``log P(Y < lloq)``, above it ``log P(Y > lloq)``, and with the interval's other bound
(``LIMIT``) ``log P(limit < Y < lloq)``; M4 (``LIMIT = 0``) conditions that on ``Y > 0``.

Every JAX function here is elementwise and pure, so it broadcasts over observations,
patients and posterior draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Literal

import jax
import jax.numpy as jnp
import jax.scipy.stats as jst
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from twin_uq.errors import InputError
from twin_uq.inference.residual_cdf import log_cdf


class ErrorKind(IntEnum):
    """Residual error model of one output; the value is the integer code used in arrays."""

    ADDITIVE = 0
    PROPORTIONAL = 1
    COMBINED = 2
    LOGNORMAL = 3
    STUDENT_T = 4

    @property
    def label(self) -> str:
        """The name used in model files, ``PopulationModel(error=...)`` and reports."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> ErrorKind:
        """The kind named ``label`` (e.g. ``"student_t"``); ValueError names the choices."""
        try:
            return cls[label.upper()]
        except KeyError:
            raise InputError(f"Unknown error model {label!r}; choose from {ERROR_KINDS}.") from None


#: The error-model names a user may write, as a type.
ErrorKindName = Literal["additive", "proportional", "combined", "lognormal", "student_t"]
#: The error-model names in code order.
ERROR_KINDS: tuple[str, ...] = tuple(k.label for k in ErrorKind)
#: Name -> integer code (``ErrorKind(code).label`` goes back).
ERROR_CODES: dict[str, int] = {k.label: int(k) for k in ErrorKind}

#: Floor on the residual SD and on predictions entering logs, in output units; keeps the
#: density finite when a prediction is exactly 0 (e.g. before the first dose).
_TINY = 1e-12

#: Degrees of freedom stored for a fit without Student-t outputs (never used by the
#: density; a Student-t with this many degrees of freedom is Normal to ~1e-6).
NU_UNUSED = 1e6

__all__ = [
    "ERROR_CODES",
    "ERROR_KINDS",
    "NU_UNUSED",
    "RESIDUAL_CORRELATIONS",
    "ErrorKind",
    "ErrorKindName",
    "observation_loglik",
    "ou_conditional",
    "ou_effective_observations",
    "ou_noise",
    "ou_observation_loglik",
    "ou_rho",
    "per_output_residuals",
    "residual_sd",
    "sample_correlated_observations",
    "sample_observations",
    "series_order",
    "standardised_residual",
    "uses_student_t",
    "with_residual",
]


def uses_student_t(codes: ArrayLike) -> bool:
    """Whether any of the (concrete, host-side) error codes is ``student_t``.

    The samplers take this as a static switch: the Student-t draw is a rejection loop,
    compiled and run only when an output needs it.
    """
    return bool(np.any(np.asarray(codes) == ErrorKind.STUDENT_T))


def residual_sd(
    code: Int[Array, ...],
    f: Float[Array, ...],
    a: Float[Array, ...],
    b: Float[Array, ...],
) -> Float[Array, ...]:
    """Residual SD on the scale the error model works on (log scale for ``lognormal``).

    All arguments broadcast elementwise; ``f`` and ``a`` in output units, ``b`` a fraction
    (the SD of log y for ``lognormal``). Floored at ``1e-12``.
    """
    # Floored inside the root: jnp.select differentiates every branch, and the root's
    # infinite slope at 0 (a proportional error at a prediction of exactly 0, e.g. before
    # a lag time or a dose) made the gradient of every error model NaN there.
    comb = jnp.sqrt(jnp.maximum(a**2 + (b * f) ** 2, _TINY**2))
    sd = jnp.select(
        [code == ErrorKind.ADDITIVE, code == ErrorKind.PROPORTIONAL, code == ErrorKind.LOGNORMAL],
        [a, b * jnp.abs(f), b],
        comb,  # combined and student_t
    )
    return jnp.maximum(sd, _TINY)


def observation_loglik(
    code: Int[Array, ...],
    y: Float[Array, ...],
    f: Float[Array, ...],
    a: Float[Array, ...],
    b: Float[Array, ...],
    nu: Float[Array, ...],
    censored: Array,
    lloq: Float[Array, ...],
    limit: Float[Array, ...] | None = None,
    *,
    student_t: bool = True,
) -> Float[Array, ...]:
    """Log-likelihood of observations ``y`` given predictions ``f`` (elementwise).

    Parameters
    ----------
    code
        Integer error-model code per observation (an :class:`ErrorKind` value).
    y, f
        Observed and predicted values (output units).
    a, b, nu
        Additive SD, proportional SD (fraction) and Student-t degrees of freedom per
        observation (gathered from the per-output parameters).
    censored, lloq
        Censoring and its limit (NONMEM ``CENS`` with the limit in ``DV``): ``censored`` is
        bool (True: below ``lloq``) or int (1: below ``lloq``, -1: above it, 0: not
        censored). Without ``limit`` a point below contributes ``log P(Y < lloq)`` (M3) and a
        point above ``log P(Y > lloq)``, under the same error model.
    limit
        The other bound of a censored point's interval (NONMEM/Monolix ``LIMIT``; NaN or
        ``None``: none): below-censoring gives ``log P(limit < Y < lloq)``, above-censoring
        ``log P(lloq < Y < limit)``. ``limit = 0`` below the limit is M4: for error models
        that allow negative values (all but ``lognormal``) the probability is conditioned
        on ``Y > 0``, ``log P(0 < Y < lloq) - log P(Y > 0)``.
    student_t
        Static switch, as in :func:`sample_observations`: with ``False`` no Student-t
        branch is compiled (``jnp.where`` evaluates every branch for every element, and the
        Student-t CDF through ``betainc`` dominates the cost over many draws) and any
        ``student_t`` element comes back NaN rather than silently Normal; ``nu`` is unused.

    Returns
    -------
    Log density (or log probability for censored points), the broadcast shape of the
    arguments.
    """
    m3_only = limit is None and jnp.issubdtype(jnp.result_type(censored), jnp.bool_)
    direction = censored
    censored = jnp.asarray(censored) != 0  # the same booleans when ``censored`` is bool
    sd = residual_sd(code, f, a, b)
    is_log = code == ErrorKind.LOGNORMAL
    f_pos = jnp.maximum(f, _TINY)
    y_pos = jnp.maximum(y, _TINY)
    centre = jnp.where(is_log, jnp.log(f_pos), f)
    value = jnp.where(is_log, jnp.log(y_pos), y)
    # Uncensored points may carry lloq = -inf; a -inf in the unused branch would still send
    # NaN through the gradient of jnp.where, so give those points a finite stand-in.
    lloq = jnp.where(censored & jnp.isfinite(lloq), lloq, f)
    limit_ = jnp.where(is_log, jnp.log(jnp.maximum(lloq, _TINY)), lloq)
    z = (value - centre) / sd
    zl = (limit_ - centre) / sd
    is_t = code == ErrorKind.STUDENT_T
    zl_c = jnp.where(censored, zl, 0.0)
    # The lognormal Jacobian -log(y) keeps it a density of y, not of log y.
    log_jac = jnp.where(is_log, jnp.log(y_pos), 0.0)
    if student_t:
        # Every branch of jnp.where is differentiated; feed unused branches harmless values
        # so that, e.g., a Student-t CDF far in its tail cannot put NaN into gradients.
        nu_t = jnp.where(is_t, nu, 10.0)
        normal = jst.norm.logpdf(z) - jnp.log(sd) - log_jac
        student = jst.t.logpdf(jnp.where(is_t, z, 0.0), nu_t) - jnp.log(sd)
        dens = jnp.where(is_t, student, normal)
    else:
        nu_t = None  # log_cdf: the Normal only
        # The same density spelled out as the twin update always computed it: it differs
        # from jst.norm.logpdf in the last bit, which NUTS warmup amplifies into other draws.
        normal = -0.5 * z**2 - 0.5 * jnp.log(2 * jnp.pi) - jnp.log(sd) - log_jac
        dens = jnp.where(is_t, jnp.nan, normal)
    cens = log_cdf(zl_c, is_t, nu_t)
    if m3_only:
        return jnp.where(censored, cens, dens)  # below-limit only: the M3 computation as ever
    above = jnp.asarray(direction) < 0
    # Above the limit: log P(Y > lloq) = log F(-zl) by symmetry of both distributions.
    cens = jnp.where(above, log_cdf(-zl_c, is_t, nu_t), cens)
    if limit is not None:
        cens = _interval(cens, code, censored, above, limit, centre, sd, zl_c, is_t, nu_t)
    return jnp.where(censored, cens, dens)


def _interval(
    cens: Array,
    code: Array,
    censored: Array,
    above: Array,
    limit: Array,
    centre: Array,
    sd: Array,
    zl: Array,
    is_t: Array,
    nu_t: Array | None,
) -> Array:
    """Censored log-probabilities with the interval's other bound ``limit`` where it is finite.

    ``zl`` is the standardised censoring limit (``lloq``); the interval is ``(limit, lloq)``
    below the limit and ``(lloq, limit)`` above it. M4 (``limit = 0`` below the limit)
    divides by ``P(Y > 0)`` for error models that allow negative values.
    """
    is_log = code == ErrorKind.LOGNORMAL
    has = jnp.asarray(censored).astype(bool) & jnp.isfinite(limit)
    other = jnp.where(has, limit, 0.0)
    other_ = jnp.where(is_log, jnp.log(jnp.maximum(other, _TINY)), other)
    zo = jnp.where(has, (other_ - centre) / sd, zl - 1.0)  # stand-in: a proper interval
    lo = jnp.where(above, zl, zo)
    hi = jnp.where(above, zo, zl)
    # log(F(hi) - F(lo)) in the tail where it is accurate: upper tails when lo > 0.
    upper = lo > 0
    big = jnp.where(upper, log_cdf(-lo, is_t, nu_t), log_cdf(hi, is_t, nu_t))
    small = jnp.where(upper, log_cdf(-hi, is_t, nu_t), log_cdf(lo, is_t, nu_t))
    # log(1 - exp(gap)), accurate for a narrow interval (gap near 0); gap < 0 for a proper
    # interval, and the floor keeps the log (and its gradient) finite.
    gap = jnp.minimum(small - big, -1e-300)
    interval = big + jnp.log(-jnp.expm1(gap))
    # M4: conditioned on Y > 0 (P(Y > 0) = F(centre / sd)); lognormal values are > 0 anyway.
    m4 = has & ~above & (other == 0) & ~is_log
    z0 = jnp.where(m4, centre / sd, 0.0)
    interval = interval - jnp.where(m4, log_cdf(z0, is_t, nu_t), 0.0)
    return jnp.where(has, interval, cens)


def sample_observations(
    key: jax.Array,
    code: Int[Array, ...],
    f: Float[Array, ...],
    a: Float[Array, ...],
    b: Float[Array, ...],
    nu: Float[Array, ...],
    *,
    student_t: bool = True,
) -> Float[Array, ...]:
    """One noisy replicate of every prediction, from the density :func:`observation_loglik` scores.

    Replicates are uncensored: the value an assay would report before any below-limit
    rule is applied.

    Parameters
    ----------
    key
        PRNG key. It is split once into ``(k_normal, k_t)``; a standard Normal of the
        broadcast shape is drawn from ``k_normal`` and, when ``student_t``, a standard
        Student-t of that shape from ``k_t``. Callers that drew the same way before get
        the same numbers for the same key.
    code
        Integer error-model code per element (an :class:`ErrorKind` value).
    f
        Predictions (output units).
    a, b, nu
        Additive SD (output units), proportional SD (fraction; the SD of log y for
        ``lognormal``) and Student-t degrees of freedom per element.
    student_t
        Static switch: whether any element may be ``student_t`` (see
        :func:`uses_student_t`). With ``False`` the Student-t draw is not compiled, and
        any ``student_t`` element comes back NaN rather than silently Normal.

    Returns
    -------
    Replicates with the broadcast shape of ``code, f, a, b, nu`` (output units; > 0 for
    ``lognormal``).
    """
    shape = jnp.broadcast_shapes(
        jnp.shape(code), jnp.shape(f), jnp.shape(a), jnp.shape(b), jnp.shape(nu)
    )
    sd = residual_sd(code, f, a, b)
    k_normal, k_t = jax.random.split(key)
    z = jax.random.normal(k_normal, shape)
    is_t = code == ErrorKind.STUDENT_T
    if student_t:
        z = jnp.where(is_t, jax.random.t(k_t, nu, shape), z)
    else:
        z = jnp.where(is_t, jnp.nan, z)
    return with_residual(code, f, z * sd)


def with_residual(
    code: Int[Array, ...], f: Float[Array, ...], noise: Float[Array, ...]
) -> Float[Array, ...]:
    """Values a residual ``noise`` away from predictions ``f`` (elementwise, broadcast).

    ``noise`` is on the error model's scale (a standardised draw times
    :func:`residual_sd`): added to ``f`` in output units, or for ``lognormal`` on the log
    scale around ``log f`` (``f exp(noise)``, ``f`` floored at ``1e-12``).
    """
    return jnp.where(code == ErrorKind.LOGNORMAL, jnp.maximum(f, _TINY) * jnp.exp(noise), f + noise)


def per_output_residuals(
    n_outputs: int,
    add_outputs: Sequence[int],
    sigma_add: Float[ArrayLike, "*B A"] | None,
    prop_outputs: Sequence[int],
    sigma_prop: Float[ArrayLike, "*B Q"] | None,
    nu: Float[ArrayLike, "*B"] | None,
) -> tuple[Float[Array, "*B O"], Float[Array, "*B O"], Float[Array, "*B"]]:
    """Per-output residual parameters from a draw's (or a batch of draws') residual sites.

    Parameters
    ----------
    n_outputs
        ``O``, the model's number of outputs.
    add_outputs, sigma_add
        Indices of the outputs with an additive SD, and their SDs ``(*B, A)`` in output
        units (``None`` exactly when there are no such outputs).
    prop_outputs, sigma_prop
        The same for the proportional (or log-scale) SDs ``(*B, Q)``.
    nu
        Student-t degrees of freedom ``(*B,)``, or ``None`` when no output is Student-t.

    Returns
    -------
    ``add``, ``prop`` ``(*B, O)`` (0 at outputs without that term) and ``nu`` ``(*B,)``
    (:data:`NU_UNUSED` when ``nu`` is ``None``). ``*B`` is any leading batch shape, e.g.
    ``()`` for one draw or ``(S,)`` for ``S`` draws.
    """
    for name, idx, value in (
        ("sigma_add", add_outputs, sigma_add),
        ("sigma_prop", prop_outputs, sigma_prop),
    ):
        if bool(len(idx)) != (value is not None):
            raise InputError(
                f"{name} must be given exactly when some output uses it; outputs {tuple(idx)}, "
                f"{name} {'missing' if value is None else 'given'}."
            )
    if sigma_add is not None:
        batch = jnp.shape(sigma_add)[:-1]
    elif sigma_prop is not None:
        batch = jnp.shape(sigma_prop)[:-1]
    else:
        batch = jnp.shape(nu) if nu is not None else ()
    add = jnp.zeros((*batch, n_outputs))
    prop = jnp.zeros((*batch, n_outputs))
    if sigma_add is not None:
        add = add.at[..., jnp.asarray(add_outputs)].set(sigma_add)
    if sigma_prop is not None:
        prop = prop.at[..., jnp.asarray(prop_outputs)].set(sigma_prop)
    nu_out = jnp.full(batch, NU_UNUSED) if nu is None else jnp.asarray(nu)
    return add, prop, nu_out


# ---- autocorrelated residuals: a continuous-time Ornstein-Uhlenbeck process -------------
#
# Within one patient and one output the standardised residuals r_j (``(y_j - f_j) / sd_j``,
# or ``(log y_j - log f_j) / b`` for lognormal) form a stationary Gaussian process with unit
# variance and corr(r_j, r_k) = exp(-|t_j - t_k| / tau): the marginal of every observation
# is the error model's, only the joint changes. AR(1) is the equally spaced special case
# (rho = exp(-dt / tau)). By the Markov property the joint density is the product of
# r_j | r_prev ~ Normal(rho_j r_prev, 1 - rho_j^2), O(n) per series.

#: Names of the residual correlation models (``PopulationModel(residual_correlation=...)``).
RESIDUAL_CORRELATIONS: tuple[str, ...] = ("none", "ou")


def ou_rho(dt: Float[Array, ...], tau: Float[Array, ...]) -> Float[Array, ...]:
    """Correlation ``exp(-dt / tau)`` of residuals ``dt`` apart; 0 where ``tau <= 0``.

    ``tau = 0`` is the independent model (any ``dt > 0``), so outputs without a
    correlation share the arithmetic with those that have one.
    """
    pos = tau > 0
    return jnp.where(pos, jnp.exp(-jnp.abs(dt) / jnp.where(pos, tau, 1.0)), 0.0)


def series_order(
    times: Float[Array, " N"], series: Int[Array, " N"], mask: Array
) -> tuple[Int[Array, " N"], Array, Float[Array, " N"]]:
    """The order that makes each series (output) a time-sorted run, and each point's lag.

    Returns ``order`` (N,) (indices into the inputs; padding last), ``has_prev`` (N,) bool
    in that order (the previous point belongs to the same series and both are real) and
    ``dt`` (N,) the time since that previous point (0 where none). Times are data, so the
    permutation is constant and gradients flow through the values only.
    """
    big = jnp.iinfo(jnp.int32).max
    key = jnp.where(mask, series, big)
    order = jnp.lexsort((times, key))
    t, s, m = times[order], key[order], jnp.asarray(mask)[order]
    same = (s[1:] == s[:-1]) & m[1:] & m[:-1]
    has_prev = jnp.concatenate([jnp.zeros(1, bool), same])
    dt = jnp.concatenate([jnp.zeros(1), t[1:] - t[:-1]])
    return order, has_prev, jnp.where(has_prev, dt, 0.0)


def standardised_residual(
    code: Int[Array, ...],
    y: Float[Array, ...],
    f: Float[Array, ...],
    a: Float[Array, ...],
    b: Float[Array, ...],
) -> tuple[Float[Array, ...], Float[Array, ...]]:
    """``(r, log_jac)``: the residual on the error model's scale divided by its SD.

    ``log_jac`` is ``-log sd`` (and ``-log y`` for lognormal): the log Jacobian from ``r``
    to ``y``, so that ``log p(y) = log p(r) + log_jac``.
    """
    sd = residual_sd(code, f, a, b)
    is_log = code == ErrorKind.LOGNORMAL
    y_pos = jnp.maximum(y, _TINY)
    centre = jnp.where(is_log, jnp.log(jnp.maximum(f, _TINY)), f)
    value = jnp.where(is_log, jnp.log(y_pos), y)
    return (value - centre) / sd, -jnp.log(sd) - jnp.where(is_log, jnp.log(y_pos), 0.0)


def ou_observation_loglik(
    code: Int[Array, " N"],
    y: Float[Array, " N"],
    f: Float[Array, " N"],
    a: Float[Array, " N"],
    b: Float[Array, " N"],
    times: Float[Array, " N"],
    series: Int[Array, " N"],
    mask: Array,
    tau: Float[Array, " N"],
) -> Float[Array, " N"]:
    """Log-likelihood of one patient's observations with OU-correlated residuals.

    Each entry is the conditional density of that observation given the previous one of
    its series (output) in time, so the entries sum to the joint log density; the first
    of a series (and every observation with ``tau = 0``) gets its marginal density, which
    equals :func:`observation_loglik`'s. Gaussian error models only (not ``student_t``)
    and no censoring: :func:`check_correlated_residuals` refuses those before a fit.

    Parameters
    ----------
    code, y, f, a, b
        As in :func:`observation_loglik`, one patient, ``(N,)``.
    times, series, mask
        Observation times (time units of the data), the series index (the output) and
        which entries are real (padding False; it scores 0).
    tau
        ``(N,)`` correlation time of each observation's output (time units); 0: independent.
    """
    r, log_jac = standardised_residual(code, y, f, a, b)
    order, has_prev, dt = series_order(times, series, mask)
    rs, tau_s = r[order], tau[order]
    prev = jnp.concatenate([jnp.zeros(1), rs[:-1]])
    rho = jnp.where(has_prev, ou_rho(dt, tau_s), 0.0)
    # 1 - rho^2 as -expm1(-2 dt / tau): accurate for lags much shorter than tau.
    live = has_prev & (tau_s > 0)
    var = -jnp.expm1(-2.0 * jnp.where(live, dt / jnp.where(live, tau_s, 1.0), jnp.inf))
    var = jnp.where(has_prev, var, 1.0)
    z = (rs - rho * prev) / jnp.sqrt(var)
    ll_sorted = jst.norm.logpdf(z) - 0.5 * jnp.log(var)
    ll = jnp.zeros_like(r).at[order].set(ll_sorted) + log_jac
    return jnp.where(mask, ll, 0.0)


def ou_noise(
    key: jax.Array,
    shape: tuple[int, ...],
    times: Float[Array, " N"],
    series: Int[Array, " N"],
    tau: Float[Array, "... N"],
    start: Float[Array, "... N"] | None = None,
    mask: Array | None = None,
) -> Float[Array, "... N"]:
    """Standardised OU residual paths ``(*B, N)``: unit variance, correlation ``exp(-dt/tau)``.

    ``times`` and ``series`` ``(N,)`` are shared by the batch ``shape[:-1]``; within a series
    the path runs forward in time. ``start`` (optional, broadcast to ``(*B, N)``): the
    value of each series' first point, taken as known instead of drawn (a forecast puts
    the last observed residual there and the future times after it). ``mask`` (N,): real
    points (padding gets independent draws and touches no real point).
    The recursion ``r_j = rho_j r_prev + sqrt(1 - rho_j^2) eps_j`` is a first-order linear
    recurrence, run as a parallel associative scan along the last axis.
    """
    mask = jnp.ones(times.shape, bool) if mask is None else mask
    order, has_prev, dt = series_order(times, series, mask)
    tau_s = jnp.broadcast_to(tau, shape)[..., order]
    rho = jnp.where(has_prev, ou_rho(dt, tau_s), 0.0)
    eps = jax.random.normal(key, shape)[..., order]
    innov = eps * jnp.sqrt(jnp.where(has_prev, 1.0 - rho**2, 1.0))
    if start is not None:  # each real series' first point is the known start
        first = ~has_prev & jnp.asarray(mask)[order]
        innov = jnp.where(first, jnp.broadcast_to(start, shape)[..., order], innov)

    def combine(left, right):
        (a1, b1), (a2, b2) = left, right
        return a1 * a2, a2 * b1 + b2

    _, path = jax.lax.associative_scan(combine, (rho, innov), axis=-1)
    return jnp.zeros(shape).at[..., order].set(path)


def sample_correlated_observations(
    key: jax.Array,
    code: Int[Array, "... N"],
    f: Float[Array, "... N"],
    a: Float[Array, "... N"],
    b: Float[Array, "... N"],
    times: Float[Array, " N"],
    series: Int[Array, " N"],
    tau: Float[Array, "... N"],
    mask: Array | None = None,
) -> Float[Array, "... N"]:
    """Noisy replicates with OU-correlated residuals (the density :func:`ou_observation_loglik`).

    The last axis is one patient's observations (``times``, ``series`` ``(N,)``); leading
    axes (draws) are independent. ``tau = 0`` gives independent Normal noise (not the same
    numbers as :func:`sample_observations` for a key: the fits without a correlation keep
    calling that one). Gaussian error models only. ``mask`` (N,): real points, as in
    :func:`ou_noise`.
    """
    shape = jnp.broadcast_shapes(
        jnp.shape(code), jnp.shape(f), jnp.shape(a), jnp.shape(b), jnp.shape(tau)
    )
    r = ou_noise(key, shape, times, series, tau, mask=mask)
    return with_residual(code, f, r * residual_sd(code, f, a, b))


def ou_effective_observations(times: np.ndarray, tau: float) -> float:
    """Effective number of independent observations of one series under an OU residual.

    ``1 + sum_j (1 - rho_j) / (1 + rho_j)`` over consecutive gaps (``rho_j =
    exp(-dt_j / tau)``): the information about a constant offset that ``n`` correlated
    observations carry, exact for equal spacing (AR(1)); ``n`` when ``tau = 0``, 1 when
    the points coincide. ``times`` need not be sorted.
    """
    t = np.sort(np.asarray(times, dtype=float))
    if t.size == 0:
        return 0.0
    if tau <= 0:
        return float(t.size)
    rho = np.exp(-np.diff(t) / tau)
    return float(1.0 + np.sum((1.0 - rho) / (1.0 + rho)))


def ou_conditional(
    r_last: Float[Array, ...], lag: Float[Array, ...], tau: Float[Array, ...]
) -> tuple[Float[Array, ...], Float[Array, ...]]:
    """Mean and variance of a standardised OU residual ``lag`` after one known to be ``r_last``.

    ``(rho r_last, 1 - rho^2)`` with ``rho = exp(-lag / tau)``: Gaussian conditioning of
    the unit-variance process (``tau = 0``: the marginal, ``(0, 1)``).
    """
    rho = ou_rho(lag, tau)
    return rho * r_last, 1.0 - rho**2
