"""``tq.audit``: subgroup fairness audit of a fit, with uncertainty and plain-words findings.

Two steps: :func:`~twin_uq.audit.metrics.patient_metrics` computes one row of numbers per
patient (needs the fit), :func:`audit_metrics` compares groups of patients (pure pandas /
numpy; also usable with per-patient numbers from elsewhere).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from twin_uq.audit.bootstrap import bayesian_bootstrap, interval_of, point_estimate
from twin_uq.audit.findings import Metric, disparity_sentence, small_group_sentence
from twin_uq.audit.groups import Grouping, make_groupings
from twin_uq.audit.metrics import STATUS_ORDER, patient_metrics
from twin_uq.audit.result import AuditResult
from twin_uq.audit.sampling import closing_samples, closing_sentences
from twin_uq.errors import InputError
from twin_uq.trust import TrustReport, TrustThresholds

__all__ = ["audit", "audit_metrics", "default_metrics"]


def default_metrics(output_unit: str = "output units") -> list[Metric]:
    """The metrics the audit compares, in report order (key metrics first)."""
    return [
        Metric("flagged", "share flagged 'limited' or worse", "mean", True, "proportion"),
        Metric(
            "data_flagged",
            "share whose own data leave the twin partly or un-informed",
            "mean",
            True,
            "proportion",
        ),
        Metric("width", "median predictive interval width", "median", False, output_unit),
        Metric("coverage", "held-out interval coverage", "mean", False, "proportion"),
        Metric("mae", "held-out mean absolute error", "mean", False, output_unit),
        *(
            Metric(f"status_{s}", f"share '{s}'", "mean", True, "proportion", key=False)
            for s in STATUS_ORDER
        ),
    ]


def _resolve_reference(g: Grouping, sizes: pd.Series, reference, min_size: int) -> str | None:
    wanted = reference.get(g.name) if isinstance(reference, Mapping) else reference
    if wanted is not None:
        wanted = str(wanted)
        for label in g.order:
            if label == wanted or label.endswith(f" = {wanted}"):
                return label
        if isinstance(reference, Mapping):
            raise InputError(
                f"reference {wanted!r} for {g.name!r} is not one of its groups {list(g.order)}."
            )
    big = sizes[sizes >= min_size]
    if big.empty:
        return None
    return str(big.idxmax())  # largest group; ties: first in display order


def audit_metrics(
    metrics: pd.DataFrame,
    covariates: pd.DataFrame,
    by: str | Sequence[str],
    *,
    bins: Mapping[str, Sequence[float]] | None = None,
    n_bands: int = 3,
    intersections: bool = False,
    reference: str | Mapping[str, str] | None = None,
    interval: float = 0.9,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    min_group_size: int = 5,
    metric_defs: Sequence[Metric] | None = None,
    notes: Sequence[str] = (),
    settings: Mapping[str, object] | None = None,
) -> AuditResult:
    """Compare per-patient metrics between subgroups.

    Parameters
    ----------
    metrics
        One row per patient (index = patient id) with the columns named in
        ``metric_defs`` (missing columns are skipped) and optionally ``n_obs``.
    covariates
        One row per patient with the ``by`` columns (index = patient id).
    by, bins, n_bands, intersections
        How groups are formed (:func:`~twin_uq.audit.groups.make_groupings`).
    reference
        Reference group per grouping: a value (``"rich"``), a full label
        (``"sampling = rich"``) or ``{grouping: label}``; default the largest group that is
        not small.
    interval
        The predictive interval the metrics were computed for (for the sentences).
    level
        Level of the Bayesian-bootstrap intervals (group estimates and differences).
    n_boot, seed
        Bootstrap replicates and seed (each group × metric gets its own stream).
    min_group_size
        Groups with fewer patients are reported as small and not compared.
    notes
        Extra limitations (e.g. "no holdout given").

    Returns
    -------
    AuditResult
    """
    if not 0 < level < 1:
        raise InputError(f"level must lie strictly between 0 and 1, got {level}.")
    metric_defs = [m for m in (metric_defs or default_metrics()) if m.name in metrics.columns]
    metrics = metrics.copy()
    metrics.index = metrics.index.astype(str)
    cov = covariates.copy()
    cov.index = cov.index.astype(str)
    lacking = [p for p in metrics.index if p not in cov.index]
    if lacking:
        raise InputError(f"No covariates for patient(s) {lacking[:5]}.")
    cov = cov.loc[metrics.index]
    groupings = make_groupings(cov, by, bins=bins, n_bands=n_bands, intersections=intersections)

    rows, drows, found, none_found, small_found = [], [], [], [], []
    for gi, g in enumerate(groupings):
        sizes = g.sizes()
        ref = _resolve_reference(g, sizes, reference, min_group_size)
        draws: dict[tuple[str, str], np.ndarray] = {}
        for ki, label in enumerate(g.order):
            members = g.labels.index[g.labels == label]
            n = int(sizes[label])
            small = n < min_group_size
            base = dict(grouping=g.name, group=label, small=small, reference=label == ref)
            rows.append(
                base
                | dict(
                    metric="patients",
                    estimate=float(n),
                    lower=np.nan,
                    upper=np.nan,
                    n=n,
                    interval="count",
                    unit="patients",
                )
            )
            if "n_obs" in metrics:
                k = metrics.loc[members, "n_obs"].to_numpy(float)
                rows.append(
                    base
                    | dict(
                        metric="obs_per_patient",
                        estimate=float(np.median(k)),
                        lower=float(k.min()),
                        upper=float(k.max()),
                        n=n,
                        interval="median (range)",
                        unit="observations",
                    )
                )
            for mi, m in enumerate(metric_defs):
                v = metrics.loc[members, m.name].to_numpy(float)
                rng = np.random.default_rng([seed, gi, ki, mi])
                d = bayesian_bootstrap(v, m.stat, n_boot, rng, m.binary)
                draws[(label, m.name)] = d
                lo, hi = interval_of(d, level)
                nv = int(np.isfinite(v).sum())
                rows.append(
                    base
                    | dict(
                        metric=m.name,
                        estimate=point_estimate(v, m.stat),
                        lower=lo,
                        upper=hi,
                        n=nv,
                        interval=f"{100 * level:g}% Bayesian bootstrap",
                        unit=m.unit,
                    )
                    | dict(small=small or nv < min_group_size)
                )
        for label in g.order:
            n = int(sizes[label])
            if n < min_group_size:
                small_found.append(small_group_sentence(label, n, min_group_size))
            if label == ref or ref is None:
                continue
            for m in metric_defs:
                vg = metrics.loc[g.labels == label, m.name].to_numpy(float)
                vr = metrics.loc[g.labels == ref, m.name].to_numpy(float)
                ng, nr = int(np.isfinite(vg).sum()), int(np.isfinite(vr).sum())
                small = min(ng, nr) < min_group_size
                diff = point_estimate(vg, m.stat) - point_estimate(vr, m.stat)
                lo, hi = interval_of(draws[(label, m.name)] - draws[(ref, m.name)], level)
                detected = bool(not small and np.isfinite(lo) and (lo > 0 or hi < 0))
                if small:
                    sentence = (
                        f"{m.label.capitalize()}: group {label} ({ng} patients with a value) is "
                        f"too small to judge against {ref}."
                    )
                else:
                    sentence = disparity_sentence(m, label, ref, diff, lo, hi, level, interval)
                    if m.key:
                        (found if detected else none_found).append(sentence)
                drows.append(
                    dict(
                        grouping=g.name,
                        group=label,
                        reference=ref,
                        metric=m.name,
                        difference=diff,
                        lower=lo,
                        upper=hi,
                        n_group=ng,
                        n_reference=nr,
                        interval=f"{100 * level:g}% Bayesian bootstrap",
                        unit=m.unit,
                        small=small,
                        detected=detected,
                        finding=sentence,
                    )
                )
        if ref is None:
            small_found.append(
                f"Grouping {g.name}: every group has fewer than {min_group_size} patients; "
                "no comparison is drawn."
            )
    table = pd.DataFrame(rows)[
        [
            "grouping",
            "group",
            "metric",
            "estimate",
            "lower",
            "upper",
            "n",
            "interval",
            "unit",
            "small",
            "reference",
        ]
    ]
    dcols = [
        "grouping",
        "group",
        "reference",
        "metric",
        "difference",
        "lower",
        "upper",
        "n_group",
        "n_reference",
        "interval",
        "unit",
        "small",
        "detected",
        "finding",
    ]
    disparities = pd.DataFrame(drows, columns=dcols)
    n_compared = int(
        (
            ~disparities["small"]
            & disparities["metric"].isin([m.name for m in metric_defs if m.key])
        ).sum()
    )
    limitations = _limitations(groupings, min_group_size, level, n_compared, notes)
    return AuditResult(
        table=table,
        disparities=disparities,
        findings=[*found, *none_found, *small_found],
        limitations=limitations,
        patient_metrics=metrics,
        groups=pd.DataFrame({g.name: g.labels for g in groupings}),
        settings=dict(settings or {})
        | dict(
            by=list([by] if isinstance(by, str) else by),
            interval=interval,
            level=level,
            n_boot=n_boot,
            seed=seed,
            min_group_size=min_group_size,
            intersections=intersections,
        ),
        metric_defs=tuple(metric_defs),
    )


def _limitations(groupings, min_size, level, n_compared, notes) -> list[str]:
    small = sorted({lab for g in groupings for lab, n in g.sizes().items() if n < min_size})
    out = list(notes)
    if small:
        out.append(
            f"{len(small)} group(s) have fewer than {min_size} patients ({', '.join(small[:6])}"
            f"{', …' if len(small) > 6 else ''}); they are reported but not judged."
        )
    out += [
        f"Intervals are {100 * level:g}% Bayesian-bootstrap intervals over patients: they "
        "describe sampling uncertainty of the patients audited, not uncertainty of the fit "
        "itself beyond what each patient's metrics already carry; with few patients they are "
        "somewhat too narrow.",
        f"{n_compared} comparisons of key metrics were made without correction for multiplicity: "
        f"even with no real disparity about {100 * (1 - level):g}% of them "
        f"(≈{(1 - level) * n_compared:.1f}) would be flagged by chance.",
        "'No difference detected' is not evidence of equality: read the interval for the size "
        "of difference the data cannot rule out.",
        "Coverage and error are judged against the observations held out; intervals come from "
        "the fitted model, so on simulated data coverage is conditional on the model being "
        "right, and on real data a misspecified model can miss for every group alike.",
        "Differences are associations between recorded groups and the twins' behaviour, not "
        "causal effects: a group may differ because it was sampled less, not because of the "
        "attribute that names it.",
        "Groups are defined by recorded covariates only; unrecorded or mis-recorded attributes "
        "cannot be audited, and numeric bands depend on the chosen cut points.",
        "Every patient counts equally (per-patient metrics are averaged), whatever their number "
        "of observations.",
    ]
    return out


def audit(
    post,
    by: str | Sequence[str],
    holdout=None,
    reference: str | Mapping[str, str] | None = None,
    intersections: bool = False,
    interval: float = 0.9,
    n_boot: int = 2000,
    seed: int = 0,
    trust=None,
    *,
    bins: Mapping[str, Sequence[float]] | None = None,
    n_bands: int = 3,
    level: float = 0.95,
    min_group_size: int = 5,
    covariates: pd.DataFrame | None = None,
    next_samples: bool = False,
    candidate_times: Sequence[float] | None = None,
) -> AuditResult:
    """Audit a fit's twins by subgroup: flags, interval widths, coverage and error, with uncertainty.

    Parameters
    ----------
    post
        A :class:`~twin_uq.posterior.CohortPosterior`.
    by
        Covariate column(s) of the cohort (or of ``covariates``) defining the groups.
        Categorical columns give one group per value; numeric ones are cut into bands at
        ``bins={"AGE": [0, 65, 120]}`` or at ``n_bands`` quantiles ("AGE 65–120").
    holdout
        Observations the fit did not see (a Cohort, e.g. the second part of
        ``cohort.split_at(t)``, or a table ``id, time, dv[, output]``). With it the audit
        adds held-out coverage and error and judges widths at the held-out times; without
        it widths are judged at a common grid of the cohort's observation times.
    reference
        The group others are compared with (default: the largest one per grouping).
    intersections
        Also audit every pair of ``by`` columns ("SEX = F & sampling = sparse").
    interval
        Predictive interval judged (width, coverage), e.g. 0.9.
    n_boot, seed
        Bayesian-bootstrap replicates and seed (also the seed of the predictive noise).
    trust
        A TrustReport, TrustThresholds, or a status Series; default ``post.trust()``.
    level
        Level of the reported intervals (default 95%).
    min_group_size
        Groups with fewer patients are reported as "too small to judge".
    covariates
        Extra per-patient columns (index = patient id) to group by, e.g. a derived
        ``age_band``; they take precedence over the cohort's columns of the same name.
    next_samples
        For every group whose twins are detectably more often partly or un-informed by
        their own data than the reference group's, ask each data-poor patient's twin which
        single extra measurement (among ``candidate_times``) would best narrow its
        least-informed parameter (:func:`~twin_uq.audit.sampling.closing_samples`; costs
        about a second or two per patient). The answers are ``result.sampling`` and a
        finding per group.
    candidate_times
        Candidate sampling times for ``next_samples`` (default: evenly up to the cohort's
        last observation time).

    Returns
    -------
    AuditResult
        ``table``, ``disparities``, ``findings``, ``limitations``, ``to_html()``, ...

    Examples
    --------
    >>> train, later = sim.cohort.split_at(24.0)  # doctest: +SKIP
    >>> post = tq.fit(model, train)  # doctest: +SKIP
    >>> res = tq.audit(post, by=["SEX", "AGE"], holdout=later)  # doctest: +SKIP
    >>> res.findings; res.to_html("audit.html")  # doctest: +SKIP
    """
    if not 0 < interval < 1:
        raise InputError(f"interval must lie strictly between 0 and 1, got {interval}.")
    cov = post.cohort.covariates.copy()
    cov.index = cov.index.astype(str)
    if covariates is not None:
        extra = covariates.copy()
        extra.index = extra.index.astype(str)
        cov = cov.drop(columns=[c for c in extra.columns if c in cov.columns]).join(extra)
    if next_samples and (trust is None or isinstance(trust, TrustThresholds)):
        trust = post.trust(trust)  # the sampling step needs the per-parameter contractions
    if next_samples and not isinstance(trust, TrustReport):
        raise InputError(
            "next_samples needs a TrustReport (or thresholds, or None) as trust: a status "
            "Series carries no per-parameter contraction."
        )
    per_patient = patient_metrics(post, holdout=holdout, trust=trust, interval=interval, seed=seed)
    outs = post.model.outputs
    unit = outs[0].unit if len(outs) == 1 else "output units"
    notes = []
    if holdout is None:
        notes.append(
            "No holdout was given: coverage and prediction error are not assessed, and interval "
            "widths are judged at a common grid of the cohort's observation times."
        )
    else:
        none = int((per_patient["n_heldout"] == 0).sum())
        if none:
            notes.append(
                f"{none} patient(s) have no held-out observation; they count for flags but not "
                "for width, coverage and error."
            )
    if post.approximate:
        notes.append(
            f"The fit used an approximate method ({post.method}): intervals may be too narrow "
            "for everyone; confirm with method='nuts'."
        )
    if len(outs) > 1:
        notes.append("Widths and errors are averaged over outputs in their own units.")
    res = audit_metrics(
        per_patient,
        cov,
        by,
        bins=bins,
        n_bands=n_bands,
        intersections=intersections,
        reference=reference,
        interval=interval,
        level=level,
        n_boot=n_boot,
        seed=seed,
        min_group_size=min_group_size,
        metric_defs=default_metrics(unit),
        notes=notes,
        settings=dict(
            model=post.model.name,
            method=post.method,
            patients=len(post.patient_ids),
            holdout="yes" if holdout is not None else "no",
            data_hash=str(post.idata.attrs.get("data_hash", "")),
        ),
    )
    if not next_samples:
        return res
    sampling = closing_samples(post, res, trust, candidate_times=candidate_times, seed=seed)
    unit = getattr(getattr(post.model, "card", None), "time_unit", "") or "time units"
    found = closing_sentences(sampling, unit)
    if not found:
        found = [
            "No group's twins are detectably more often partly or un-informed by their own "
            "data than the reference group's: no sampling to propose."
        ]
    return dataclasses.replace(res, sampling=sampling, findings=[*res.findings, *found])
