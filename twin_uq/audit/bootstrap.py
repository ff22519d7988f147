"""Bayesian bootstrap over patients (Rubin 1981): Dirichlet weights, pure numpy.

A group statistic (a mean or a median of per-patient values) is recomputed under
``Dirichlet(1, …, 1)`` weights on the group's patients; the spread of the replicates is the
uncertainty of the statistic for the population the patients were drawn from. Groups are
resampled independently (normalised sub-vectors of one cohort-wide Dirichlet are
independent Dirichlets, so this is the same as weighting the whole cohort at once).

Binary per-patient values (a flag) get two pseudo-patients, one with value 0 and one with
value 1, each of Dirichlet weight 1/2. Without them a group where every patient is flagged
would give a share of exactly 1 with an interval of zero width; with them the share
follows the Jeffreys Beta(k + 1/2, n − k + 1/2) posterior, which is honest for small
groups.
"""

from __future__ import annotations

import numpy as np

from twin_uq.errors import InputError

__all__ = ["bayesian_bootstrap", "difference_interval", "weighted_median"]


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted median of ``values`` (n,) under each row of ``weights`` (B, n) → (B,).

    The smallest value whose cumulative weight reaches half the total (lower median).
    """
    values = np.asarray(values, float)
    order = np.argsort(values, kind="stable")
    v = values[order]
    w = np.asarray(weights, float)[:, order]
    cum = np.cumsum(w, axis=1)
    k = np.argmax(cum >= 0.5 * cum[:, -1:], axis=1)
    return v[k]


def bayesian_bootstrap(
    values: np.ndarray,
    stat: str = "mean",
    n_boot: int = 2000,
    rng: np.random.Generator | None = None,
    binary: bool = False,
) -> np.ndarray:
    """Bayesian-bootstrap replicates of a group statistic.

    Parameters
    ----------
    values
        Per-patient values, shape ``(n,)``; NaNs are dropped (patients without the metric).
    stat
        ``"mean"`` or ``"median"``.
    n_boot
        Number of replicates ``B``.
    rng
        Random generator (default: a fresh one seeded with 0).
    binary
        Values are 0/1: add the two half-weight pseudo-patients (module docstring).

    Returns
    -------
    ``(B,)`` replicates; all NaN when no patient has a value.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.full(n_boot, np.nan)
    alpha = np.ones(x.size)
    if binary:
        if not np.all((x == 0) | (x == 1)):
            raise InputError("binary=True needs values that are 0 or 1.")
        x = np.concatenate([x, [0.0, 1.0]])
        alpha = np.concatenate([alpha, [0.5, 0.5]])
    w = rng.gamma(alpha, size=(n_boot, x.size))
    if stat == "mean":
        return (w @ x) / w.sum(axis=1)
    if stat == "median":
        return weighted_median(x, w)
    raise InputError(f"Unknown statistic {stat!r}: use 'mean' or 'median'.")


def point_estimate(values: np.ndarray, stat: str = "mean") -> float:
    """The plain (equal-weight) statistic of the finite values; NaN when there are none."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan
    if stat == "mean":
        return float(x.mean())
    # lower median, as the weighted version with equal weights
    return float(np.sort(x)[(x.size - 1) // 2])


def difference_interval(
    a: np.ndarray,
    b: np.ndarray,
    stat: str = "mean",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    binary: bool = False,
) -> tuple[float, float, float]:
    """Statistic of group ``a`` minus that of group ``b`` with a central Bayesian-bootstrap interval.

    Returns
    -------
    estimate, lower, upper
        The equal-weight difference and the ``level`` central interval of the replicates.
    """
    rng = np.random.default_rng(seed)
    da = bayesian_bootstrap(a, stat, n_boot, rng, binary)
    db = bayesian_bootstrap(b, stat, n_boot, rng, binary)
    lo, hi = interval_of(da - db, level)
    return point_estimate(a, stat) - point_estimate(b, stat), lo, hi


def interval_of(draws: np.ndarray, level: float) -> tuple[float, float]:
    """Central ``level`` interval of replicates (NaN, NaN when they are NaN)."""
    draws = np.asarray(draws, float)
    if not np.all(np.isfinite(draws)):
        return np.nan, np.nan
    q = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(q[0]), float(q[1])
