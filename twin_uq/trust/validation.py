"""Does the trust flag mean something? Held-out error and coverage by status.

Used by ``tests/trust/test_validation.py`` (fast) and ``benchmarks/trust_validation.py``
(full study). Predictions at held-out times come straight from the posterior draws of
each patient's parameters (``solve_outputs`` vmapped over draws and patients) plus the
residual error of the same draw, so they are exactly the twin's posterior predictive.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.inference.residual import per_output_residuals, sample_observations, uses_student_t
from twin_uq.simulate.solve import solve_outputs

__all__ = [
    "auc",
    "auc_interval",
    "bootstrap_difference",
    "calibration_table",
    "flag_performance",
    "heldout_predictive",
    "patient_heldout_summary",
    "wilson_interval",
]


def _residual_arrays(post) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw ``(S, O)`` additive and proportional SDs and ``(S,)`` Student-t dof."""
    ds = post.posterior
    S = ds.sizes["chain"] * ds.sizes["draw"]
    outs = list(post.model.output_names)

    def site(var: str, dim: str) -> tuple[list[int], np.ndarray | None]:
        if var not in ds:
            return [], None
        idx = [outs.index(str(o)) for o in ds[dim].values]
        return idx, np.asarray(ds[var].transpose("chain", "draw", dim).values, float).reshape(S, -1)

    nu = np.asarray(ds["nu"].values, float).reshape(S) if "nu" in ds else None
    add, prop, nu = per_output_residuals(
        len(outs), *site("sigma_add", "add_output"), *site("sigma_prop", "prop_output"), nu
    )
    return np.asarray(add), np.asarray(prop), np.asarray(nu)


@functools.partial(jax.jit, static_argnames=("student_t",))
def _noisy(key, f, code, a, b, nu, *, student_t: bool):
    return sample_observations(key, code, f, a, b, nu, student_t=student_t)


