"""Stacking weights of predictive distributions (Yao, Vehtari, Simpson & Gelman 2018).

The weights ``w`` on the simplex maximise the leave-one-out log score of the mixture,
``sum_i log sum_k w_k exp(elpd_ik)``. arviz_stats.compare computes the same objective but
exponentiates ``elpd_ik`` as it is; a patient's leave-one-patient-out elpd is the sum over
its observations and falls below about -745 for rich records, where ``exp`` underflows to
0 and the objective breaks. Each row is therefore shifted by its largest value first (this
adds a constant to the objective and leaves its maximiser unchanged), then the objective is
maximised with scipy's SLSQP on the simplex, with its analytic gradient.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, minimize

from twin_uq.errors import InputError

__all__ = ["stacking_weights"]


def stacking_weights(elpd_i: np.ndarray) -> np.ndarray:
    """Stacking weights from pointwise leave-one-out elpd.

    Parameters
    ----------
    elpd_i
        ``(n, K)``: log predictive density of each of ``n`` held-out units (patients or
        observations) under each of ``K`` models (natural log).

    Returns
    -------
    ``(K,)`` non-negative weights summing to 1.
    """
    lp = np.asarray(elpd_i, dtype=float)
    if lp.ndim != 2 or lp.shape[0] < 1 or lp.shape[1] < 1:
        raise InputError(f"elpd_i must be (units, models) with both >= 1, got shape {lp.shape}.")
    if not np.all(np.isfinite(lp)):
        raise InputError("elpd_i must be finite for stacking (a unit has -inf or NaN elpd).")
    K = lp.shape[1]
    if K == 1:
        return np.ones(1)
    dens = np.exp(lp - lp.max(axis=1, keepdims=True))  # (n, K), each row's largest is 1

    def objective(w):
        return -np.sum(np.log(dens @ w))

    def gradient(w):
        return -np.sum(dens / (dens @ w)[:, None], axis=0)

    res = minimize(
        objective,
        np.full(K, 1.0 / K),
        jac=gradient,
        method="SLSQP",
        bounds=Bounds(np.zeros(K), np.ones(K)),
        constraints=LinearConstraint(np.ones((1, K)), 1.0, 1.0),
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()
