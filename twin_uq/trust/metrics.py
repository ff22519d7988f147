"""The numbers behind a trust assessment, computed for every patient of a fit at once.

Four families (see docs/trust.md):

* **information** from the patient's own data — posterior contraction of each parameter
  relative to a new patient of the same population, shrinkage of the random effects, the
  number of observations and the time they span;
* **fit quality** — the fit's global convergence (population quantities, divergences),
  this patient's R-hat / ESS, solver failures, and a posterior predictive check of the
  patient's own observations;
* **covariate support** — how far the patient's covariates lie from the rest of the cohort.

(The fourth family, prediction-specific, lives in :mod:`twin_uq.trust.prediction`.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from twin_uq.model.scales import to_unconstrained
from twin_uq.trust.effective import effective_observations
from twin_uq.trust.thresholds import TrustThresholds

__all__ = [
    "CohortMetrics",
    "GlobalFitQuality",
    "covariate_support",
    "global_fit_quality",
    "information_metrics",
    "patient_convergence",
    "ppc_metrics",
]

#: Population-level quantities whose convergence every patient's twin depends on.
_POPULATION_VARS = ("mu", "omega", "beta", "sigma_add", "sigma_prop", "nu", "corr")


@dataclass(frozen=True)
class GlobalFitQuality:
    """Convergence of the quantities every twin shares.

    Attributes
    ----------
    ok
        False when every patient must be marked unreliable.
    reasons
        Plain-language reasons (empty when ``ok``).
    metrics
        ``max_rhat_population``, ``min_ess_population``, ``divergences``, ``chains``,
        ``draws`` (numbers).
    """

    ok: bool
    reasons: tuple[str, ...]
    metrics: dict[str, float]


@dataclass(frozen=True)
class CohortMetrics:
    """Per-patient metric tables (index = patient id)."""

    information: pd.DataFrame
    contraction: pd.DataFrame
    convergence: pd.DataFrame
    ppc: pd.DataFrame
    covariates: pd.DataFrame
    covariate_flags: dict[str, tuple[str, ...]]
    fit: GlobalFitQuality


def _ess_needed(th: TrustThresholds, chains: int) -> float:
    return min(th.ess_min, th.ess_per_chain * chains)


def global_fit_quality(post, th: TrustThresholds) -> GlobalFitQuality:
    """Population-level convergence, divergences and chain count of a NUTS fit.

    Approximate fits return ``ok=True`` (nothing to check); the approximation itself is
    handled by ``TrustThresholds.approximate_cap``.
    """
    ds = post.posterior
    chains, draws = ds.sizes["chain"], ds.sizes["draw"]
    metrics: dict[str, float] = {"chains": float(chains), "draws": float(draws)}
    if post.approximate:
        return GlobalFitQuality(True, (), metrics)
    reasons: list[str] = []
    names = [v for v in _POPULATION_VARS if v in ds]
    with np.errstate(invalid="ignore", divide="ignore"):  # constant draws: 0/0, reported
        rhat = azs.rhat(ds[names])
        ess_b = azs.ess(ds[names], method="bulk")
        ess_t = azs.ess(ds[names], method="tail")

    def worst(x, fn) -> float:
        vals = np.concatenate([np.asarray(x[v].values, float).ravel() for v in names])
        vals = vals[np.isfinite(vals)]
        return float(fn(vals)) if vals.size else np.nan

    max_rhat = worst(rhat, np.max)
    # An R-hat that is NaN (draws that never vary) or infinite (chains each stuck at their
    # own point) is never "at most rhat_max" (as in posterior.diagnostics), except for
    # quantities constant by declaration: corr's unit diagonal, a fixed effect's omega (0).
    undefined = _undefined_rhats(rhat, names, post.idata.attrs)
    min_ess = min(worst(ess_b, np.min), worst(ess_t, np.min))
    stats_ = (
        post.idata["sample_stats"].to_dataset() if "sample_stats" in post.idata.children else None
    )
    divergences = (
        int(stats_["diverging"].sum()) if stats_ is not None and "diverging" in stats_ else 0
    )
    metrics |= {
        "max_rhat_population": max_rhat,
        "min_ess_population": min_ess,
        "divergences": float(divergences),
    }
    if chains < 2:
        reasons.append(
            "The fit ran a single chain, so convergence cannot be checked; rerun with at least 2 chains."
        )
    if np.isfinite(max_rhat) and max_rhat > th.rhat_max:
        reasons.append(
            f"The population fit did not converge (R-hat {max_rhat:.3f}, should be at most {th.rhat_max})."
        )
    if undefined and chains > 1:
        reasons.append(
            f"The population fit did not converge: R-hat is undefined (NaN or infinite) for "
            f"{len(undefined)} quantities (first {undefined[0]}), whose draws do not vary "
            "within chains."
        )
    needed = _ess_needed(th, chains)
    if np.isfinite(min_ess) and min_ess < needed:
        reasons.append(
            f"The population fit has too few effective draws (ESS {min_ess:.0f}, need {needed:.0f}); run longer."
        )
    if divergences > th.max_divergence_fraction * chains * draws:
        reasons.append(
            f"The sampler reported {divergences} divergent transitions: the posterior of the whole "
            "cohort may be biased."
        )
    return GlobalFitQuality(not reasons, tuple(reasons), metrics)


def _undefined_rhats(rhat: xr.Dataset, names: list[str], attrs) -> list[str]:
    """Labels (``mu[CL]``) of the non-finite R-hats in ``rhat``, save declared constants.

    Declared constants: the unit diagonal of ``corr`` and the ``omega`` of a fixed effect
    (``attrs["fixed_parameters"]``), whose draws do not vary by construction.
    """
    fixed = set(json.loads(attrs.get("fixed_parameters", "[]")))
    out = []
    for v in names:
        da = rhat[v]
        bad = ~np.isfinite(np.asarray(da.values, float))
        if v == "corr" and da.ndim == 2:
            bad &= ~np.eye(da.shape[0], dtype=bool)
        if v == "omega" and "parameter" in da.dims:
            bad &= ~np.isin(da["parameter"].values, list(fixed))
        for idx in zip(*np.nonzero(bad), strict=True):
            labels = [str(da[d].values[i]) if d in da.coords else str(i)
                      for d, i in zip(da.dims, idx, strict=True)]  # fmt: skip
            out.append(f"{v}[{','.join(labels)}]" if labels else v)
    return out


def patient_convergence(post, patients: Sequence[str] | None = None) -> pd.DataFrame:
    """Per patient: worst R-hat and smallest bulk/tail ESS over its parameters, solver rate.

    ``patients`` restricts the table to those ids (default: every patient). NaN R-hat /
    ESS for approximate fits (no chains to compare).
    """
    ds = post.posterior
    ids = list(post.patient_ids) if patients is None else list(patients)
    ok_rate = post.idata["constant_data"]["solver_ok_rate"].sel(patient=ids).values
    ok_rate = np.asarray(ok_rate, float)
    ds = ds.sel(patient=ids)
    frame = pd.DataFrame({"solver_ok_rate": ok_rate}, index=pd.Index(ids, name="patient"))
    if post.approximate or ds.sizes["chain"] * ds.sizes["draw"] < 4:
        frame["rhat_max"] = np.nan
        frame["ess_bulk_min"] = np.nan
        frame["ess_tail_min"] = np.nan
        return frame
    theta = ds[["theta"]]
    # R-hat of log theta and of theta coincide (rank-normalised), ESS likewise.
    frame["rhat_max"] = azs.rhat(theta)["theta"].max("parameter").values
    frame["ess_bulk_min"] = azs.ess(theta, method="bulk")["theta"].min("parameter").values
    frame["ess_tail_min"] = azs.ess(theta, method="tail")["theta"].min("parameter").values
    return frame


def information_metrics(post, th: TrustThresholds) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Posterior contraction, shrinkage and observation counts of every patient.

    Contraction of parameter ``k`` for patient ``i``::

        c_ik = 1 - Var_post(log theta_ik) / V_ik,
        V_ik = E_post[omega_k^2] + Var_post(m_ik)

    with ``m_ik = log theta_ik - omega_k eta_ik`` the patient's population mean (typical value
    with covariate effects). ``V_ik`` is the variance of ``log theta`` for a *new* patient
    with the same covariates given the population posterior — what the twin would know
    without any of the patient's data. ``c = 0``: the data taught nothing; ``c = 1``: the
    parameter is pinned down. ``log`` is the parameter's latent scale (``logit`` for a
    logit-normal parameter); a fixed effect (``bsv=False``) has no contraction (NaN).

    Returns
    -------
    information
        Columns ``contraction_median``, ``contraction_min``, ``eta_abs_mean_max``,
        ``eta_sd_median``, ``n_obs``, ``n_censored``, ``n_design_points`` (distinct
        ``(output, time)`` pairs among the uncensored observations: repeats of a
        measurement at the same time count once), ``first_obs_time``,
        ``last_obs_time``, ``obs_span``, ``span_fraction``.
    contraction
        ``(patient, parameter)`` contraction table (NaN for parameters whose population SD
        is below ``min_population_sd``).
    """
    ds = post.posterior
    names = list(ds["parameter"].values)
    ids = list(post.patient_ids)
    theta = np.asarray(ds["theta"].values, float)  # (C, D, P, K)
    eta = np.asarray(ds["eta"].values, float)
    omega = np.asarray(ds["omega"].values, float)  # (C, D, K)
    S = theta.shape[0] * theta.shape[1]
    # Each parameter's latent scale and the fixed effects, as the fit recorded them (fits
    # saved before parameters had scales: all log-normal with between-patient variability).
    attrs = post.idata.attrs
    scales = json.loads(attrs.get("parameter_scales", "{}"))
    fixed = [names.index(p) for p in json.loads(attrs.get("fixed_parameters", "[]"))]
    latent = [scales.get(n, "log") for n in names]
    log_theta = to_unconstrained(latent, theta).reshape(S, *theta.shape[2:])
    eta = eta.reshape(S, *eta.shape[2:])
    omega = omega.reshape(S, -1)
    mean = log_theta - omega[:, None, :] * eta
    var_post = log_theta.var(axis=0, ddof=1)
    prior_var = (omega**2).mean(axis=0)[None, :] + mean.var(axis=0, ddof=1)
    contraction = 1.0 - var_post / prior_var
    contraction = np.where(np.sqrt(prior_var) < th.min_population_sd, np.nan, contraction)
    # A fixed effect is the population's value: it has no individual contraction.
    contraction[:, fixed] = np.nan
    ctab = pd.DataFrame(contraction, index=pd.Index(ids, name="patient"), columns=names)

    cd = post.idata["constant_data"].to_dataset()
    mask = np.asarray(cd["obs_mask"].values, bool)
    cens = np.asarray(cd["obs_censored"].values, bool)
    times = np.asarray(cd["obs_time"].values, float)
    uncens = mask & ~cens
    n_obs = uncens.sum(axis=1)
    n_cens = (mask & cens).sum(axis=1)
    # Fits stored without each observation's output: every measurement counts (rule inert).
    n_points = (
        _design_points(uncens, times, np.asarray(cd["obs_output"].values))
        if "obs_output" in cd
        else n_obs
    )
    with np.errstate(all="ignore"):
        t_any = np.where(mask, times, np.nan)
        first = np.nanmin(np.where(mask.any(1)[:, None], t_any, 0.0), axis=1)
        last = np.nanmax(np.where(mask.any(1)[:, None], t_any, 0.0), axis=1)
    first = np.where(mask.any(1), first, np.nan)
    last = np.where(mask.any(1), last, np.nan)
    span = last - first
    cohort_span = np.nanmedian(span) if np.isfinite(span).any() else np.nan
    span_fraction = (
        span / cohort_span if cohort_span and cohort_span > 0 else np.full_like(span, np.nan)
    )
    with np.errstate(all="ignore"):
        info = pd.DataFrame(
            {
                "contraction_median": np.nanmedian(
                    np.where(np.isnan(contraction), np.nan, contraction), axis=1
                )
                if np.isfinite(contraction).any()
                else np.nan,
                "contraction_min": np.nanmin(contraction, axis=1)
                if np.isfinite(contraction).any()
                else np.nan,
                "eta_abs_mean_max": np.abs(eta.mean(axis=0)).max(axis=1),
                "eta_sd_median": np.median(eta.std(axis=0, ddof=1), axis=1),
                "n_obs": n_obs.astype(int),
                "n_censored": n_cens.astype(int),
                "n_design_points": n_points,
                "n_eff": effective_observations(post),  # n_obs, or fewer with OU residuals
                "first_obs_time": first,
                "last_obs_time": last,
                "obs_span": span,
                "span_fraction": span_fraction,
            },
            index=pd.Index(ids, name="patient"),
        )
    return info, ctab


