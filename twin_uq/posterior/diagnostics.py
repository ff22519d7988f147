"""Convergence diagnostics of a cohort fit, with a verdict in plain words.

The numbers come from arviz-stats (R-hat, bulk/tail ESS, E-BFMI); this module only
decides what they mean for the fit and says why a fit needs attention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.posterior.failure import SamplerFailure

__all__ = ["POPULATION_VARS", "Diagnostics", "diagnose"]

#: Variables whose convergence decides the verdict (population level and individual).
POPULATION_VARS = ("mu", "omega", "beta", "sigma_add", "sigma_prop", "nu", "omega_occ", "tau")


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a fit with a plain-words verdict.

    Attributes
    ----------
    table
        One row per scalar quantity: ``r_hat``, ``ess_bulk``, ``ess_tail``.
    divergences, n_draws
        Divergent transitions after warm-up and the number of post-warm-up draws.
    bfmi
        Energy Bayesian fraction of missing information per chain.
    solver_failures
        Failed ODE solves at the retained posterior draws (patient × draw pairs).
    converged
        The verdict; ``reasons`` says why not.
    """

    table: pd.DataFrame
    divergences: int
    n_draws: int
    bfmi: np.ndarray
    solver_failures: int
    method: str
    converged: bool
    reasons: tuple[str, ...]

    @property
    def max_rhat(self) -> float:
        """Largest R-hat over all quantities."""
        return float(self.table["r_hat"].max())

    @property
    def min_ess_bulk(self) -> float:
        """Smallest bulk effective sample size."""
        return float(self.table["ess_bulk"].min())

    def __str__(self) -> str:
        verdict = "converged" if self.converged else "needs attention"
        lines = [
            f"Diagnostics ({self.method}): {verdict}",
            f"  max R-hat {self.max_rhat:.3f}, min bulk ESS {self.min_ess_bulk:.0f}, "
            f"divergences {self.divergences}/{self.n_draws}, solver failures {self.solver_failures}",
        ]
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


def diagnose(
    idata: xr.DataTree,
    *,
    method: str,
    approximate: bool,
    fixed_centering: bool,
    rhat_max: float = 1.01,
    ess_min: float = 400.0,
    failure: SamplerFailure | None = None,
) -> Diagnostics:
    """R-hat, bulk/tail ESS, divergences, E-BFMI and solver failures with a verdict.

    The verdict follows Vehtari et al. (2021): R-hat below ``rhat_max`` and bulk and tail
    ESS above ``ess_min`` (scaled down for short runs to 100 per chain) for every quantity,
    no divergent transitions, E-BFMI above 0.3. Approximate methods have no MCMC
    diagnostics and are never "converged" in this sense. ``fixed_centering`` (the fit did
    not use ``centering="auto"``) decides the advice given for divergences. ``failure``
    (a sampler that did not sample, :mod:`twin_uq.posterior.failure`) comes first among
    the reasons. An R-hat that cannot be computed (NaN: draws that do not vary within
    and between chains) fails the verdict; it is never read as "below the threshold".
    """
    failed = [] if failure is None else [f"sampler failure: {r}" for r in failure.reasons()]
    post = idata["posterior"].to_dataset()
    # kappa: the occasion effects of a fit with inter-occasion variability
    names = [v for v in (*POPULATION_VARS, "theta", "kappa") if v in post]
    reasons: list[str] = []
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    failures = int(idata.attrs.get("solver_failures_at_draws", "0"))
    solver_reasons = _fixed_step_reasons(idata)
    if approximate:
        table = pd.DataFrame({"r_hat": np.nan, "ess_bulk": np.nan, "ess_tail": np.nan}, index=names)
        return Diagnostics(
            table,
            0,
            n_chains * n_draws,
            np.array([]),
            failures,
            method,
            False,
            (
                *failed,
                f"{method} is an approximate method: no MCMC convergence diagnostics; "
                "confirm important results with method='nuts'.",
                *solver_reasons,
            ),
        )
    # One variable at a time: arviz-stats 1.3.3 summarising variables of different
    # dimensions together attached theta's values to the wrong patients' labels.
    # A fixed effect's omega is 0 by declaration, not a sampled quantity: no row for it.
    fixed = set(json.loads(idata.attrs.get("fixed_parameters", "[]")))
    varying = [p for p in post["parameter"].values if p not in fixed]
    if not varying:
        names = [n for n in names if n != "omega"]
    coords = {"omega": {"parameter": varying}} if fixed else {}
    # Draws that do not vary (or infinite energies of a chain stuck at -inf) give 0/0 and
    # inf - inf inside arviz-stats: NaN R-hat and E-BFMI, reported below as reasons rather
    # than as numpy's RuntimeWarnings.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        bfmi = np.asarray(azs.bfmi(idata)["energy"].values).reshape(-1)
        summ = pd.concat(
            [
                azs.summary(
                    idata, var_names=[n], kind="diagnostics", round_to="none", coords=coords.get(n)
                )
                for n in names
            ]
        )
    table = summ[["r_hat", "ess_bulk", "ess_tail"]].astype(float)
    ess_needed = min(ess_min, 100.0 * n_chains)
    stats = idata["sample_stats"].to_dataset()
    divergences = int(stats["diverging"].sum())
    reasons += failed
    if n_chains < 2:
        reasons.append("only one chain: R-hat cannot detect non-convergence; run >= 2 chains")
    bad_r = table.index[table["r_hat"] > rhat_max]
    if len(bad_r):
        reasons.append(
            f"R-hat above {rhat_max} for {len(bad_r)} quantities (worst {table['r_hat'].idxmax()}: {table['r_hat'].max():.3f})"
        )
    undefined = table.index[table["r_hat"].isna()]
    if len(undefined) and n_chains * n_draws > 1:
        reasons.append(
            f"R-hat undefined (NaN) for {len(undefined)} quantities (first {undefined[0]}): "
            "their draws do not vary"
        )
    low_ess = table.index[(table["ess_bulk"] < ess_needed) | (table["ess_tail"] < ess_needed)]
    if len(low_ess):
        reasons.append(
            f"effective sample size below {ess_needed:.0f} for {len(low_ess)} quantities (lowest {table['ess_bulk'].idxmin()}: {table['ess_bulk'].min():.0f})"
        )
    if divergences:
        advice = "centering='auto', target_accept=0.95" if fixed_centering else "target_accept=0.95"
        reasons.append(
            f"{divergences} divergent transitions: the posterior geometry was not explored reliably (try {advice})"
        )
    if np.any(bfmi < 0.3):
        reasons.append(f"E-BFMI below 0.3 in {int((bfmi < 0.3).sum())} chain(s)")
    if failures:
        reasons.append(f"{failures} ODE solve failures at posterior draws")
    reasons += solver_reasons
    return Diagnostics(
        table, divergences, n_chains * n_draws, bfmi, failures, method, not reasons, tuple(reasons)
    )


def _fixed_step_reasons(idata: xr.DataTree) -> list[str]:
    # The check a fixed-step fit ran afterwards (twin_uq.inference.solver_check).
    raw = idata.attrs.get("fixed_step_check")
    if raw is None:
        return []
    check = json.loads(raw)
    if check["passed"]:
        return []
    return [
        f"fixed-step solver error up to {check['max_error_sd']:.3g} residual SDs against "
        f"the adaptive reference at {check['draws_checked']} posterior draws (threshold "
        f"{check['threshold_sd']:.3g}, worst patient {check['worst_patient']}, "
        f"{check['disagreements']} solves failed in only one solver): use a smaller "
        "fixed_step or an adaptive method"
    ]
