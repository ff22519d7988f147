"""Normalised prediction distribution errors (NPDE) and the PIT of every observation.

Method (Brendel et al. 2006; Comets, Brendel & Mentré 2008): ``R`` new cohorts of the
observed design are simulated from the population posterior
(:func:`~twin_uq.checks.simulate.simulate_design`). For patient ``i`` with observations
``y_i`` (``n_i`` values) and replicates ``Y_i`` (``R x n_i``):

* ``E_i`` and ``V_i`` are the empirical mean and covariance of the replicates;
* with ``V_i = L L^T`` (Cholesky), the observations and every replicate are decorrelated:
  ``y*_i = L^{-1}(y_i - E_i)``, ``Y*_ik = L^{-1}(Y_ik - E_i)``;
* ``pde_ij`` is the fraction of the ``R`` decorrelated replicates below ``y*_ij``; a pde of
  0 or 1 becomes ``1/(2R)`` or ``1 - 1/(2R)``;
* ``npde_ij = Phi^{-1}(pde_ij)``, which is N(0, 1) and independent within a patient when
  the model is right.

The PIT (``pd``, no decorrelation) of an observation is the fraction of its own
replicates below it (same 0/1 rule): Uniform(0, 1) observation by observation under the
model, but correlated within a patient.

Censored observations (Nguyen, Comets & Mentré 2012, the ``cdf`` method of the npde
package): a point below its limit gets ``pd ~ Uniform(0, P(Y < lloq))``, with
``P(Y < lloq)`` the fraction of its replicates below the limit (above the limit,
``Uniform(P(Y < lloq), 1)``); the observation is then imputed as the empirical quantile of
its replicates at that ``pd``, and the imputed value enters the decorrelation like any other.
Replicates below the limit of an observation are imputed the same way (a fresh uniform
each), so that observed and simulated data pass through the same censoring and imputation
before decorrelation; without this, imputations that ignore the patient's other
observations inflate the npde variance of a correct model (about 1.3 with a third of the
points censored in tests/checks/test_npde_core.py). If no replicate falls below the
limit, the interval used is ``(0, 1/(2R))``. Above-limit points are imputed in the data
only (their replicates are not censored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, stats

from twin_uq.checks.simulate import DesignSimulation, observed_design, simulate_design
from twin_uq.errors import InputError

__all__ = ["NPDEResult", "decorrelated_pde", "normality_tests", "npde", "patient_npde"]


def _clip_pde(p: np.ndarray, R: int) -> np.ndarray:
    """pde/pd of 0 or 1 moved to ``1/(2R)``, ``1 - 1/(2R)`` (Comets et al. 2008)."""
    return np.clip(p, 0.5 / R, 1.0 - 0.5 / R)


def _whitener(V: np.ndarray) -> np.ndarray:
    """Lower-triangular ``L`` with ``L L^T = V``; a nearly singular ``V`` gets a small ridge.

    The ridge (1e-10 of the mean variance, raised tenfold until Cholesky succeeds) only
    acts when replicates are (near) collinear, e.g. two observations at the same time
    without residual error.
    """
    try:
        return np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        scale = float(np.mean(np.diag(V))) or 1.0
        ridge = 1e-10 * scale
        for _ in range(12):
            try:
                return np.linalg.cholesky(V + ridge * np.eye(len(V)))
            except np.linalg.LinAlgError:
                ridge *= 10.0
        raise


def decorrelated_pde(y: np.ndarray, Y: np.ndarray, decorrelate: bool = True) -> np.ndarray:
    """``pde`` of one patient's observations ``y`` ``(n,)`` given replicates ``Y`` ``(R, n)``.

    With ``decorrelate`` both are whitened by the Cholesky factor of the replicates'
    empirical covariance around their empirical mean first (see the module docstring);
    without, this is the PIT of each observation. Values in ``[1/(2R), 1 - 1/(2R)]``.
    """
    y = np.asarray(y, float)
    Y = np.asarray(Y, float)
    R = Y.shape[0]
    if decorrelate:
        E = Y.mean(axis=0)
        V = np.atleast_2d(np.cov(Y, rowvar=False))
        L = _whitener(V)
        y = linalg.solve_triangular(L, y - E, lower=True)
        Y = linalg.solve_triangular(L, (Y - E).T, lower=True).T
    return _clip_pde((y[None, :] > Y).mean(axis=0), R)


def normality_tests(values: np.ndarray, alpha: float = 0.05) -> dict[str, float | bool | int]:
    """Tests of ``values ~ N(0, 1)`` as in Comets et al. (2008), with the global rule.

    * mean 0: Student t-test;
    * variance 1: two-sided chi-square test of ``(n - 1) s^2 / 1``;
    * normality: Shapiro-Wilk (n <= 5000; above, Kolmogorov-Smirnov against N(0, 1));
    * global: ``p = min(1, 3 * min(p_mean, p_variance, p_normality))`` (Bonferroni);
      ``flag`` is ``p_global < alpha``.

    Returns a dict with ``n``, ``mean``, ``variance``, the four p-values and ``flag``.
    NaN values are left out; fewer than 3 values give NaN p-values and no flag.
    """
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    n = x.size
    out: dict[str, float | bool | int] = dict(
        n=n, mean=float(x.mean()) if n else np.nan, variance=float(x.var(ddof=1)) if n > 1 else np.nan
    )  # fmt: skip
    if n < 3:
        return out | dict(p_mean=np.nan, p_variance=np.nan, p_normality=np.nan,
                          p_global=np.nan, flag=False)  # fmt: skip
    p_mean = float(stats.ttest_1samp(x, 0.0).pvalue)
    chi = (n - 1) * out["variance"]
    p_var = float(min(1.0, 2 * min(stats.chi2.cdf(chi, n - 1), stats.chi2.sf(chi, n - 1))))
    # Shapiro-Wilk's p-value is accurate up to n = 5000 (scipy); beyond, Kolmogorov-Smirnov.
    p_norm = stats.shapiro(x).pvalue if n <= 5000 else stats.kstest(x, "norm").pvalue
    p_norm = float(p_norm)
    p_global = min(1.0, 3 * min(p_mean, p_var, p_norm))
    return out | dict(p_mean=p_mean, p_variance=p_var, p_normality=p_norm, p_global=p_global,
                      flag=bool(p_global < alpha))  # fmt: skip


@dataclass(frozen=True)
class NPDEResult:
    """NPDE and PIT of every observation of a fit.

    Attributes
    ----------
    table
        One row per observation: ``patient``, ``output``, ``time``, ``tad``, ``value``
        (observed; the limit for a censored point), ``censored`` (``"below"``, ``"above"``
        or ``""``), ``pred`` (population prediction), ``epred`` (mean of the replicates),
        ``pd`` (PIT), ``npde``.
    nsim, seed, approximate, method
        Replicates per observation, seed, and the fit's method (approximate or not).
    """

    table: pd.DataFrame
    nsim: int
    seed: int
    approximate: bool
    method: str

    def tests(self, alpha: float = 0.05, by_output: bool = True) -> pd.DataFrame:
        """:func:`normality_tests` of the npde, overall and (``by_output``) per output."""
        rows = [dict(output="all", **normality_tests(self.table["npde"], alpha))]
        if by_output and self.table["output"].nunique() > 1:
            for out, g in self.table.groupby("output", sort=False):
                rows.append(dict(output=str(out), **normality_tests(g["npde"], alpha)))
        return pd.DataFrame(rows).set_index("output")

    def plot(self):
        """NPDE against time and against the population prediction, and their histogram."""
        from twin_uq.checks.plots import plot_npde

        return plot_npde(self)


def npde(
    post,
    *,
    nsim: int = 1000,
    seed: int = 0,
    sims: DesignSimulation | None = None,
) -> NPDEResult:
    """NPDE (with decorrelation) and PIT of every observation of a fit.

    Parameters
    ----------
    post
        A :class:`~twin_uq.CohortPosterior`.
    nsim
        Replicates of each patient's design (ignored when ``sims`` is given). Comets et al.
        recommend at least 1000.
    seed
        Seed of the simulation and of the imputation of censored points.
    sims
        A :func:`~twin_uq.checks.simulate.simulate_design` result to reuse (e.g. the
        VPC's), instead of simulating again.

    Returns
    -------
    NPDEResult
    """
    if sims is None:
        sims = simulate_design(post, nsim, seed=seed)
    d = observed_design(post)
    rng = np.random.default_rng(seed + 1)
    outputs = post.model.output_names
    rows = []
    for i, pid in enumerate(post.patient_ids):
        idx = np.flatnonzero(d["mask"][i])
        if not idx.size:
            continue
        Y = sims.y[:, i, idx]
        Y = Y[np.all(np.isfinite(Y), axis=1)]  # replicates whose solve failed are left out
        if Y.shape[0] < 10:
            raise InputError(
                f"npde: patient {pid!r} has only {Y.shape[0]} replicates whose model could be "
                "solved; check the fit's solver failures."
            )
        below, above = d["below"][i, idx], d["above"][i, idx]
        pd_, npde_ = patient_npde(
            d["value"][i, idx], Y, below, above, d["lloq"][i, idx], rng, d["limit"][i, idx]
        )
        rows.append(
            pd.DataFrame(
                dict(
                    patient=pid,
                    output=[outputs[k] for k in d["output"][i, idx]],
                    time=d["time"][i, idx],
                    tad=d["tad"][i, idx],
                    value=d["value"][i, idx],
                    censored=np.where(below, "below", np.where(above, "above", "")),
                    pred=sims.pred[i, idx],
                    epred=Y.mean(axis=0),
                    pd=pd_,
                    npde=npde_,
                )
            )
        )
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return NPDEResult(table, sims.n_replicates, sims.seed, sims.approximate, sims.method)


def patient_npde(
    y: np.ndarray,
    Y: np.ndarray,
    below: np.ndarray,
    above: np.ndarray,
    lloq: np.ndarray,
    rng: np.random.Generator,
    limit: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(pd, npde)`` of one patient's ``n`` observations from its ``R x n`` replicates ``Y``.

    ``below``/``above`` mark observations censored below/above their limit ``lloq``.
    ``limit`` ``(n,)`` is the lower limit that applies to each observation (-inf: none;
    default ``lloq`` where ``below``): replicates below it are censored and imputed the same
    way as the observations (see the module docstring), with ``rng``.
    """
    y = np.array(y, float)
    Y = np.array(Y, float)
    R = Y.shape[0]
    below, above = np.asarray(below, bool), np.asarray(above, bool)
    lloq = np.asarray(lloq, float)
    limit = np.where(below, lloq, -np.inf) if limit is None else np.asarray(limit, float)
    pd_ = _clip_pde((y[None, :] > Y).mean(axis=0), R)
    imputed = Y.copy()
    for j in np.flatnonzero(np.isfinite(limit) | above):
        col = Y[:, j]
        if np.isfinite(limit[j]):
            p_lim = max(float((col < limit[j]).mean()), 0.5 / R)
            sim_low = col < limit[j]
            # Replicates below the limit are imputed like a censored observation would be.
            imputed[sim_low, j] = np.quantile(col, rng.uniform(0.0, p_lim, sim_low.sum()))
            if below[j]:
                pd_[j] = _clip_pde(rng.uniform(0.0, p_lim), R)
        if above[j]:
            p_lim = min(float((col < lloq[j]).mean()), 1 - 0.5 / R)
            pd_[j] = _clip_pde(rng.uniform(p_lim, 1.0), R)
        if below[j] or above[j]:
            y[j] = np.quantile(col, pd_[j])
    return pd_, stats.norm.ppf(decorrelated_pde(y, imputed))