def _design_points(use: np.ndarray, times: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Distinct ``(output, time)`` pairs per patient among the observations ``use`` ``(P, N)``.

    Repeated measurements at one time (replicate beats, duplicate assays) inform the value
    there, not the shape of the response, which is what identifies the parameters.
    """
    return np.array(
        [
            len(set(zip(o[u].tolist(), t[u].tolist(), strict=True)))
            for u, t, o in zip(use, times, outputs, strict=True)
        ],
        dtype=int,
    )


def ppc_metrics(post) -> pd.DataFrame:
    """Posterior predictive check of each patient's own observations.

    PIT ``u_j = P(y_rep_j < y_j)`` from ``posterior_predictive.y``; a censored observation
    (known only to lie in an interval ``(lo, hi)``, e.g. below the LLOQ) has the mid-PIT
    ``u_j = (P(y_rep_j < lo) + P(y_rep_j < hi)) / 2`` of its interval, so a BLQ point whose
    replicates almost all lie above the LLOQ is a miss (fits saved without the censoring
    direction check their uncensored observations only). Columns: ``ppc_n``,
    ``ppc_outside95`` (count with ``u`` outside [0.025, 0.975]), ``ppc_fraction_outside95``,
    ``ppc_pvalue`` (binomial tail probability of at least that many misses at rate 0.05),
    ``ppc_extreme`` (observations beyond every replicate), ``ppc_worst_time``.

    In-sample: the observations informed the posterior, so the check is conservative (it
    detects gross misfit and outliers, not subtle miscalibration).
    """
    y_obs = np.asarray(post.idata["observed_data"]["y"].values, float)  # (P, N)
    y_rep = np.asarray(post.idata["posterior_predictive"]["y"].values, float)  # (C, D, P, N)
    y_rep = y_rep.reshape(-1, *y_rep.shape[2:])
    constant = post.idata["constant_data"]
    times = np.asarray(constant["obs_time"].values, float)
    valid = np.isfinite(y_obs)
    with np.errstate(invalid="ignore"):
        below = (y_rep < y_obs[None]).mean(axis=0)
        tie = (y_rep == y_obs[None]).mean(axis=0)
    pit = np.where(valid, below + 0.5 * tie, np.nan)
    if "obs_cens" in constant:
        cens = np.asarray(constant["obs_cens"].values)
        censored = (cens != 0) & np.asarray(constant["obs_mask"].values, bool)
        bound = np.asarray(constant["obs_lloq"].values, float)
        other = np.asarray(constant["obs_limit"].values, float)
        lo = np.where(cens > 0, np.nan_to_num(other, nan=-np.inf), bound)
        hi = np.where(cens > 0, bound, np.nan_to_num(other, nan=np.inf))
        with np.errstate(invalid="ignore"):
            mid = 0.5 * ((y_rep < lo[None]).mean(axis=0) + (y_rep < hi[None]).mean(axis=0))
        pit = np.where(censored, mid, pit)
        valid = valid | censored
    outside = valid & ((pit < 0.025) | (pit > 0.975))
    extreme = valid & ((pit <= 0.0) | (pit >= 1.0))
    n = valid.sum(axis=1)
    k = outside.sum(axis=1)
    pval = np.where(n > 0, stats.binom.sf(k - 1, np.maximum(n, 1), 0.05), 1.0)
    dev = np.where(valid, np.abs(pit - 0.5), -1.0)
    worst = np.where(n > 0, times[np.arange(len(n)), dev.argmax(axis=1)], np.nan)
    return pd.DataFrame(
        {
            "ppc_n": n.astype(int),
            "ppc_outside95": k.astype(int),
            "ppc_fraction_outside95": np.where(n > 0, k / np.maximum(n, 1), np.nan),
            "ppc_pvalue": pval,
            "ppc_extreme": extreme.sum(axis=1).astype(int),
            "ppc_worst_time": worst,
        },
        index=pd.Index(list(post.patient_ids), name="patient"),
    )


def _robust_location_scatter(x: np.ndarray, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """Median/MAD start, then one reweighting step (points within the chi-square cut-off).

    A small stand-in for the MCD estimator (Rousseeuw 1984) without extra dependencies:
    outlying patients do not inflate the scatter they are measured against.
    """
    med = np.median(x, axis=0)
    mad = 1.4826 * np.median(np.abs(x - med), axis=0)
    sd = np.where(mad > 0, mad, x.std(axis=0) + 1e-12)
    z = (x - med) / sd
    keep = (z**2).sum(axis=1) <= stats.chi2.ppf(0.975, x.shape[1])
    if keep.sum() <= x.shape[1] + 1:
        keep = np.ones(len(x), bool)
    loc = x[keep].mean(axis=0)
    cov = np.cov(x[keep], rowvar=False).reshape(x.shape[1], x.shape[1])
    cov = cov + 1e-9 * np.diag(np.diag(cov) + 1e-12)
    return loc, cov


def _signal_columns(post) -> set[str]:
    """Covariate columns that are the model's measured input signals (not covariates)."""
    return set(getattr(post.model, "signals", ()))


def _time_varying_support(
    series: pd.DataFrame,
    names: list[str],
    ids: list[str],
    table: pd.DataFrame,
    flags: dict[str, list[str]],
    th: TrustThresholds,
) -> None:
    """Every recorded value of each time-varying covariate against the cohort's values.

    Robust z-score of each value (median and MAD of all values recorded in the cohort);
    a patient's largest ``|z|`` enters ``covariate_max_abs_z`` and, beyond
    ``th.covariate_z_max``, a flag naming the value and its time. Updates ``table`` and
    ``flags`` in place.
    """
    for c in names:
        part = series[series["covariate"] == c]
        values = pd.to_numeric(part["value"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(values)
        if ok.sum() < 5:
            continue
        pid = part["id"].astype(str).to_numpy()[ok]
        time = part["time"].to_numpy(dtype=float)[ok]
        x = values[ok]
        med = np.median(x)
        mad = 1.4826 * np.median(np.abs(x - med))
        sd = mad if mad > 0 else x.std() + 1e-12
        z = (x - med) / sd
        for p in ids:
            mine = pid == p
            if not mine.any():
                continue
            k = np.flatnonzero(mine)[np.argmax(np.abs(z[mine]))]
            current = table.at[p, "covariate_max_abs_z"]
            table.at[p, "covariate_max_abs_z"] = np.nanmax([current, abs(z[k])])
            if abs(z[k]) > th.covariate_z_max:
                others = x[~mine]
                side = "above" if z[k] > 0 else "below"
                flags[p].append(
                    f"{c} = {x[k]:.4g} at time {time[k]:g} (a time-varying covariate) lies far "
                    f"{side} the values recorded in the rest of the cohort (robust z "
                    f"{z[k]:+.1f}; others range {others.min():.4g}–{others.max():.4g})."
                )


def covariate_support(post, th: TrustThresholds) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]]]:
    """Where each patient's covariates lie relative to the rest of the cohort.

    Numeric covariates (constant within patients; measured signals excluded): robust
    z-score of each (median and MAD of the cohort), and the robust Mahalanobis distance of
    all of them together. Time-varying numeric covariates (measured signals excluded):
    every recorded value, not only the first, against all values recorded in the cohort
    (:func:`_time_varying_support`). Categorical covariates: how many *other* patients
    share the level.

    Returns
    -------
    table
        ``covariate_max_abs_z``, ``mahalanobis_d2``, ``mahalanobis_p`` per patient.
    flags
        Per patient id, plain-language descriptions of covariates out of support.
    """
    cohort = post.cohort
    ids = list(post.patient_ids)
    cov = cohort.covariates.reindex(ids)
    skip = set(cohort.time_varying) | _signal_columns(post)
    numeric = [
        c
        for c in cov.columns
        if c not in skip
        and pd.api.types.is_numeric_dtype(cov[c])
        and cov[c].notna().all()
        and cov[c].nunique() > 2
    ]
    categorical = [
        c
        for c in cov.columns
        if c not in skip and c not in numeric and not pd.api.types.is_numeric_dtype(cov[c])
    ]
    flags: dict[str, list[str]] = {pid: [] for pid in ids}
    table = pd.DataFrame(index=pd.Index(ids, name="patient"))
    table["covariate_max_abs_z"] = np.nan
    table["mahalanobis_d2"] = np.nan
    table["mahalanobis_p"] = np.nan
    if numeric and len(ids) >= 5:
        x = cov[numeric].to_numpy(float)
        med = np.median(x, axis=0)
        mad = 1.4826 * np.median(np.abs(x - med), axis=0)
        sd = np.where(mad > 0, mad, x.std(axis=0) + 1e-12)
        z = (x - med) / sd
        table["covariate_max_abs_z"] = np.abs(z).max(axis=1)
        for i, pid in enumerate(ids):
            for j, c in enumerate(numeric):
                if abs(z[i, j]) > th.covariate_z_max:
                    others = np.delete(x[:, j], i)
                    side = "above" if z[i, j] > 0 else "below"
                    flags[pid].append(
                        f"{c} = {x[i, j]:.4g} lies far {side} the rest of the cohort "
                        f"(robust z {z[i, j]:+.1f}; others range {others.min():.4g}–{others.max():.4g})."
                    )
        if len(ids) > 2 * len(numeric) + 2:
            loc, scatter = _robust_location_scatter(x, th.mahalanobis_quantile)
            d = x - loc
            d2 = np.einsum("ij,jk,ik->i", d, np.linalg.pinv(scatter), d)
            p = stats.chi2.sf(d2, len(numeric))
            table["mahalanobis_d2"] = d2
            table["mahalanobis_p"] = p
            cut = stats.chi2.ppf(th.mahalanobis_quantile, len(numeric))
            for i, pid in enumerate(ids):
                if d2[i] > cut:
                    flags[pid].append(
                        f"The combination of {', '.join(numeric)} is unusual for this cohort "
                        f"(robust Mahalanobis distance {np.sqrt(d2[i]):.1f}, cut-off {np.sqrt(cut):.1f})."
                    )
    varying = [c for c in cohort.time_varying if c not in _signal_columns(post)]
    if varying and len(ids) >= 5:
        _time_varying_support(cohort.covariate_series, varying, ids, table, flags, th)
    for c in categorical:
        col = cov[c].astype(object)
        counts = col.value_counts(dropna=False)
        for pid in ids:
            v = col.loc[pid]
            others = int(counts.get(v, 0)) - 1
            if others < th.min_category_count:
                flags[pid].append(
                    f"{c} = {v!r} is shared by only {others} other patient(s) in the cohort."
                )
    return table, {k: tuple(v) for k, v in flags.items()}
