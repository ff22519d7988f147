"""PSIS leave-one-out of a fit, over observations or over patients (arviz_stats).

Leave-one-patient-out asks how well the fitted population predicts a patient it has not
seen: the unit left out is a patient's whole record, scored with its random effects
integrated out (:mod:`twin_uq.compare.marginal`). Pareto smoothed importance sampling
(:func:`arviz_stats.loo`, Vehtari, Gelman & Gabry 2017) estimates it from one fit; its
Pareto k per patient says where it cannot be trusted (k > 0.7), and ``refit=True`` replaces
those estimates by exact refits without the patient (:func:`arviz_stats.reloo` with
:class:`~twin_uq.compare.refit.PatientRefit`), at most ``max_refits`` of them since fits
are slow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.compare.marginal import Proposal, marginal_loglik, patient_proposal
from twin_uq.compare.pointwise import pointwise_loglik
from twin_uq.compare.refit import PatientRefit
from twin_uq.errors import InputError

if TYPE_CHECKING:
    from arviz_stats.utils import ELPDData

    from twin_uq.posterior import CohortPosterior

__all__ = ["K_THRESHOLD", "LooResult", "loo"]

#: Pareto k above which the importance-sampling estimate of a unit is not trusted.
K_THRESHOLD = 0.7

#: The log-likelihood variable of each unit (not named like its dimension: xarray would
#: take a variable ``patient`` on dim ``patient`` for that dimension's coordinate).
_VAR = {"patient": "loglik_patient", "observation": "loglik_observation"}


@dataclass(frozen=True)
class LooResult:
    """Leave-one-out estimate of a fit's expected log predictive density.

    Attributes
    ----------
    elpd_data
        arviz_stats' result (``elpd``, ``se``, ``p``, pointwise ``elpd_i`` and ``pareto_k``).
    by
        ``"patient"`` or ``"observation"``: the unit left out.
    pareto_k
        Pareto k per patient (by observation: the largest over the patient's observations;
        0 for a patient replaced by an exact refit).
    refitted
        Patients whose estimate comes from an exact refit.
    approximate
        The fit is an approximation (SVI, Laplace): so is every number here.
    method
        The fit method.
    """

    elpd_data: ELPDData = field(repr=False)
    by: str
    pareto_k: pd.Series
    refitted: tuple[str, ...] = ()
    approximate: bool = False
    method: str = "nuts"

    @property
    def elpd(self) -> float:
        """Expected log pointwise predictive density (sum over the units left out)."""
        return float(self.elpd_data.elpd)

    @property
    def se(self) -> float:
        """Standard error of :attr:`elpd`."""
        return float(self.elpd_data.se)

    @property
    def p_loo(self) -> float:
        """Effective number of parameters."""
        return float(self.elpd_data.p)

    @property
    def elpd_i(self) -> np.ndarray:
        """Pointwise elpd, one per unit left out (``(P,)`` or ``(M,)``)."""
        return np.asarray(self.elpd_data.elpd_i).reshape(-1)

    @property
    def n_high_k(self) -> int:
        """Patients whose Pareto k exceeds 0.7 (after any exact refits)."""
        return int((self.pareto_k > K_THRESHOLD).sum())

    def summary(self) -> str:
        """One plain sentence."""
        unit = "patient" if self.by == "patient" else "observation"
        label = " (approximate fit)" if self.approximate else ""
        refits = f", {len(self.refitted)} exact refits" if self.refitted else ""
        return (
            f"Leave-one-{unit}-out elpd {self.elpd:.1f} (SE {self.se:.1f}), p_loo "
            f"{self.p_loo:.1f}, {self.n_high_k} patients with Pareto k > {K_THRESHOLD}"
            f"{refits}{label}."
        )


def patient_marginals(
    post: CohortPosterior, n_inner: int, seed: int
) -> tuple[xr.DataArray, dict[str, Proposal]]:
    """``(chain, draw, patient)`` log p(y_i | phi) of every patient, and their proposals."""
    proposals = {pid: patient_proposal(post, pid, n_inner, seed) for pid in post.patient_ids}
    values = np.stack(
        [
            marginal_loglik(post, i, post.patient(pid).population, proposals[pid])
            for i, pid in enumerate(post.patient_ids)
        ],
        axis=-1,
    )  # (S, P)
    ll = xr.DataArray(
        values.reshape(post.n_chains, -1, values.shape[-1]),
        dims=("chain", "draw", "patient"),
        coords={"patient": list(post.patient_ids)},
    )
    return ll, proposals


def loo_tree(
    post: CohortPosterior, by: str, n_inner: int, seed: int
) -> tuple[xr.DataTree, dict[str, Proposal]]:
    """The fit's posterior and the log-likelihood of each unit left out, for arviz_stats.

    By patient the patient's random effects are integrated out (:mod:`marginal`); by
    observation it is the observation's density at the draw's own parameters.
    """
    proposals: dict[str, Proposal] = {}
    if by == "patient":
        ll, proposals = patient_marginals(post, n_inner, seed)
    else:
        ll = pointwise_loglik(post, by).drop_attrs()
    return psis_tree(post.idata["posterior"].to_dataset(), ll, _VAR[by]), proposals


def psis_tree(posterior: xr.Dataset, loglik: xr.DataArray, var: str) -> xr.DataTree:
    """``posterior`` and ``log_likelihood/<var>`` (``(chain, draw, unit)``) as a DataTree.

    The posterior group is there for arviz_stats' relative efficiency of the draws.
    """
    return xr.DataTree.from_dict(
        {"posterior": posterior, "log_likelihood": xr.Dataset({var: loglik})}
    )


def psis_loo(posterior: xr.Dataset, loglik: xr.DataArray, var: str) -> ELPDData:
    """PSIS-LOO (:func:`arviz_stats.loo`, pointwise) of the units on ``loglik``'s last dim."""
    with warnings.catch_warnings():
        # arviz warns on high k; LooResult reports k per patient instead.
        warnings.simplefilter("ignore", UserWarning)
        return azs.loo(psis_tree(posterior, loglik, var), var_name=var, pointwise=True)


