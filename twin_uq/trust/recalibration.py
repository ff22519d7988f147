"""Logistic recalibration of the trust score: from the twin's own miss probability to a realised one.

The trust score ``p_miss`` (:mod:`twin_uq.trust.score`) is the twin's *own* probability that
its forecast misses the truth by more than the clinical margin. Where the posterior is too
narrow (Laplace / SVI fits) or the model is wrong for the patient (an unmodelled covariate
effect, outliers), the realised miss rate is larger than that, and the score ranks better
than it predicts. A recalibration maps the score, and optionally other per-patient numbers
(features), to a probability through

    logit p' = intercept + sum_j coefficient_j * feature_j,

with ``logit`` of a probability clipped to ``[eps, 1 - eps]`` (a score of exactly 0 or 1
from finitely many draws is not infinitely sure). The coefficients are fitted by maximum
likelihood (:func:`fit_logistic`) in a validation study with known truth and are only as
good as that study's domain: :class:`Recalibration` carries them with their provenance and
domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from twin_uq.errors import InputError

__all__ = ["Recalibration", "fit_logistic", "logit"]


def logit(p, eps: float = 1e-3) -> np.ndarray:
    """``log(p / (1 - p))`` of ``p`` clipped to ``[eps, 1 - eps]`` (NaN stays NaN)."""
    p = np.clip(np.asarray(p, float), eps, 1.0 - eps)
    return np.log(p / (1.0 - p))


def fit_logistic(
    X: np.ndarray, y: np.ndarray, *, ridge: float = 0.0, max_iter: int = 100
) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton steps.

    Parameters
    ----------
    X
        ``(N, K)`` design matrix (include a column of ones for an intercept).
    y
        ``(N,)`` binary outcome.
    ridge
        Optional L2 penalty on the coefficients (0: plain maximum likelihood).
    max_iter
        Newton steps at most (stops when the step is below 1e-10).

    Returns
    -------
    ``(K,)`` coefficients.
    """
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise InputError(f"fit_logistic: X {X.shape} and y {y.shape} do not match.")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise InputError("fit_logistic: X and y must be finite (drop rows with NaN first).")
    beta = np.zeros(X.shape[1])
    for _ in range(max_iter):
        mu = 1.0 / (1.0 + np.exp(-(X @ beta)))
        grad = X.T @ (y - mu) - ridge * beta
        hess = X.T @ (X * (mu * (1.0 - mu))[:, None]) + (ridge + 1e-12) * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


@dataclass(frozen=True)
class Recalibration:
    """A fitted map from the twin's own score (and features) to a realised miss probability.

    Attributes
    ----------
    intercept
        Intercept on the logit scale.
    coefficients
        Feature name -> coefficient on the logit scale. A feature named ``"logit:<name>"``
        enters as :func:`logit` of the value ``<name>`` (a probability); any other as is.
    eps
        Clip of probabilities before the logit.
    provenance
        Where the numbers come from (study, date, commit, outcome, patients).
    domain
        The models, scenarios and fit methods the coefficients were fitted on; outside them
        the recalibrated value is an extrapolation.
    """

    intercept: float
    coefficients: Mapping[str, float]
    eps: float = 1e-3
    provenance: Mapping[str, str] = field(default_factory=dict)
    domain: str = ""

    @property
    def inputs(self) -> list[str]:
        """The values :meth:`apply` needs (feature names without their ``logit:`` prefix)."""
        return [k.removeprefix("logit:") for k in self.coefficients]

    def design(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """``(N, 1 + K)`` design matrix (ones, then the features in order) from ``values``."""
        missing = [k for k in self.inputs if k not in values]
        if missing:
            raise InputError(f"recalibration needs {missing}; got {sorted(values)}.")
        cols = [
            logit(values[k.removeprefix("logit:")], self.eps)
            if k.startswith("logit:")
            else np.asarray(values[k], float)
            for k in self.coefficients
        ]
        n = np.broadcast(*cols).shape
        return np.column_stack([np.ones(n), *(np.broadcast_to(c, n) for c in cols)])

    def apply(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """The recalibrated probability for each row of ``values`` (NaN where an input is)."""
        beta = np.array([self.intercept, *self.coefficients.values()], float)
        return 1.0 / (1.0 + np.exp(-(self.design(values) @ beta)))

    @classmethod
    def fit(
        cls,
        values: Mapping[str, np.ndarray],
        outcome: np.ndarray,
        features: list[str],
        *,
        eps: float = 1e-3,
        provenance: Mapping[str, str] | None = None,
        domain: str = "",
    ) -> Recalibration:
        """Fit the coefficients of ``features`` (see ``coefficients``) to a binary outcome."""
        shell = cls(0.0, dict.fromkeys(features, 0.0), eps)
        beta = fit_logistic(shell.design(values), np.asarray(outcome, float))
        return cls(
            float(beta[0]),
            {k: float(b) for k, b in zip(features, beta[1:], strict=True)},
            eps,
            dict(provenance or {}),
            domain,
        )

    def to_dict(self) -> dict:
        return {
            "intercept": self.intercept,
            "coefficients": dict(self.coefficients),
            "eps": self.eps,
            "provenance": dict(self.provenance),
            "domain": self.domain,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Recalibration:
        return cls(
            float(d["intercept"]),
            {str(k): float(v) for k, v in d["coefficients"].items()},
            float(d.get("eps", 1e-3)),
            dict(d.get("provenance", {})),
            str(d.get("domain", "")),
        )
