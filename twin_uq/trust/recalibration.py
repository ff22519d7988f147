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

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from twin_uq.errors import InputError

__all__ = [
    "DEFAULT_RECALIBRATION",
    "Recalibration",
    "fit_logistic",
    "load_recalibration",
    "logit",
    "recalibration_inputs",
]

#: The recalibration shipped with the package (twin_uq/trust/data/): fitted by
#: benchmarks/trust_score_study.py on Laplace fits of three models (see its provenance).
DEFAULT_RECALIBRATION = "trust_recalibration_laplace.json"


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
    models
        The model names of the domain (:meth:`covers` checks a fit against them).
    approximate_only
        Fitted on approximate (Laplace) fits only: a NUTS fit is outside the domain.
    """

    intercept: float
    coefficients: Mapping[str, float]
    eps: float = 1e-3
    provenance: Mapping[str, str] = field(default_factory=dict)
    domain: str = ""
    models: tuple[str, ...] = ()
    approximate_only: bool = True

    def covers(self, model_name: str | None, approximate: bool) -> bool:
        """Whether a fit of ``model_name`` (approximate or not) is inside the domain."""
        if self.approximate_only and not approximate:
            return False
        return not self.models or model_name in self.models

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
        models: tuple[str, ...] = (),
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
            tuple(models),
        )

    def to_dict(self) -> dict:
        return {
            "intercept": self.intercept,
            "coefficients": dict(self.coefficients),
            "eps": self.eps,
            "provenance": dict(self.provenance),
            "domain": self.domain,
            "models": list(self.models),
            "approximate_only": self.approximate_only,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Recalibration:
        return cls(
            float(d["intercept"]),
            {str(k): float(v) for k, v in d["coefficients"].items()},
            float(d.get("eps", 1e-3)),
            dict(d.get("provenance", {})),
            str(d.get("domain", "")),
            tuple(d.get("models", ())),
            bool(d.get("approximate_only", True)),
        )


def recalibration_inputs(metrics: Mapping, p_forecast) -> dict[str, np.ndarray]:
    """The values a :class:`Recalibration` may use, from a patient's trust metrics.

    Parameters
    ----------
    metrics
        The patient's metrics (``TrustAssessment.metrics``, or columns of the report's table,
        scalars or arrays): ``p_miss`` (the patient's score), ``contraction_median``,
        ``contraction_min``, ``contraction_<param>``, ``n_obs``, ``span_fraction``,
        ``covariate_max_abs_z``, ``ppc_pvalue``, ``ppc_extreme``. Missing ones give NaN.
    p_forecast
        The forecast's score (``p_miss`` of the forecast).

    Returns
    -------
    ``p_forecast``, ``p_patient``; ``contraction`` (median), ``contraction_min``,
    ``contraction_max`` (clipped to [-1, 1]); ``log_n_obs`` (log(1 + n)), ``few_obs``
    (at most one observation); ``span_fraction`` (clipped to [0, 2]);
    ``covariate_max_abs_z`` (capped at 10); ``ppc_flag`` (1 for a binomial p < 0.01 of own
    observations outside the 95 % predictive interval, +1 for any beyond every replicate).
    """

    def get(key):
        return np.asarray(metrics.get(key, np.nan), float)

    per_param = [
        k
        for k in metrics
        if str(k).startswith("contraction_") and k not in ("contraction_median", "contraction_min")
    ]
    c_max = np.max([get(k) for k in per_param], axis=0) if per_param else np.asarray(np.nan)
    n_obs = get("n_obs")
    return {
        "p_forecast": np.asarray(p_forecast, float),
        "p_patient": get("p_miss"),
        "contraction": np.clip(get("contraction_median"), -1.0, 1.0),
        "contraction_min": np.clip(get("contraction_min"), -1.0, 1.0),
        "contraction_max": np.clip(c_max, -1.0, 1.0),
        "log_n_obs": np.log1p(n_obs),
        "few_obs": np.where(np.isfinite(n_obs), (n_obs <= 1).astype(float), np.nan),
        "span_fraction": np.clip(get("span_fraction"), 0.0, 2.0),
        "covariate_max_abs_z": np.minimum(get("covariate_max_abs_z"), 10.0),
        "ppc_flag": (get("ppc_pvalue") < 0.01).astype(float) + (get("ppc_extreme") > 0),
    }


@cache
def load_recalibration(name: str = DEFAULT_RECALIBRATION) -> Recalibration:
    """A stored :class:`Recalibration` (a JSON file in twin_uq/trust/data/, or a path)."""
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parent / "data" / name
    if not path.exists():
        raise InputError(f"no stored trust recalibration {name!r} (looked at {path}).")
    return Recalibration.from_dict(json.loads(path.read_text()))
