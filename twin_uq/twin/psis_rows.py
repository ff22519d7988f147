"""Pareto-smoothed importance weights for many rows at once, equal to arviz-stats' row by row.

``arviz_stats.base.array_stats.psislw`` smooths one row of log weights at a time in Python
(about 3 ms a row); the pre-posterior analysis of ``next_measurement`` smooths thousands of
rows (candidate times x imagined measurements). :func:`psis_rows` does the same arithmetic
on all rows together: the same operations in the same order (sorting, the Zhang-Stephens
fit of the generalised Pareto tail with its prior, the quantile function, the
normalisation), so that every row comes out bit for bit as arviz-stats gives it
(tests/twin/test_psis_rows.py checks that). Rows that reach one of arviz-stats' special
cases (a tail too flat to fit, a non-positive scale, a shape of exactly 0) are handed to
arviz-stats itself.
"""

from __future__ import annotations

import numpy as np
from arviz_stats.base import array_stats
from scipy.special import logsumexp

__all__ = ["psis_rows"]

_PRIOR_BS = 3
_PRIOR_K = 10


def psis_rows(log_ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed log weights and k-hat of each row, as ``array_stats.psislw(-log_ratios)``.

    Parameters
    ----------
    log_ratios
        ``(R, S)`` log importance ratios (log weights up to a constant), finite.

    Returns
    -------
    ``(R, S)`` smoothed log weights, normalised (log-sum-exp 0 in each row), and ``(R,)``
    Pareto k-hat (``inf`` / NaN in arviz-stats' degenerate cases).
    """
    lw = np.array(log_ratios, dtype=float)
    R, S = lw.shape
    # arviz-stats: r_eff = 1, right tail; 3 sqrt(S) tail draws above 225 draws, else S / 5
    n_tail = np.floor(3 * S**0.5) if S > 225 else np.floor(S / 5)
    if R == 0 or n_tail < 5:
        return _arviz_rows(lw, np.arange(R), np.empty_like(lw), np.empty(R))
    lw = lw - np.max(lw, axis=1, keepdims=True)
    tail_ids = np.arange(S - n_tail, S, dtype=int)
    ordered = np.argsort(lw, axis=1)
    draws_tail = np.take_along_axis(lw, ordered[:, tail_ids], axis=1)  # (R, n) ascending
    cutoff = np.take_along_axis(lw, ordered[:, tail_ids[:1] - 1], axis=1)  # (R, 1)
    max_tail = draws_tail.max(axis=1, keepdims=True)
    min_tail = draws_tail.min(axis=1, keepdims=True)
    special = (np.abs(max_tail - min_tail) < np.finfo(float).tiny)[:, 0]
    x = np.exp(draws_tail) - np.exp(cutoff)  # the tail above the cutoff, (R, n)
    kappa, sigma = _gpdfit_rows(x, special)
    special |= ~np.isfinite(kappa) | ~(sigma > 0) | (kappa == 0)
    ok = ~special
    p = np.arange(0.5, n_tail) / n_tail
    k, s = kappa[ok, None], sigma[ok, None]
    q = np.exp(cutoff[ok]) + s * np.expm1(-k * np.log1p(-p)) / k
    smoothed = np.log(q)
    smoothed = np.where(smoothed > max_tail[ok], max_tail[ok], smoothed)
    out = np.empty_like(lw)
    body = lw[ok]
    np.put_along_axis(body, ordered[ok][:, tail_ids], smoothed, axis=1)
    out[ok] = body - logsumexp(body, axis=1, keepdims=True)
    return _arviz_rows(np.asarray(log_ratios, float), np.flatnonzero(special), out, kappa)


def _gpdfit_rows(x: np.ndarray, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """arviz-stats' ``_gpdfit`` (unweighted) of each sorted row of ``x`` (R, n).

    Rows in ``skip``, and rows where the first quartile is not above the minimum, get NaN.
    """
    R, n = x.shape
    kappa, sigma = np.full(R, np.nan), np.full(R, np.nan)
    m_est = 30 + int(n**0.5)
    xstar = x[:, int((n / 4 + 0.5) - 1)]
    fit = ~skip & (xstar > x[:, 0])
    if not fit.any():
        return kappa, sigma
    xf = x[fit]
    b_ary = 1 - np.sqrt(m_est / (np.arange(1, m_est + 1, dtype=float) - 0.5))
    b_ary = b_ary[None, :] / (_PRIOR_BS * xstar[fit, None])
    b_ary += 1 / xf[:, -1:]
    k_ary = np.mean(np.log1p(-b_ary[:, :, None] * xf[:, None, :]), axis=2)  # (F, m)
    len_scale = n * (np.log(-b_ary / k_ary) - k_ary - 1)
    w_theta = np.exp(len_scale - logsumexp(len_scale, axis=1, keepdims=True))
    real = w_theta >= 10 * np.finfo(float).eps
    full = real.all(axis=1)
    w = w_theta[full] / w_theta[full].sum(axis=1, keepdims=True)
    b_post = np.empty(xf.shape[0])
    b_post[full] = np.sum(b_ary[full] * w, axis=1)
    for r in np.flatnonzero(~full):  # negligible weights dropped row by row, as arviz-stats
        w = w_theta[r][real[r]]
        b_post[r] = np.sum(b_ary[r][real[r]] * (w / w.sum()))
    k = np.mean(np.log1p(-b_post[:, None] * xf), axis=1)
    s = -k / b_post
    k = (n * k + _PRIOR_K * 0.5) / (n + _PRIOR_K)
    s = np.where(np.isnan(k), np.nan, s)
    k = np.where(np.isnan(k), np.inf, k)
    kappa[fit], sigma[fit] = k, s
    return kappa, sigma


def _arviz_rows(
    log_ratios: np.ndarray, rows: np.ndarray, out: np.ndarray, khat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``rows`` of ``out`` and ``khat`` with arviz-stats' own result (its special cases)."""
    khat = np.array(khat, dtype=float)
    if rows.size:
        # arviz-stats takes log-likelihood-like input: the log ratios are its negative.
        slw, k = array_stats.psislw(-log_ratios[rows], axis=-1)
        out[rows] = np.asarray(slw)
        khat[rows] = np.asarray(k)
    return out, khat