def heldout_predictive(
    post,
    times: np.ndarray,
    outputs: np.ndarray,
    seed: int = 0,
    max_draws: int | None = 1000,
    noise: bool | str = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Posterior-predictive draws of new observations of every patient.

    Parameters
    ----------
    post
        A :class:`CohortPosterior`.
    times, outputs
        ``(P, T)`` times and output indices of the held-out observations (pad with any
        valid time; padded entries are ignored by the caller).
    seed
        Seed of the residual noise.
    max_draws
        Thin the posterior to at most this many draws.
    noise
        ``False``: the noise-free model values of the draws (what a forecast of the
        patient's true value is uncertain about), without residual error; ``"both"``:
        ``(values, observations)`` from one solve.

    Returns
    -------
    ``(S, P, T)`` replicate observations (or noise-free values, or both).
    """
    ds = post.posterior
    theta = np.asarray(ds["theta"].values, float)
    theta = theta.reshape(-1, *theta.shape[2:])  # (S, P, K)
    idx = np.arange(theta.shape[0])
    if max_draws is not None and theta.shape[0] > max_draws:
        idx = np.linspace(0, theta.shape[0] - 1, max_draws).round().astype(int)
    theta = theta[idx]
    arrays = post.arrays
    model, settings = post.model, post.solver
    settings = settings.covering(np.asarray(times, float))
    times = jnp.asarray(times, float)
    outputs = np.asarray(outputs, int)

    if arrays.change_time is None:
        f_all = _solve_draws(
            model, settings, jnp.asarray(theta), arrays.covariates, arrays.schedule, times
        )  # (S, P, T, O)
    else:  # time-varying covariates: each patient's parameters along its covariate path
        paths = _parameter_paths(post, idx, arrays.n_segments)  # (S, P, G, K)
        f_all = _solve_draws(
            model,
            settings,
            jnp.asarray(paths),
            arrays.covariates,
            arrays.schedule,
            times,
            arrays.change_time,
        )
    f = np.take_along_axis(np.asarray(f_all), outputs[None, :, :, None], axis=-1)[..., 0]
    if noise is False:
        return f
    add, prop, nu = _residual_arrays(post)
    add, prop, nu = add[idx], prop[idx], nu[idx]
    code = post.error_codes[outputs]  # (P, T)
    a = add[:, outputs]  # (S, P, T)
    b = prop[:, outputs]
    y = _noisy(
        jax.random.PRNGKey(seed),
        jnp.asarray(f),
        jnp.asarray(code)[None],
        jnp.asarray(a),
        jnp.asarray(b),
        jnp.asarray(nu)[:, None, None],
        student_t=uses_student_t(code),
    )
    return (f, np.asarray(y)) if noise == "both" else np.asarray(y)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _solve_draws(model, settings, theta, covariates, schedules, times, change_time=None):
    """``(S, P, T, O)`` outputs of every draw ``theta[s, p]`` of every patient.

    Compiled once per model, solver settings and shapes (the model and the settings are
    static), so repeated trust assessments and audits of one fit reuse it.
    """

    def one_patient(th_s, cov, sched, t, change):
        def solve_one(th):
            return solve_outputs(model, th, cov, sched, t, settings, change_times=change)[1]

        return jax.vmap(solve_one)(th_s)

    axes = (1, 0, 0, 0, None if change_time is None else 0)
    return jax.vmap(one_patient, in_axes=axes, out_axes=1)(
        theta, covariates, schedules, times, change_time
    )


def _parameter_paths(post, idx: np.ndarray, n_segments: int) -> np.ndarray:
    """``(S, P, G, K)`` each patient's draws ``idx`` on every segment of the fit's arrays.

    Patients with fewer segments (or none) repeat their last one, as the padded change
    times (``+inf``) never start.
    """
    out = []
    for pid in post.patient_ids:
        pp = post.patient(pid)
        path = pp.theta_path if pp.theta_path is not None else pp.theta[:, None, :]
        path = path[idx]
        pad = np.repeat(path[:, -1:, :], n_segments - path.shape[1], axis=1)
        out.append(np.concatenate([path, pad], axis=1))
    return np.stack(out, axis=1)


def patient_heldout_summary(
    post,
    heldout: pd.DataFrame,
    interval: float = 0.9,
    error_threshold: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Per patient: held-out absolute error, interval coverage and width.

    Parameters
    ----------
    heldout
        Long table with columns ``id``, ``time``, ``dv`` and optionally ``output`` (name).
    interval
        Central predictive interval judged for coverage.
    error_threshold
        Absolute error (output units) counted as clinically relevant; column
        ``any_large_error``.

    Returns
    -------
    DataFrame indexed by patient: ``n_heldout``, ``mae`` (posterior-median error),
    ``coverage`` (fraction inside the interval), ``any_miss`` (an observation outside),
    ``width`` (mean interval width), ``any_large_error``.
    """
    ids = list(post.patient_ids)
    h = heldout[heldout["id"].astype(str).isin(ids)].copy()
    h["id"] = h["id"].astype(str)
    groups = {pid: g for pid, g in h.groupby("id")}
    T = max((len(g) for g in groups.values()), default=1)
    P = len(ids)
    times = np.ones((P, T))
    outs = np.zeros((P, T), int)
    values = np.full((P, T), np.nan)
    names = list(post.model.output_names)
    for i, pid in enumerate(ids):
        g = groups.get(pid)
        if g is None or g.empty:
            continue
        n = len(g)
        times[i, :n] = g["time"].to_numpy(float)
        times[i, n:] = times[i, n - 1]
        if "output" in g:
            outs[i, :n] = [names.index(str(o)) for o in g["output"]]
        values[i, :n] = g["dv"].to_numpy(float)
    y = heldout_predictive(post, times, outs, seed=seed)
    lo, hi = np.quantile(y, [(1 - interval) / 2, 1 - (1 - interval) / 2], axis=0)
    med = np.median(y, axis=0)
    valid = np.isfinite(values)
    err = np.where(valid, np.abs(med - values), np.nan)
    inside = np.where(valid, (values >= lo) & (values <= hi), np.nan)
    with np.errstate(all="ignore"):
        frame = pd.DataFrame(
            {
                "n_heldout": valid.sum(axis=1),
                "mae": np.nanmean(err, axis=1),
                "coverage": np.nanmean(inside, axis=1),
                "any_miss": np.nansum(1 - np.nan_to_num(inside, nan=1.0), axis=1) > 0,
                "width": np.nanmean(np.where(valid, hi - lo, np.nan), axis=1),
            },
            index=pd.Index(ids, name="patient"),
        )
    if error_threshold is not None:
        frame["any_large_error"] = (
            np.nanmax(np.where(valid, err, -np.inf), axis=1) > error_threshold
        )
    frame.loc[frame["n_heldout"] == 0, ["mae", "coverage", "width"]] = np.nan
    return frame


def auc(score: np.ndarray, outcome: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney): probability a positive outcome scores above a negative one."""
    score = np.asarray(score, float)
    outcome = np.asarray(outcome, bool)
    pos, neg = score[outcome], score[~outcome]
    if pos.size == 0 or neg.size == 0:
        return np.nan
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def bootstrap_difference(
    values: np.ndarray, flagged: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean(flagged) − mean(not flagged) with a 95 % percentile bootstrap interval over patients.

    Resamples patients within each group (stratified), so both groups keep their size.
    """
    values = np.asarray(values, float)
    flagged = np.asarray(flagged, bool)
    ok = np.isfinite(values)
    a, b = values[ok & flagged], values[ok & ~flagged]
    if a.size == 0 or b.size == 0:
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    da = rng.choice(a, (n_boot, a.size)).mean(axis=1)
    db = rng.choice(b, (n_boot, b.size)).mean(axis=1)
    d = da - db
    return float(a.mean() - b.mean()), float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))


