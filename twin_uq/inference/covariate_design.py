"""The covariate design of a cohort fit: standardised covariates, effects and allometry.

:func:`twin_uq.inference.population.build_covariate_design` builds a
:class:`CovariateDesign` from a cohort and a population model; its
:meth:`~CovariateDesign.as_arrays` are what each patient's population mean of log
parameters is computed from (:class:`CovariateArrays`). The model's fixed allometric
offsets (:func:`allometric_offsets`) and the case-insensitive match of a covariate column
(:func:`covariate_column`) are shared by the design and its time-varying segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, Int

from twin_uq.data.covariate_path import CovariateSegments
from twin_uq.errors import InputError
from twin_uq.model.base import Model

__all__ = ["CovariateArrays", "CovariateDesign", "allometric_offsets", "covariate_column"]


@dataclass(frozen=True)
class CovariateDesign:
    """Covariate design matrix of a cohort for a population model.

    Attributes
    ----------
    matrix
        ``(P, Q)`` float array of standardised covariates / indicators.
    terms
        ``Q`` labels such as ``"AGE"`` or ``"SEX[F]"``.
    effects
        ``(parameter, term)`` pairs, one per estimated coefficient ``beta``.
    mask
        ``(K, Q)`` 0/1 matrix: which term acts on which parameter.
    allometric
        ``(P, K)`` fixed allometric offsets on the log scale.
    centre, scale
        Per-term centring and scaling used (for reporting effects on the natural scale).
    segments
        With covariates of the design (effects or allometric) that change within a patient:
        their :class:`~twin_uq.data.covariate_path.CovariateSegments`; ``None`` otherwise.
    segment_matrix, segment_allometric
        With ``segments``: the design ``(P, S, Q)`` and allometric offsets ``(P, S, K)``
        evaluated with the values in force on each segment (the baseline's centring,
        scaling and reference levels); ``None`` otherwise.
    """

    matrix: np.ndarray
    terms: tuple[str, ...]
    effects: tuple[tuple[str, str], ...]
    mask: np.ndarray
    allometric: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    segments: CovariateSegments | None = None
    segment_matrix: np.ndarray | None = None
    segment_allometric: np.ndarray | None = None

    @property
    def change_time(self) -> np.ndarray | None:
        """``(P, S)`` segment starts, or ``None`` without time-varying design covariates."""
        return None if self.segments is None else self.segments.time

    def segment_shifts(self) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
        """Per segment, the change of the design and of the allometric offsets from baseline.

        ``(P, S, Q)`` and ``(P, S, K)`` (``FitData.segment_design`` /
        ``segment_allometric``), or ``(None, None)``.
        """
        if self.segments is None:
            return None, None
        return (
            self.segment_matrix - self.matrix[:, None, :],
            self.segment_allometric - self.allometric[:, None, :],
        )

    @property
    def effect_labels(self) -> tuple[str, ...]:
        """``"CL~AGE"`` style labels of the estimated coefficients."""
        return tuple(f"{p}~{t}" for p, t in self.effects)

    def as_arrays(self, parameter_names: tuple[str, ...]) -> CovariateArrays:
        """The JAX arrays the population mean is computed from (see :class:`CovariateArrays`)."""
        effect_param = [parameter_names.index(p) for p, _ in self.effects]
        effect_term = [self.terms.index(t) for _, t in self.effects]
        return CovariateArrays(
            design=jnp.asarray(self.matrix, dtype=float),
            effect_param=jnp.asarray(np.array(effect_param, dtype=np.int32)),
            effect_term=jnp.asarray(np.array(effect_term, dtype=np.int32)),
            allometric=jnp.asarray(self.allometric),
        )


class CovariateArrays(eqx.Module):
    """What each patient's population mean of log parameters is computed from.

    Attributes
    ----------
    design
        ``(P, Q)`` covariate design matrix.
    effect_param, effect_term
        ``(E,)`` parameter and design-column index of each covariate coefficient.
    allometric
        ``(P, K)`` fixed allometric log offsets.
    """

    design: Float[Array, "P Q"]
    effect_param: Int[Array, " E"]
    effect_term: Int[Array, " E"]
    allometric: Float[Array, "P K"]


def allometric_offsets(model: Model, cov: pd.DataFrame) -> np.ndarray:
    """``(P, K)`` fixed allometric log offsets from the covariate frame ``cov``."""
    P, K = len(cov), len(model.parameters)
    allometric = np.zeros((P, K))
    for allo in model.allometric:
        k = model.parameter_names.index(allo.parameter)
        if model.parameters[k].scale != "log":
            raise InputError(
                f"Allometric scaling of {allo.parameter!r}, a logit-normal parameter: a power "
                "law applies to log-normal parameters only; estimate a covariate effect on "
                "the logit scale instead (covariate_effects)."
            )
        # Matched like Cohort.for_model matches its covariate arrays (case-insensitive): an
        # exact-name test here once gave a lowercase ``wt`` column all-zero offsets.
        found = covariate_column(cov, allo.covariate)
        if found is not None and not cov[found].isna().all():
            x = cov[found].astype(float)
            default = model.covariate_defaults.get(allo.covariate, allo.reference)
            x = x.fillna(default).to_numpy()
        else:
            x = np.full(P, model.covariate_defaults.get(allo.covariate, allo.reference))
        if np.any(x <= 0):
            bad = list(cov.index[x <= 0])[:5]
            raise InputError(
                f"Allometric covariate {allo.covariate!r} must be > 0; patients {bad}."
            )
        allometric[:, k] += allo.exponent * np.log(x / allo.reference)
    return allometric


def covariate_column(cov: pd.DataFrame, name: str) -> str | None:
    """The covariate column called ``name``: exact, else the one equal without regard to case.

    A cohort never has two covariate columns equal without regard to case (``read_cohort``
    refuses them), so the match is unique.
    """
    if name in cov.columns:
        return name
    matches = [c for c in cov.columns if str(c).lower() == name.lower()]
    return matches[0] if matches else None
