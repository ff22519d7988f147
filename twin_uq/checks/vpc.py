"""Visual predictive check by simulating new patients from the population posterior.

As NONMEM/PsN, nlmixr2 and Pumas do: ``nsim`` new cohorts with the observed design (each
patient's doses, observation times and covariates; fresh random effects; residual noise
from the residual contract) are simulated from the population posterior
(:func:`~twin_uq.checks.simulate.simulate_design`). In every bin of time (or time after
dose), per output and stratum, the observed 10th, 50th and 90th percentiles are compared
with the central ``interval`` of the same percentiles over the simulated cohorts.

* Prediction correction (``pc=True``, Bergstrand et al. 2011): observed and simulated
  values are scaled by ``PRED_bin / PRED`` (:func:`~twin_uq.checks.binning.prediction_correct`),
  which removes the spread that doses and covariates put into a bin.
* Censored data: censored points (and simulated values below the same limit) rank lowest;
  a percentile that falls among them is drawn at the limit and flagged; the fraction below
  the limit per bin is a check of its own (observed against the simulated interval).
* Stratification by a baseline covariate (each level; a numeric one with more than 5
  values splits at its median) or a group column of the data.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin_uq.checks.binning import assign_bins, auto_bins, blq_percentiles, prediction_correct
from twin_uq.checks.simulate import DesignSimulation, observed_design, simulate_design
from twin_uq.errors import InputError

__all__ = ["VPCResult", "strata", "vpc"]

_X_AXES = ("time", "tad")


@dataclass(frozen=True)
class VPCResult:
    """A simulated visual predictive check, as tidy tables.

    Attributes
    ----------
    percentiles
        One row per output, stratum, bin and percentile level: ``output``, ``stratum``,
        ``bin``, ``x_lower``, ``x_upper`` (bin edges), ``x`` (median x of the observations),
        ``n`` (observations), ``lloq`` (the bin's limit of quantification, prediction
        corrected with ``pc``; NaN: none), ``percentile`` (level, e.g. 0.1), ``observed``,
        ``observed_blq`` (the observed percentile lies below the limit), ``sim_lower``,
        ``sim_median``, ``sim_upper`` (the simulated percentile's median and central
        interval), ``outside`` (observed outside the simulated interval).
    blq
        For outputs with censored observations, one row per output, stratum and bin:
        ``observed`` fraction below the limit, ``sim_lower``, ``sim_median``,
        ``sim_upper``, ``outside``.
    observations
        The points: ``patient``, ``output``, ``stratum``, ``x``, ``y`` (prediction
        corrected when ``pc``), ``censored``, ``bin``.
    x
        ``"time"`` or ``"tad"`` (time after dose).
    pc, interval, nsim, seed, by, time_unit, approximate, method
        The settings, and whether the posterior is approximate.
    left_out
        Observations without a bin (before the first dose with ``x="tad"``, or outside
        user bins).
    """

    percentiles: pd.DataFrame
    blq: pd.DataFrame
    observations: pd.DataFrame
    x: str
    pc: bool
    interval: float
    nsim: int
    seed: int
    by: str | None
    time_unit: str
    approximate: bool
    method: str
    left_out: int = 0

    @property
    def outside_fraction(self) -> float:
        """Fraction of observed percentiles (and BLQ fractions) outside their intervals."""
        flags = pd.concat([self.percentiles["outside"], self.blq["outside"]])
        return float(flags.mean()) if len(flags) else float("nan")

    def summary(self) -> pd.DataFrame:
        """Per output and stratum: bins, percentiles compared and how many fell outside."""
        g = self.percentiles.groupby(["output", "stratum"], sort=False)["outside"]
        out = pd.DataFrame({"compared": g.size(), "outside": g.sum()})
        out["outside_fraction"] = out["outside"] / out["compared"]
        out["expected_outside"] = 1.0 - self.interval
        return out

    def plot(self, output: str | None = None):
        """A matplotlib figure: one panel per output and stratum (BLQ panels below)."""
        from twin_uq.checks.plots import plot_vpc

        return plot_vpc(self, output)


def strata(post, by: str | None) -> np.ndarray:
    """``(P,)`` stratum label of every patient by baseline covariate or group column ``by``.

    Categorical or few-valued (at most 5 values) columns give one stratum per value; a
    numeric column with more values splits at its median (``"WT <= 70"``, ``"WT > 70"``).
    """
    P = len(post.patient_ids)
    if by is None:
        return np.full(P, "all", dtype=object)
    cohort = post.cohort
    if by in cohort.covariates.columns or by.lower() in map(str.lower, cohort.covariates.columns):
        col = cohort.covariate_column(by)
        values = cohort.covariates[col].reindex(list(post.patient_ids))
    else:
        table = cohort.table
        match = [c for c in table.columns if str(c).lower() == by.lower()]
        if not match:
            known = ", ".join(map(str, cohort.covariates.columns)) or "none"
            raise InputError(
                f"VPC stratification: no covariate or column {by!r} in the data "
                f"(covariates: {known})."
            )
        first = table.groupby("id", sort=False)[match[0]].first()
        values = first.reindex(list(post.patient_ids))
    if values.isna().any():
        missing = [p for p, v in values.items() if pd.isna(v)][:5]
        raise InputError(f"VPC stratification by {by!r}: no value for patients {missing}.")
    numeric = pd.api.types.is_numeric_dtype(values)
    if numeric and values.nunique() > 5:
        m = float(values.median())
        return np.where(values.to_numpy(float) <= m, f"{by} <= {m:g}", f"{by} > {m:g}").astype(
            object
        )
    return np.asarray([f"{by} = {v}" for v in values], dtype=object)


def _edges(x: np.ndarray, bins) -> np.ndarray:
    if isinstance(bins, str):
        if bins != "auto":
            raise InputError(f"bins must be 'auto', a number of bins or edges, got {bins!r}.")
        return auto_bins(x)
    if np.ndim(bins) == 0:
        return auto_bins(x, int(bins))
    return np.asarray(bins, float)


def vpc(
    post,
    *,
    x: str = "time",
    pc: bool = False,
    by: str | None = None,
    bins: str | int | Sequence[float] = "auto",
    percentiles: Sequence[float] = (0.1, 0.5, 0.9),
    interval: float = 0.9,
    nsim: int = 500,
    seed: int = 0,
    outputs: Sequence[str] | None = None,
    lower_bound: float = 0.0,
    sims: DesignSimulation | None = None,
) -> VPCResult:
    """Visual predictive check of a cohort fit by simulating new patients.

    Parameters
    ----------
    post
        A :class:`~twin_uq.CohortPosterior`.
    x
        ``"time"`` or ``"tad"`` (time after the most recent dose).
    pc
        Prediction-corrected VPC (Bergstrand et al. 2011).
    by
        Baseline covariate or group column to stratify by (see :func:`strata`).
    bins
        ``"auto"`` (:func:`~twin_uq.checks.binning.auto_bins`, per output and stratum), a
        number of quantile bins, or explicit edges (model time unit).
    percentiles
        Percentile levels compared (fractions).
    interval
        Central interval of each simulated percentile.
    nsim, seed
        Simulated cohorts and seed (ignored when ``sims`` is given).
    outputs
        Outputs to check (default: every observed output).
    lower_bound
        Lower bound of the data for the prediction correction (0 for concentrations).
    sims
        A :func:`~twin_uq.checks.simulate.simulate_design` result to reuse.

    Returns
    -------
    VPCResult
    """
    if x not in _X_AXES:
        raise InputError(f"x must be 'time' or 'tad' (time after dose), got {x!r}.")
    if not 0.0 < float(interval) < 1.0:
        raise InputError(f"interval must lie strictly between 0 and 1, got {interval}.")
    levels = np.asarray(percentiles, float)
    if levels.ndim != 1 or np.any((levels <= 0) | (levels >= 1)):
        raise InputError(f"percentiles must be fractions in (0, 1), got {percentiles}.")
    names = post.model.output_names
    wanted = list(names) if outputs is None else list(outputs)
    for o in wanted:
        if o not in names:
            raise InputError(f"Unknown output {o!r}; the model's outputs are {names}.")
    groups = strata(post, by)  # checked before the simulation, which takes a while
    if sims is None:
        sims = simulate_design(post, nsim, seed=seed)
    d = observed_design(post)
    stratum = np.broadcast_to(groups[:, None], d["mask"].shape)
    xs = d["time"] if x == "time" else d["tad"]
    pids = np.broadcast_to(np.asarray(post.patient_ids, dtype=object)[:, None], xs.shape)
    a = (1.0 - float(interval)) / 2
    rows, blq_rows, points = [], [], []
    left_out = 0
    for k, name in enumerate(names):
        if name not in wanted:
            continue
        sel_k = d["mask"] & (d["output"] == k)
        if not sel_k.any():
            continue
        censored_output = bool(d["below"][sel_k].any())
        for s in pd.unique(stratum[sel_k]):
            sel = sel_k & (stratum == s)
            xv = xs[sel]
            edges = _edges(xv, bins)
            b = assign_bins(xv, edges)
            left_out += int((b < 0).sum())
            y = d["value"][sel]
            below = d["below"][sel]
            lloq = d["limit"][sel]
            ysim = sims.y[:, sel]  # (R, n)
            if pc:
                pred = sims.pred[sel]
                pred_bin = np.full_like(pred, np.nan)  # NaN outside every bin
                for j in range(edges.size - 1):
                    pred_bin[b == j] = np.nanmedian(pred[b == j]) if (b == j).any() else np.nan
                y = prediction_correct(y, pred, pred_bin, lower_bound)
                ysim = prediction_correct(ysim, pred, pred_bin, lower_bound)
                lloq = np.where(
                    np.isfinite(lloq), prediction_correct(lloq, pred, pred_bin, lower_bound), lloq
                )
            # A simulated value is censored where the observation has a limit and it falls below.
            sim_below = np.isfinite(lloq)[None, :] & (ysim < lloq[None, :])
            points.append(pd.DataFrame(dict(
                patient=pids[sel], output=name, stratum=s, x=xv, y=y,
                censored=below, bin=b,
            )))  # fmt: skip
            for j in range(edges.size - 1):
                m = b == j
                if not m.any():
                    continue
                lim = float(np.max(lloq[m])) if np.isfinite(lloq[m]).any() else -np.inf
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN replicates
                    obs_q, obs_flag = blq_percentiles(y[m], below[m], lim, levels)
                    sim_q, _ = blq_percentiles(ysim[:, m], sim_below[:, m], lim, levels)  # (L, R)
                    band = np.nanquantile(sim_q, [a, 0.5, 1 - a], axis=1)  # (3, L)
                base = dict(output=name, stratum=s, bin=j, x_lower=edges[j], x_upper=edges[j + 1],
                            x=float(np.median(xv[m])), n=int(m.sum()),
                            lloq=lim if np.isfinite(lim) else np.nan)  # fmt: skip
                for li, q in enumerate(levels):
                    lo, med, hi = band[:, li]
                    rows.append(base | dict(
                        percentile=float(q), observed=float(obs_q[li]),
                        observed_blq=bool(obs_flag[li]), sim_lower=lo, sim_median=med,
                        sim_upper=hi, outside=bool(obs_q[li] < lo or obs_q[li] > hi),
                    ))  # fmt: skip
                if censored_output:
                    frac = below[m].mean()
                    ok = np.isfinite(ysim[:, m])
                    sim_frac = (sim_below[:, m] & ok).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
                    lo, med, hi = np.quantile(sim_frac, [a, 0.5, 1 - a])
                    blq_rows.append(base | dict(
                        observed=float(frac), sim_lower=lo, sim_median=med, sim_upper=hi,
                        outside=bool(frac < lo or frac > hi),
                    ))  # fmt: skip
    if not rows:
        raise InputError("VPC: no observations of the requested outputs in this fit.")
    blq_cols = ["output", "stratum", "bin", "x_lower", "x_upper", "x", "n", "lloq", "observed",
                "sim_lower", "sim_median", "sim_upper", "outside"]  # fmt: skip
    return VPCResult(
        percentiles=pd.DataFrame(rows),
        blq=pd.DataFrame(blq_rows, columns=blq_cols),
        observations=pd.concat(points, ignore_index=True),
        x=x,
        pc=bool(pc),
        interval=float(interval),
        nsim=sims.n_replicates,
        seed=sims.seed,
        by=by,
        time_unit=post.model.card.time_unit,
        approximate=sims.approximate,
        method=sims.method,
        left_out=left_out,
    )