def flag_performance(
    status: pd.Series,
    heldout: pd.DataFrame,
    flag_statuses: Sequence[str] = ("limited", "insufficient"),
    score: pd.Series | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out error and coverage of flagged vs trustworthy patients, with uncertainty.

    Parameters
    ----------
    status
        Status per patient (index = patient id).
    heldout
        Output of :func:`patient_heldout_summary`.
    flag_statuses
        Statuses counted as flagged (unreliable patients are left out: their fit is broken,
        not their data).
    score
        Optional continuous flag score (e.g. ``1 - contraction_median``) for a second AUC.

    Returns
    -------
    One row per metric (``mae``, ``coverage``, ``width``, ``any_miss``, ``any_large_error``):
    mean among flagged and trustworthy patients, the difference with a 95 % bootstrap
    interval, and the ROC AUC of the flag (and of ``score``) for the binary outcomes.
    """
    keep = status.isin([*flag_statuses, "trustworthy"])
    st = status[keep]
    h = heldout.loc[st.index]
    h = h[h["n_heldout"] > 0]
    st = st.loc[h.index]
    flagged = st.isin(flag_statuses).to_numpy()
    rows = []
    for col in ("mae", "coverage", "width", "any_miss", "any_large_error"):
        if col not in h:
            continue
        v = h[col].to_numpy(float)
        d, lo, hi = bootstrap_difference(v, flagged, n_boot=n_boot, seed=seed)
        row = {
            "metric": col,
            "n_flagged": int(flagged.sum()),
            "n_trustworthy": int((~flagged).sum()),
            "flagged_mean": float(np.nanmean(v[flagged])) if flagged.any() else np.nan,
            "trustworthy_mean": float(np.nanmean(v[~flagged])) if (~flagged).any() else np.nan,
            "difference": d,
            "diff_lower95": lo,
            "diff_upper95": hi,
        }
        if col in ("any_miss", "any_large_error"):
            row["auc_flag"] = auc(flagged.astype(float), v.astype(bool))
            if score is not None:
                row["auc_score"] = auc(score.loc[h.index].to_numpy(float), v.astype(bool))
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric")


def _auc_ranks(score: np.ndarray, outcome: np.ndarray) -> float:
    """Same as :func:`auc` (midranks count ties as 1/2), in O(N log N) for the bootstrap."""
    from scipy.stats import rankdata

    n1 = int(outcome.sum())
    n0 = outcome.size - n1
    if n1 == 0 or n0 == 0:
        return np.nan
    r = rankdata(score)
    return float((r[outcome].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_interval(
    score: np.ndarray,
    outcome: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """ROC AUC with a 95 % percentile bootstrap interval.

    Parameters
    ----------
    score, outcome
        ``(N,)`` continuous score and binary outcome.
    groups
        ``(N,)`` cluster labels (e.g. patient ids when there are several forecasts per
        patient): whole clusters are resampled. Default: every item is its own cluster.
    n_boot, seed
        Bootstrap resamples and their seed.

    Returns
    -------
    ``(auc, lower95, upper95)``; NaN when one outcome class is empty.
    """
    score = np.asarray(score, float)
    outcome = np.asarray(outcome, bool)
    est = auc(score, outcome)
    if not np.isfinite(est):
        return est, np.nan, np.nan
    labels = np.arange(score.size) if groups is None else np.asarray(groups)
    uniq, inv = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(uniq.size)]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = np.concatenate([members[g] for g in rng.integers(0, uniq.size, uniq.size)])
        a = _auc_ranks(score[pick], outcome[pick])
        if np.isfinite(a):
            boots.append(a)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return est, float(lo), float(hi)


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion ``k / n`` (NaN when ``n == 0``)."""
    if n == 0:
        return np.nan, np.nan
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return float(centre - half), float(centre + half)


def calibration_table(predicted: np.ndarray, outcome: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Predicted vs realised event fraction by quantile bin of the prediction.

    Returns
    -------
    One row per bin (deciles by default; ties can merge bins): ``n``, ``predicted`` (mean
    predicted probability), ``realised`` (event fraction) with its 95 % Wilson interval
    ``realised_lower95`` / ``realised_upper95``, and ``inside`` (predicted within it).
    """
    p = np.asarray(predicted, float)
    y = np.asarray(outcome, bool)
    ok = np.isfinite(p)
    p, y = p[ok], y[ok]
    if p.size == 0:
        return pd.DataFrame(
            columns=["n", "predicted", "realised", "realised_lower95", "realised_upper95", "inside"]
        ).rename_axis("bin")
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(edges.size - 2, 0))
    rows = []
    for b in np.unique(which):
        sel = which == b
        k, n = int(y[sel].sum()), int(sel.sum())
        lo, hi = wilson_interval(k, n)
        pred = float(p[sel].mean())
        rows.append(
            {
                "bin": int(b) + 1,
                "n": n,
                "predicted": pred,
                "realised": k / n,
                "realised_lower95": lo,
                "realised_upper95": hi,
                "inside": bool(lo <= pred <= hi),
            }
        )
    return pd.DataFrame(rows).set_index("bin")