def loo(
    post: CohortPosterior,
    by: str = "patient",
    *,
    refit: bool = False,
    max_refits: int = 5,
    n_inner: int = 512,
    seed: int = 0,
    k_threshold: float = K_THRESHOLD,
) -> LooResult:
    """PSIS leave-one-out over patients or observations, with optional exact refits.

    Parameters
    ----------
    post
        A fitted or reloaded cohort posterior (exact or approximate).
    by
        ``"patient"`` (leave-one-patient-out, the unit for model averaging) or
        ``"observation"``.
    refit
        Replace the estimates of patients with Pareto k > 0.7 by exact refits without
        them (``by="patient"`` only): the fit's own method object, population model,
        solver and seed.
    max_refits
        At most this many refits, for the patients with the largest k.
    n_inner
        Inner importance-sampling draws per patient that integrate its random effects out
        (by patient; one ODE solve each).
    seed
        Seeds those draws.
    k_threshold
        Refit patients whose Pareto k exceeds this (default 0.7; ``n_high_k`` always
        counts k > 0.7).

    Returns
    -------
    LooResult
    """
    if by not in ("patient", "observation"):
        raise InputError(f"by must be 'patient' or 'observation', got {by!r}.")
    if refit and by != "patient":
        raise InputError("Exact refits leave out a patient: use refit=True with by='patient'.")
    if int(max_refits) < 0 or int(n_inner) < 1:
        raise InputError(f"max_refits must be >= 0 and n_inner >= 1, got {max_refits}, {n_inner}.")
    tree, proposals = loo_tree(post, by, int(n_inner), int(seed))
    var = _VAR[by]
    posterior = tree["posterior"].to_dataset()
    result = psis_loo(posterior, tree["log_likelihood"][var], var)
    k = np.asarray(result.pareto_k).reshape(-1)
    refitted: tuple[str, ...] = ()
    n_high = int((k > k_threshold).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if refit and n_high and max_refits:
            # reloo refits every unit above its threshold: raise it so that only the
            # max_refits largest k are refitted.
            order = np.sort(k)[::-1]
            threshold = k_threshold if n_high <= max_refits else float(order[max_refits])
            wrapper = PatientRefit(post, tree, proposals)
            result = azs.reloo(
                wrapper, loo_orig=result, var_name=var, k_threshold=threshold, pointwise=True
            )
            refitted = tuple(wrapper.refitted)
    k_new = np.asarray(result.pareto_k).reshape(-1)
    if by == "patient":
        per_patient = pd.Series(k_new, index=pd.Index(post.patient_ids, name="patient"))
    else:
        ids = tree["log_likelihood"][var]["patient"].values
        per_patient = pd.Series(k_new).groupby(ids).max().reindex(list(post.patient_ids))
        per_patient.index.name = "patient"
    return LooResult(
        elpd_data=result,
        by=by,
        pareto_k=per_patient.rename("pareto_k"),
        refitted=refitted,
        approximate=post.approximate,
        method=post.method,
    )
