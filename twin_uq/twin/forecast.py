"""Short-term forecasts and threshold risks of a twin, conditioned on the trace so far.

Given the posterior draws of a patient's parameters (which already condition on every
observation), the next values of an output differ from the model's prediction by the
residual. With an Ornstein-Uhlenbeck residual (``residual_correlation="ou"``) that
residual is remembered: at posterior draw ``s`` the standardised residual of the last
observation, ``r0 = (y_last - f_s(t_last)) / sd_s`` (on the log scale for lognormal),
predicts the one ``h`` later as ``Normal(rho r0, 1 - rho^2)``, ``rho = exp(-h / tau_s)``
(Markov: the earlier residuals add nothing once the last is known). A forecast is then
``f_s(t_last + h) + sd_s r``. With independent residuals ``rho = 0``: the plain posterior
predictive distribution.

Risks of crossing a threshold "at any time" are counted on simulated paths over a fine
grid: the model's trajectory plus, for an OU fit, a path of the correlated residual (the
part of the output the model does not explain, persistent in time). An independent
residual is measurement noise without a path: "at any time" then judges the noise-free
trajectory, and the probability at given times includes the noise.

Every result carries its interval (forecast) or Monte Carlo standard error (risk), and
what the twin's trust says: pass ``trust=`` (e.g. ``tq.assess_patient(post, id)``); the
result adds the caveats it knows itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import arviz_stats as azs
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.errors import InputError, UnavailableError
from twin_uq.inference.residual import (
    ErrorKind,
    ou_rho,
    residual_sd,
    standardised_residual,
    with_residual,
)

__all__ = ["Forecast", "RiskResult", "forecast_twin", "risk_twin"]


@dataclass(frozen=True)
class Forecast:
    """Forecast of one output at horizons after the last observation.

    Attributes
    ----------
    output, origin, origin_value
        The output, the time of the observation conditioned on and its value.
    horizons, times
        ``(H,)`` lead times (time units of the data) and the times they fall on.
    median, lower, upper
        ``(H,)`` median and central ``level`` interval of the forecast value (output units).
    draws
        ``(S, H)`` forecast values, one per posterior draw (parameters and residual).
    correlated
        Whether the residual carries information forward (OU fit) or not (independent).
    trust
        The twin's trust assessment as passed by the caller (``None``: not assessed).
    caveats
        What the twin knows limits this forecast (approximate fit, no data, ...).
    """

    output: str
    origin: float
    origin_value: float
    horizons: np.ndarray
    times: np.ndarray
    median: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    draws: np.ndarray
    correlated: bool
    patient_id: str
    trust: object | None = None
    caveats: tuple[str, ...] = ()

    def table(self) -> pd.DataFrame:
        """One row per horizon: time, median, lower, upper."""
        return pd.DataFrame(
            {
                "horizon": self.horizons,
                "time": self.times,
                "median": self.median,
                "lower": self.lower,
                "upper": self.upper,
            }
        ).set_index("horizon")

    def __str__(self) -> str:
        pct = f"{100 * self.level:.0f}%"
        rows = "; ".join(
            f"+{h:g}: {m:.3g} ({lo:.3g}-{hi:.3g})"
            for h, m, lo, hi in zip(self.horizons, self.median, self.lower, self.upper, strict=True)
        )
        return (
            f"{self.output} forecast for {self.patient_id} from t={self.origin:g} "
            f"(median, {pct} interval): {rows}. Trust: {_trust_text(self.trust, self.caveats)}"
        )


@dataclass(frozen=True)
class RiskResult:
    """Probability that an output crosses a threshold over a horizon after the last value.

    Attributes
    ----------
    probability, mcse
        P(crossing at any time within the horizon), counted on ``n_grid`` points per path,
        and its Monte Carlo standard error (over posterior draws, chains' autocorrelation
        counted).
    lower, upper
        ``probability -/+ 1.645 mcse``, clipped to [0, 1]: where 90 % of repeated
        simulations would put it.
    at_times
        Per requested time: ``probability``, ``mcse`` of the value being beyond the
        threshold there (residual included).
    """

    output: str
    threshold: float
    below: bool
    origin: float
    horizon: float
    probability: float
    mcse: float
    lower: float
    upper: float
    at_times: pd.DataFrame
    n_draws: int
    n_paths: int
    correlated: bool
    patient_id: str
    trust: object | None = None
    caveats: tuple[str, ...] = ()

    def __str__(self) -> str:
        side = "below" if self.below else "above"
        return (
            f"P({self.output} {side} {self.threshold:g} within {self.horizon:g} after "
            f"t={self.origin:g}) = {self.probability:.3f} (MCSE {self.mcse:.3f}) for "
            f"{self.patient_id}. Trust: {_trust_text(self.trust, self.caveats)}"
        )


def _trust_text(trust, caveats: tuple[str, ...]) -> str:
    status = getattr(trust, "status", None)
    head = "not assessed" if trust is None else str(getattr(status, "value", status) or trust)
    return head + ("" if not caveats else " (" + "; ".join(caveats) + ")")


def _origin(twin, output: str, origin: float | None, value: float | None):
    """``(t0, y0, from_data)``: the observation the forecast conditions on."""
    if (origin is None) != (value is None):
        raise InputError("origin and value go together: the time and value of a new reading.")
    if origin is not None:
        return float(origin), float(value), False
    obs = twin.observations
    mine = obs[(obs["output"] == output) & ~obs["censored"].astype(bool)]
    if not len(mine):
        raise UnavailableError(
            f"Patient {twin.patient_id}: no uncensored observation of {output!r} to forecast "
            "from; use twin.predict for a prediction from the population and dosing alone."
        )
    last = mine.sort_values("time", kind="stable").iloc[-1]
    return float(last["time"]), float(last["value"]), True


def _output_index(twin, output: str | None) -> tuple[int, str]:
    names = list(twin.model.output_names)
    if output is None:
        if len(names) > 1:
            raise InputError(f"Name the output to forecast: one of {names}.")
        output = names[0]
    if output not in names:
        raise InputError(f"Unknown output {output!r}; the model's outputs are {names}.")
    k = names.index(output)
    if int(twin.error_code[k]) == ErrorKind.STUDENT_T:
        raise UnavailableError(
            f"Forecasts of {output!r}: Student-t residuals are not supported; refit with a "
            "Gaussian error model (and residual_correlation='ou' for dense traces)."
        )
    return k, output


def _paths(twin, k, t0, y0, offsets, n_paths, draws, seed):
    """Noise-free ``f`` ``(S, N)`` and paths ``(S, M, N)`` at ``t0 + offsets`` (offsets[0] = 0).

    The residual at ``t0`` is fixed to the observed one; later points follow the OU
    conditional law (independent Normal noise where the fit has no correlation).
    """
    times = t0 + np.asarray(offsets, float)
    ds = twin.predict(times, draws=draws, seed=seed)
    idx = ds["draw"].values
    f = np.asarray(ds["f"].values[:, :, k])  # (S, N)
    tau = np.zeros(idx.size) if twin.posterior.tau is None else twin.posterior.tau[idx, k]
    y = _noisy_paths(
        jax.random.key(seed),
        jnp.asarray(f),
        jnp.asarray(float(y0)),
        jnp.asarray(int(twin.error_code[k])),
        jnp.asarray(twin.add[idx, k]),
        jnp.asarray(twin.prop[idx, k]),
        jnp.asarray(tau),
        jnp.asarray(offsets, float),
        int(n_paths),
    )
    return f, np.asarray(y), idx, twin.posterior.tau is not None


@functools.partial(jax.jit, static_argnums=(8,))
def _noisy_paths(key, f, y0, code, a, b, tau, offsets, n_paths):
    """``(S, M, N)`` values ``f + sd r`` (lognormal: ``f exp(b r)``), ``r`` an OU path from r0.

    ``f`` ``(S, N)`` at ``offsets`` (first 0: the reading ``y0``), residual parameters
    ``(S,)`` per draw; ``r0`` is the reading's standardised residual under each draw.
    """
    a, b = a[:, None], b[:, None]
    r0, _ = standardised_residual(code, y0, f[:, :1], a, b)
    S, N = f.shape
    # The offsets are sorted and one series: a sequential scan over time is far cheaper
    # than the general (sort + associative scan) ou_noise on S x M x N elements.
    rho = ou_rho(jnp.diff(offsets)[:, None], tau[None, :])  # (N-1, S)
    eps = jax.random.normal(key, (N - 1, S, n_paths))

    def step(prev, x):
        rho_j, eps_j = x
        new = rho_j[:, None] * prev + jnp.sqrt(1.0 - rho_j**2)[:, None] * eps_j
        return new, new

    start = jnp.broadcast_to(r0, (S, n_paths))
    _, later = jax.lax.scan(step, start, (rho, eps))
    r = jnp.concatenate([start[None], later]).transpose(1, 2, 0)  # (S, M, N)
    sd = residual_sd(code, f, a, b)[:, None, :]
    return with_residual(code, f[:, None, :], sd * r)


def _caveats(twin, correlated: bool, from_data: bool) -> tuple[str, ...]:
    out = []
    if twin.approximate:
        out.append("approximate fit")
    if twin.population_only:
        out.append("no data of this patient: population forecast")
    if not correlated:
        out.append("independent residuals: the last value's deviation is not carried forward")
    if not from_data:
        out.append("conditioned on a reading not in the fit (parameters not updated by it)")
    return tuple(out)


def _check_offsets(values, name: str) -> np.ndarray:
    h = np.atleast_1d(np.asarray(values, dtype=float))
    if h.size == 0 or not np.all(np.isfinite(h)) or np.any(h <= 0):
        raise InputError(f"{name} must be positive, finite lead times; got {values!r}.")
    return h


def forecast_twin(
    twin,
    horizons: Sequence[float],
    output: str | None = None,
    level: float = 0.9,
    *,
    origin: float | None = None,
    value: float | None = None,
    draws: int | None = None,
    seed: int = 0,
    trust: object | None = None,
) -> Forecast:
    """Forecast ``output`` at ``horizons`` after the last observation (``twin.forecast``).

    ``origin`` and ``value``: condition on a reading not in the twin's data instead (its
    residual is carried forward; the parameters are not updated by it: use
    ``twin.update`` for that). ``draws``: evenly thinned posterior draws (default all);
    each draw gives one forecast value per horizon.
    """
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level}.")
    h = _check_offsets(horizons, "horizons")
    k, name = _output_index(twin, output)
    t0, y0, from_data = _origin(twin, name, origin, value)
    offsets = np.concatenate([[0.0], h])
    _, y, _, correlated = _paths(twin, k, t0, y0, offsets, 1, draws, seed)
    values = y[:, 0, 1:]  # (S, H)
    a = (1 - level) / 2
    med, lo, hi = np.quantile(values, [0.5, a, 1 - a], axis=0)
    return Forecast(
        output=name,
        origin=t0,
        origin_value=y0,
        horizons=h,
        times=t0 + h,
        median=med,
        lower=lo,
        upper=hi,
        level=level,
        draws=values,
        correlated=correlated,
        patient_id=twin.patient_id,
        trust=trust,
        caveats=_caveats(twin, correlated, from_data),
    )


def _mcse(p_draw: np.ndarray, n_chains: int, all_draws: bool) -> tuple[float, float]:
    """``(mean, mcse)`` of per-draw probabilities, with the chains' effective sample size."""
    n = p_draw.size
    p = float(p_draw.mean())
    ess = float(n)
    if all_draws and n_chains >= 1 and n % n_chains == 0 and np.ptp(p_draw) > 0:
        e = float(azs.ess(p_draw.reshape(n_chains, -1)))
        ess = min(e, float(n)) if np.isfinite(e) else float(n)
    sd = float(p_draw.std(ddof=1)) if n > 1 else 0.0
    return p, sd / np.sqrt(ess)


