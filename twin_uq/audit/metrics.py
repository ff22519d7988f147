"""Per-patient audit metrics from a fit: observations, trust status, interval width, held-out error.

Predictions come from :mod:`twin_uq.trust.validation` (posterior draws of each patient's
parameters plus residual error), so they are exactly the twins' posterior predictive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin_uq.errors import InputError
from twin_uq.trust.assess import Status
from twin_uq.trust.validation import heldout_predictive, patient_heldout_summary

__all__ = ["STATUS_ORDER", "holdout_table", "patient_metrics"]

STATUS_ORDER = tuple(s.value for s in Status)

#: Common grid size when widths are judged at the cohort's own observation times.
MAX_GRID = 12


def holdout_table(holdout, post) -> pd.DataFrame:
    """Held-out observations as a long table ``id, time, dv[, output]``.

    ``holdout`` is a :class:`~twin_uq.data.Cohort` (its uncensored observations) or a
    DataFrame with columns ``id``, ``time``, ``dv`` and optionally ``output``, ``evid``,
    ``mdv`` (case-insensitive; dose and missing rows are dropped).
    """
    from twin_uq.data import Cohort

    if isinstance(holdout, Cohort):
        rows = []
        names = holdout.outputs or (post.model.output_names[0],)
        for i, pid in enumerate(holdout.ids):
            use = holdout.obs_mask[i] & ~holdout.obs_censored[i]
            for t, v, o in zip(
                holdout.obs_time[i][use],
                holdout.obs_value[i][use],
                holdout.obs_output[i][use],
                strict=True,
            ):
                rows.append(dict(id=pid, time=float(t), dv=float(v), output=names[int(o)]))
        return pd.DataFrame(rows, columns=["id", "time", "dv", "output"])
    if not isinstance(holdout, pd.DataFrame):
        raise TypeError(
            f"holdout must be a Cohort or a DataFrame (id, time, dv), got {type(holdout).__name__}."
        )
    h = holdout.rename(columns={c: c.lower() for c in holdout.columns if isinstance(c, str)})
    missing = [c for c in ("id", "time", "dv") if c not in h.columns]
    if missing:
        raise InputError(
            f"holdout table lacks column(s) {missing}; it has {list(holdout.columns)}."
        )
    keep = np.isfinite(pd.to_numeric(h["dv"], errors="coerce").to_numpy(float))
    if "evid" in h:
        keep &= h["evid"].fillna(0).to_numpy(float) == 0
    if "mdv" in h:
        keep &= h["mdv"].fillna(0).to_numpy(float) == 0
    cols = ["id", "time", "dv", *(["output"] if "output" in h else [])]
    out = h.loc[keep, cols].copy()
    out["id"] = out["id"].astype(str)
    out["dv"] = out["dv"].astype(float)
    return out.reset_index(drop=True)


def _data_verdicts(post, trust) -> pd.Series | None:
    """Each patient's data verdict where ``trust`` carries one (a report or its table)."""
    from twin_uq.trust import TrustReport

    table = trust.table if isinstance(trust, TrustReport) else trust
    if not isinstance(table, pd.DataFrame) or "data_verdict" not in table:
        return None
    verdict = table["data_verdict"].astype(str)
    verdict.index = verdict.index.astype(str)
    return verdict.reindex(list(post.patient_ids))


def _statuses(post, trust) -> pd.Series:
    from twin_uq.trust import TrustReport

    if isinstance(trust, TrustReport):
        status = trust.table["status"]
    elif isinstance(trust, pd.DataFrame):
        status = trust["status"]
    elif isinstance(trust, pd.Series):
        status = trust
    else:
        raise TypeError(
            "trust must be a TrustReport, TrustThresholds, a status Series or a DataFrame "
            f"with a 'status' column; got {type(trust).__name__}."
        )
    status = status.astype(str)
    status.index = status.index.astype(str)
    ids = list(post.patient_ids)
    lacking = [p for p in ids if p not in status.index]
    if lacking:
        raise InputError(f"trust has no status for patient(s) {lacking[:5]}.")
    bad = sorted(set(status) - set(STATUS_ORDER))
    if bad:
        raise InputError(f"Unknown trust status(es) {bad}; expected one of {STATUS_ORDER}.")
    return status.loc[ids]


