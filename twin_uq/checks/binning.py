"""Bins of the x axis of a VPC, prediction correction and BLQ-aware percentiles.

Pure NumPy helpers of :mod:`twin_uq.checks.vpc`, tested one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from twin_uq.errors import InputError

__all__ = ["assign_bins", "auto_bins", "blq_percentiles", "prediction_correct"]

#: Up to this many distinct (rounded) x values, every value is its own bin (a nominal
#: sampling design); beyond, quantile bins.
_MAX_NOMINAL = 12


def auto_bins(x: np.ndarray, n_bins: int | None = None) -> np.ndarray:
    """Bin edges from the observed ``x`` (times or times after dose).

    * With at most 12 distinct values (rounded to 1e-6 relative), one bin per value: the
      edges lie halfway between neighbours (a nominal design keeps its sampling times).
    * Otherwise ``n_bins`` quantile bins (default ``min(10, max(3, n // 15))`` for ``n``
      observations), equal numbers of observations per bin; edges that coincide (many
      observations at one time) are merged.

    The first and last edges are the smallest and largest ``x``; a value on an inner edge
    belongs to the bin on its left.
    """
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not x.size:
        raise InputError("No observations to bin.")
    scale = max(float(np.max(np.abs(x))), 1e-12)
    keys, inverse = np.unique(np.round(x / scale, 6), return_inverse=True)
    if n_bins is None and keys.size <= _MAX_NOMINAL:
        uniq = np.array([x[inverse == i].mean() for i in range(keys.size)])
        inner = (uniq[1:] + uniq[:-1]) / 2
        return np.concatenate([[x.min()], inner, [x.max()]])
    n = n_bins if n_bins is not None else min(10, max(3, x.size // 15))
    if n < 1:
        raise InputError(f"The number of bins must be at least 1, got {n}.")
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n + 1)))
    return edges if edges.size >= 2 else np.array([x.min(), x.max()])


def assign_bins(x: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index of each ``x`` (``-1`` outside the edges or NaN); right-closed bins.

    Bin ``b`` holds ``edges[b] < x <= edges[b + 1]``; the first bin also holds
    ``x == edges[0]``.
    """
    x = np.asarray(x, float)
    edges = np.asarray(edges, float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise InputError(f"Bin edges must be at least two increasing numbers, got {edges}.")
    b = np.searchsorted(edges, x, side="left") - 1
    b = np.where(x == edges[0], 0, b)
    return np.where(np.isfinite(x) & (b >= 0) & (b < edges.size - 1), b, -1)


def prediction_correct(
    y: np.ndarray,
    pred: np.ndarray,
    pred_bin: np.ndarray,
    lower_bound: float = 0.0,
    log: bool = False,
) -> np.ndarray:
    """Prediction-corrected values (Bergstrand et al. 2011, AAPS J 13:143).

    ``pcY = lb + (Y - lb) * (PRED_bin - lb) / (PRED - lb)`` with ``lb`` the lower bound of
    the data (0 for concentrations: then ``pcY = Y * PRED_bin / PRED``); for data on the log
    scale (``log=True``) the correction is additive, ``pcY = Y + (PRED_bin - PRED)``. ``pred``
    and ``pred_bin`` broadcast with ``y`` (``pred_bin``: median ``PRED`` of each value's bin).
    """
    y, pred, pred_bin = (np.asarray(a, float) for a in (y, pred, pred_bin))
    if log:
        return y + (pred_bin - pred)
    return lower_bound + (y - lower_bound) * (pred_bin - lower_bound) / (pred - lower_bound)


def blq_percentiles(
    y: np.ndarray, below: np.ndarray, lloq: float, q: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles of values with some censored below a limit, along the last axis.

    Censored values rank lowest: they are set to ``lloq`` and the percentile is computed
    as usual (linear interpolation); a percentile whose level does not exceed the fraction
    of censored values lies below the limit, is returned as ``lloq`` and flagged. NaN
    values (padding, failed solves) are left out.

    Parameters
    ----------
    y, below
        ``(..., n)`` values and whether each is censored below the limit.
    lloq
        The limit (the largest limit of the bin when they differ); ``-inf``: no censoring.
    q
        Percentile levels in (0, 1).

    Returns
    -------
    values, flagged
        ``(len(q), ...)`` percentiles, and whether each lies below the limit.
    """
    y = np.asarray(y, float)
    below = np.asarray(below, bool) & np.isfinite(y)
    q = np.asarray(q, float)
    if np.isfinite(lloq):
        y = np.where(below, lloq, y)
    n = np.isfinite(y).sum(axis=-1)
    frac = np.where(n > 0, below.sum(axis=-1) / np.maximum(n, 1), np.nan)
    with np.errstate(invalid="ignore"):
        values = (
            np.nanquantile(y, q, axis=-1)
            if y.shape[-1]
            else np.full((len(q), *y.shape[:-1]), np.nan)
        )
    flagged = (frac[None, ...] >= q.reshape((-1,) + (1,) * frac.ndim)) & (frac[None, ...] > 0)
    if np.isfinite(lloq):
        values = np.where(flagged, lloq, values)
    return values, flagged