def risk_twin(
    twin,
    threshold: float,
    below: bool = True,
    horizon: float = 120.0,
    output: str | None = None,
    *,
    times: Sequence[float] | None = None,
    n_grid: int = 61,
    n_paths: int = 32,
    origin: float | None = None,
    value: float | None = None,
    draws: int | None = None,
    seed: int = 0,
    trust: object | None = None,
) -> RiskResult:
    """P(``output`` below (or above) ``threshold`` within ``horizon`` after the last value.

    "At any time" is counted on ``n_grid`` evenly spaced points of ``n_paths`` simulated
    paths per posterior draw (see the module text for what a path includes);
    ``times`` (lead times, default the horizon's end) get the probability at that time,
    residual included. The Monte Carlo standard error is over posterior draws (each
    draw's probability estimated from its paths).
    """
    h = _check_offsets([horizon], "horizon")[0]
    at = _check_offsets([h] if times is None else times, "times")
    if n_grid < 2 or n_paths < 1:
        raise InputError(f"n_grid must be >= 2 and n_paths >= 1; got {n_grid}, {n_paths}.")
    k, name = _output_index(twin, output)
    t0, y0, from_data = _origin(twin, name, origin, value)
    grid = np.linspace(0.0, h, n_grid)
    offsets = np.unique(np.concatenate([grid, at]))
    f, y, idx, correlated = _paths(twin, k, t0, y0, offsets, n_paths, draws, seed)
    beyond = (lambda v: v < threshold) if below else (lambda v: v > threshold)
    on_grid = np.isin(offsets, grid) & (offsets > 0)
    if correlated:
        hit = beyond(y[:, :, on_grid]).any(axis=2).mean(axis=1)  # (S,)
    else:
        hit = beyond(f[:, on_grid]).any(axis=1).astype(float)
    all_draws = idx.size == twin.n_draws
    p, se = _mcse(hit, twin.n_chains, all_draws)
    rows = []
    for lead in at:
        j = int(np.flatnonzero(offsets == lead)[0])
        pj, sej = _mcse(beyond(y[:, :, j]).mean(axis=1), twin.n_chains, all_draws)
        rows.append({"horizon": lead, "time": t0 + lead, "probability": pj, "mcse": sej})
    return RiskResult(
        output=name,
        threshold=float(threshold),
        below=below,
        origin=t0,
        horizon=float(h),
        probability=p,
        mcse=se,
        lower=max(0.0, p - 1.645 * se),
        upper=min(1.0, p + 1.645 * se),
        at_times=pd.DataFrame(rows).set_index("horizon"),
        n_draws=int(idx.size),
        n_paths=int(n_paths),
        correlated=correlated,
        patient_id=twin.patient_id,
        trust=trust,
        caveats=_caveats(twin, correlated, from_data),
    )