def _grid_widths(post, interval: float, seed: int) -> np.ndarray:
    """Mean predictive-interval width of every patient at one common grid of times."""
    cd = post.idata["constant_data"]
    mask = np.asarray(cd["obs_mask"].values, bool)
    t = np.asarray(cd["obs_time"].values, float)[mask]
    o = np.asarray(cd["obs_output"].values, int)[mask]
    pairs = sorted(set(zip(o.tolist(), np.round(t, 9).tolist(), strict=True)))
    if not pairs:
        return np.full(len(post.patient_ids), np.nan)
    if len(pairs) > MAX_GRID:
        pick = np.linspace(0, len(pairs) - 1, MAX_GRID).round().astype(int)
        pairs = [pairs[i] for i in sorted(set(pick))]
    P = len(post.patient_ids)
    outs = np.tile(np.array([p[0] for p in pairs], int), (P, 1))
    times = np.tile(np.array([p[1] for p in pairs], float), (P, 1))
    # the solver wants non-decreasing times per patient: order by time across outputs
    order = np.argsort(times[0], kind="stable")
    y = heldout_predictive(post, times[:, order], outs[:, order], seed=seed)
    lo, hi = np.quantile(y, [(1 - interval) / 2, 1 - (1 - interval) / 2], axis=0)
    return (hi - lo).mean(axis=1)


def patient_metrics(
    post, holdout=None, trust=None, interval: float = 0.9, seed: int = 0
) -> pd.DataFrame:
    """One row per patient: the numbers the audit compares between groups.

    Parameters
    ----------
    post
        A :class:`~twin_uq.posterior.CohortPosterior`.
    holdout
        Held-out observations (see :func:`holdout_table`) or ``None``.
    trust
        A TrustReport, TrustThresholds (assessed with them), a status Series, or ``None``
        (``post.trust()``).
    interval
        Central predictive interval judged (width, coverage).

    Returns
    -------
    DataFrame indexed by patient: ``n_obs`` (fit observations), ``status``, ``flagged``
    (1 when limited or worse), ``status_<name>`` indicators, with a trust report
    ``data_verdict`` and ``data_flagged`` (1 unless the patient's data inform the twin), ``width`` (mean width of the
    ``interval`` predictive interval at the held-out times, or without a holdout at a
    common grid of the cohort's observation times, output units) and, with a holdout,
    ``n_heldout``, ``coverage`` (fraction of held-out observations inside the interval)
    and ``mae`` (mean absolute error of the posterior-median prediction).
    """
    from twin_uq.trust import TrustThresholds

    ids = list(post.patient_ids)
    if trust is None or isinstance(trust, TrustThresholds):
        trust = post.trust(trust)
    status = _statuses(post, trust)
    frame = pd.DataFrame(index=pd.Index(ids, name="patient"))
    frame["n_obs"] = np.asarray(post.cohort.n_obs, int)
    frame["status"] = status.to_numpy()
    frame["flagged"] = (status != "trustworthy").astype(float).to_numpy()
    for s in STATUS_ORDER:
        frame[f"status_{s}"] = (status == s).astype(float).to_numpy()
    verdict = _data_verdicts(post, trust)
    if verdict is not None:
        # The data question is answered even where the fit verdict fails (every status
        # "unreliable"), so groups stay comparable on data sufficiency.
        frame["data_verdict"] = verdict.to_numpy()
        frame["data_flagged"] = (verdict != "informed").astype(float).to_numpy()
    if holdout is not None:
        h = holdout_table(holdout, post)
        h = h[h["id"].isin(ids)]
        if h.empty:
            raise InputError("holdout has no observation of any patient of the fit.")
        summ = patient_heldout_summary(post, h, interval=interval, seed=seed)
        frame["width"] = summ["width"].to_numpy(float)
        frame["n_heldout"] = summ["n_heldout"].to_numpy(int)
        frame["coverage"] = summ["coverage"].to_numpy(float)
        frame["mae"] = summ["mae"].to_numpy(float)
    else:
        frame["width"] = _grid_widths(post, interval, seed)
    return frame
