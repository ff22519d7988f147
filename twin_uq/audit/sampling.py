"""The sampling that would close a group's data gap: ``twin.next_measurement`` over a group.

For a group whose twins are more often partly or un-informed by their own data than the
reference group's (the audit's ``data_flagged`` disparity), ask each of its data-poor
patients' twins which single extra measurement would best narrow that patient's
least-informed parameter, and summarise the answers per group: when to sample, how much
the interval is expected to narrow, and how many of those patients would then have that
parameter well informed.

The predicted contraction after the sample uses the width ratio of the parameter's
credible interval as the ratio of posterior standard deviations,
``c_after = 1 - (1 - c_now) * (width_after / width_now)²`` (exact for a normal posterior of
``log θ`` and close for the usual log-normal ones); it is a forecast, not a measurement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from twin_uq.errors import InputError
from twin_uq.twin.next_sample import ParameterInterval

__all__ = ["closing_samples", "closing_sentences", "weakest_parameter"]

#: Candidate times per patient when none are given (evenly over the cohort's sampling span).
N_CANDIDATES = 24


def weakest_parameter(metrics: dict[str, float]) -> tuple[str, float] | None:
    """The parameter with the smallest finite contraction in a trust assessment's metrics.

    ``metrics`` holds ``contraction_<name>`` entries (NaN for fixed or population-only
    parameters, which no measurement of this patient can narrow). ``None`` when no
    parameter has a finite contraction.
    """
    found = {
        k.removeprefix("contraction_"): float(v)
        for k, v in metrics.items()
        if k.startswith("contraction_") and k not in ("contraction_median", "contraction_min")
    }
    finite = {k: c for k, c in found.items() if np.isfinite(c)}
    if not finite:
        return None
    name = min(finite, key=finite.get)
    return name, finite[name]


def _gap_groups(result) -> pd.DataFrame:
    """The (grouping, group) rows whose data-flagged share is detectably above the reference."""
    d = result.disparities
    if d.empty or "metric" not in d:
        return d.iloc[0:0]
    sel = d[(d["metric"] == "data_flagged") & d["detected"].fillna(False).astype(bool)]
    return sel[sel["difference"] > 0]


def _default_times(post) -> np.ndarray:
    cd = post.idata["constant_data"]
    mask = np.asarray(cd["obs_mask"].values, bool)
    t = np.asarray(cd["obs_time"].values, float)[mask]
    if t.size == 0:
        raise InputError("The cohort has no observation times to place candidate samples in.")
    return np.linspace(0.0, float(t.max()), N_CANDIDATES + 1)[1:]


def closing_samples(
    post,
    result,
    trust,
    *,
    candidate_times: Sequence[float] | np.ndarray | None = None,
    groups: Sequence[tuple[str, str]] | None = None,
    max_patients: int = 8,
    n_imagined: int = 64,
    draws: int = 400,
    seed: int = 0,
) -> pd.DataFrame:
    """Best next measurement of each data-poor patient in the groups with a data gap.

    Parameters
    ----------
    post
        The audited :class:`~twin_uq.posterior.CohortPosterior`.
    result
        Its :class:`~twin_uq.audit.AuditResult`.
    trust
        The :class:`~twin_uq.trust.TrustReport` the audit used (for each patient's data
        verdict and per-parameter contraction).
    candidate_times
        ``(T,)`` candidate times (model time unit); default ``N_CANDIDATES`` times evenly
        up to the cohort's last observation time.
    groups
        ``(grouping, group)`` pairs to examine; default: every group whose share of
        partly or un-informed twins is detectably above its reference group's.
    max_patients
        At most this many data-poor patients per group (evenly chosen, in id order).
    n_imagined, draws, seed
        Passed to ``twin.next_measurement`` (imagined measurements, posterior draws).

    Returns
    -------
    pandas.DataFrame
        One row per examined patient: ``grouping``, ``group``, ``patient``,
        ``data_verdict``, ``parameter`` (its least-informed one), ``contraction_now``,
        ``best_time``, ``output``, ``narrowing`` (expected relative shrinkage of that
        parameter's 90 % interval) and ``mcse``, ``contraction_after`` (predicted),
        ``well_informed_after`` (``contraction_after >= contraction_limited``).
    """
    if max_patients < 1:
        raise InputError(f"max_patients must be at least 1, got {max_patients}.")
    times = _default_times(post) if candidate_times is None else np.asarray(candidate_times, float)
    wanted = (
        list(groups)
        if groups is not None
        else list(_gap_groups(result)[["grouping", "group"]].itertuples(index=False, name=None))
    )
    verdicts = trust.table["data_verdict"].astype(str)
    verdicts.index = verdicts.index.astype(str)
    limited = trust.thresholds.contraction_limited
    output = post.model.output_names[0]
    rows = []
    for grouping, group in wanted:
        if grouping not in result.groups:
            raise InputError(
                f"The audit has no grouping {grouping!r}; it has {list(result.groups)}."
            )
        members = result.groups.index[result.groups[grouping].astype(str) == str(group)]
        poor = [str(p) for p in members if verdicts.get(str(p), "informed") != "informed"]
        if len(poor) > max_patients:
            pick = np.linspace(0, len(poor) - 1, max_patients).round().astype(int)
            poor = [poor[i] for i in sorted(set(pick))]
        for pid in poor:
            weak = weakest_parameter(trust[pid].metrics)
            if weak is None:
                continue
            name, c_now = weak
            res = post.twin(pid).next_measurement(
                times,
                goal=ParameterInterval(name),
                output=output,
                n_imagined=n_imagined,
                draws=draws,
                seed=seed,
            )
            best = res.best
            ratio = float(best["after"]) / float(best["now"])
            c_after = 1.0 - (1.0 - c_now) * ratio**2
            rows.append(
                dict(
                    grouping=grouping,
                    group=str(group),
                    patient=pid,
                    data_verdict=verdicts[pid],
                    parameter=name,
                    contraction_now=c_now,
                    best_time=float(best["time"]),
                    output=output,
                    narrowing=float(best["effect"]),
                    mcse=float(best["mcse"]),
                    contraction_after=c_after,
                    well_informed_after=bool(c_after >= limited),
                )
            )
    columns = [
        "grouping", "group", "patient", "data_verdict", "parameter", "contraction_now",
        "best_time", "output", "narrowing", "mcse", "contraction_after", "well_informed_after",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def closing_sentences(samples: pd.DataFrame, time_unit: str = "time units") -> list[str]:
    """One plain-words sentence per examined group of :func:`closing_samples`."""
    out = []
    for (_, group), g in samples.groupby(["grouping", "group"], sort=False):
        t = g["best_time"].to_numpy(float)
        q1, med, q3 = np.quantile(t, [0.25, 0.5, 0.75])
        params = ", ".join(dict.fromkeys(g["parameter"]))
        out.append(
            f"{group}: for {len(g)} partly or un-informed patient(s), one more "
            f"measurement around t = {med:.3g} {time_unit} (interquartile range {q1:.3g}–"
            f"{q3:.3g}) is expected to narrow each one's least-informed parameter ({params}) "
            f"by {np.median(g['narrowing']):.0%} (median); {int(g['well_informed_after'].sum())} "
            f"of {len(g)} would then have it well informed (a forecast from the twins' own "
            "posteriors, not a measurement)."
        )
    return out
