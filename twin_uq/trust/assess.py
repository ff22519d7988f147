"""Trust status of every patient's twin: status, plain-language reasons, the numbers behind.

The rules (thresholds and their rationale in :class:`TrustThresholds` and docs/trust.md):

1. **unreliable** — the fit did not converge globally (population R-hat / ESS,
   divergences, a single chain) or for this patient (R-hat / ESS of its parameters), or
   the model could not be solved at some of its posterior draws;
2. **insufficient** — no uncensored observation, or no parameter's posterior contraction
   reaching ``contraction_insufficient``;
3. **limited** — moderate median contraction (the sentence names the well and the weakly
   informed parameters), fewer observations than parameters, observations
   bunched in a short window, misfit of its own observations, covariates outside the
   cohort's support, an approximate fit (``approximate_cap``), or a trust score
   ``p_miss`` (probability that the twin's value misses a clinical margin over the
   cohort's usual sampling times, :mod:`twin_uq.trust.score`) of at least
   ``p_miss_limited``;
4. **trustworthy** — none of the above.

The status is the most severe that applies; every rule that applies adds a reason.
Two questions are also answered apart (:attr:`TrustAssessment.fit_verdict`: rule 1 and
the approximation; :attr:`TrustAssessment.data_verdict`: rules 2 and 3 without the
approximation), so that one global convergence problem or an approximate fit does not
hide which patients' data inform their twins.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from twin_uq.trust.metrics import (
    CohortMetrics,
    covariate_support,
    global_fit_quality,
    information_metrics,
    patient_convergence,
    ppc_metrics,
)
from twin_uq.trust.score import patient_scores
from twin_uq.trust.thresholds import TrustThresholds

__all__ = ["Status", "TrustAssessment", "TrustReport", "assess_cohort", "assess_patient"]


class Status(StrEnum):
    """Trust status of a twin, ordered from best to worst (compare with ``severity``)."""

    TRUSTWORTHY = "trustworthy"
    LIMITED = "limited"
    INSUFFICIENT = "insufficient"
    UNRELIABLE = "unreliable"

    @property
    def severity(self) -> int:
        """0 (trustworthy) … 3 (unreliable)."""
        return _ORDER.index(self)

    def worst(self, other: Status | str) -> Status:
        """The more severe of two statuses."""
        other = Status(other)
        return other if other.severity > self.severity else self

    def __str__(self) -> str:
        return self.value


_ORDER = (Status.TRUSTWORTHY, Status.LIMITED, Status.INSUFFICIENT, Status.UNRELIABLE)

#: One-line meaning of each status, for reports.
STATUS_MEANING = {
    Status.TRUSTWORTHY: "The twin is informed by enough of the patient's own data and the fit is sound.",
    Status.LIMITED: "Usable with caution: see the reasons.",
    Status.INSUFFICIENT: (
        "The patient's data carry almost no information: simulations show the population "
        "average, not this patient."
    ),
    Status.UNRELIABLE: "Do not use: the fit itself cannot be relied on.",
}


@dataclass(frozen=True)
class TrustAssessment:
    """Trust in one patient's twin.

    Attributes
    ----------
    patient_id
        The patient.
    status
        :class:`Status`; ``str(status)`` gives ``"trustworthy"`` etc.
    reasons
        Plain-language sentences for clinicians, most severe first; empty when trustworthy
        and nothing is worth saying.
    metrics
        The numbers behind the status (contraction per parameter, observation counts,
        R-hat, PPC, covariate distances...), by name.
    thresholds
        The :class:`TrustThresholds` used.
    fit_verdict
        "Can this fit be relied on": ``"sound"``, ``"approximate"`` (SVI / Laplace: no
        convergence check) or ``"unreliable"`` (convergence or solver failures, cohort-wide
        or for this patient).
    data_verdict
        "Does this patient's own data inform the twin", judged whatever the fit verdict:
        ``"informed"``, ``"partly informed"`` (some parameters weakly informed, few or
        bunched measurements, misfit, covariates outside the cohort) or ``"uninformed"``
        (no measurement, or no parameter narrowed).
    fit_reasons, data_reasons
        The reasons behind each verdict (``reasons`` is both, most severe first).
    p_miss
        The continuous trust score: probability, under the twin's posterior, that its
        forecast misses the true value by more than the clinical margin (at one or more of
        the judged times and outputs; :mod:`twin_uq.trust.score`). NaN when not computed
        (no clinical range, or ``score=False``). Also ``metrics["p_miss"]``.
    """

    patient_id: str
    status: Status
    reasons: tuple[str, ...]
    metrics: dict[str, float]
    thresholds: TrustThresholds = field(default_factory=TrustThresholds, repr=False)
    fit_verdict: str = "sound"
    data_verdict: str = "informed"
    fit_reasons: tuple[str, ...] = ()
    data_reasons: tuple[str, ...] = ()
    p_miss: float = float("nan")

    @property
    def score(self) -> float:
        """Same as :attr:`p_miss`."""
        return self.p_miss

    @property
    def flagged(self) -> bool:
        """True unless trustworthy."""
        return self.status is not Status.TRUSTWORTHY

    @property
    def meaning(self) -> str:
        """One-line meaning of the status."""
        return STATUS_MEANING[self.status]

    def __str__(self) -> str:
        lines = [f"{self.patient_id}: {self.status.value} — {self.meaning}"]
        lines.append(f"  fit: {self.fit_verdict}; patient's data: {self.data_verdict}")
        if np.isfinite(self.p_miss):
            lines.append(
                f"  probability of a clinically relevant forecast error: {self.p_miss:.2f}"
            )
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


@dataclass(frozen=True)
class TrustReport:
    """Trust assessments of every patient of a fit.

    Attributes
    ----------
    assessments
        By patient id, in fit order.
    thresholds
        The :class:`TrustThresholds` used (also in ``provenance["thresholds"]`` as JSON).
    provenance
        Where the report comes from: the fit's model, data hash, method, seed, creation
        time, and the thresholds as JSON.
    """

    assessments: Mapping[str, TrustAssessment]
    thresholds: TrustThresholds
    provenance: dict[str, str]

    def __getitem__(self, patient_id: str) -> TrustAssessment:
        return self.assessments[str(patient_id)]

    def __iter__(self):
        return iter(self.assessments.values())

    def __len__(self) -> int:
        return len(self.assessments)

    @property
    def table(self) -> pd.DataFrame:
        """One row per patient: status, both verdicts, reasons and the metric columns.

        Columns ``status``, ``p_miss`` (the trust score), ``fit_verdict``,
        ``data_verdict``, ``reasons`` (joined by " | "), then the metrics.

        ``table.attrs`` holds the provenance (thresholds as JSON included).
        """
        rows = []
        for a in self.assessments.values():
            rows.append(
                {
                    "patient": a.patient_id,
                    "status": a.status.value,
                    "p_miss": a.p_miss,
                    "fit_verdict": a.fit_verdict,
                    "data_verdict": a.data_verdict,
                    "reasons": " | ".join(a.reasons),
                }
                | {k: v for k, v in a.metrics.items() if k != "p_miss"}
            )
        frame = pd.DataFrame(rows).set_index("patient")
        frame.attrs.update(self.provenance)
        return frame

    def to_dataframe(self) -> pd.DataFrame:
        """Same as :attr:`table`."""
        return self.table

    def counts(self) -> pd.Series:
        """Number of patients per status (all four statuses, in order of severity)."""
        s = pd.Series([a.status.value for a in self.assessments.values()], dtype=object)
        return s.value_counts().reindex([x.value for x in _ORDER], fill_value=0).rename("patients")

    def flagged(self) -> list[str]:
        """Patients whose status is not trustworthy."""
        return [a.patient_id for a in self.assessments.values() if a.flagged]

    def __str__(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        return f"TrustReport: {len(self)} patients ({counts})"


# ---- rules -------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _contraction_text(name: str, c: float) -> str:
    # Contraction below zero is Monte Carlo noise, or data pulling the patient away from
    # the population without narrowing anything: "none", with the number kept.
    return f"{name} ({c:.2f})" if c > 0 else f"{name} (none: {c:.2f})"


@dataclass
class _Verdict:
    """Reasons of one question with the most severe status they imply."""

    status: Status = Status.TRUSTWORTHY
    reasons: list[str] = field(default_factory=list)

    def add(self, level: Status, text: str) -> None:
        self.status = self.status.worst(level)
        self.reasons.append(text)


def _fit_rules(row: Mapping[str, float], th: TrustThresholds, fit_reasons) -> _Verdict:
    """Can this fit be relied on (cohort-wide and for this patient's draws)."""
    v = _Verdict()
    for r in fit_reasons:
        v.add(Status.UNRELIABLE, r)
    rhat = row.get("rhat_max", np.nan)
    if np.isfinite(rhat) and rhat > th.rhat_max:
        v.add(
            Status.UNRELIABLE,
            f"The fit did not converge for this patient (R-hat {rhat:.3f}, should be at most {th.rhat_max}).",
        )
    ess = min(row.get("ess_bulk_min", np.nan), row.get("ess_tail_min", np.nan))
    needed = min(th.ess_min, th.ess_per_chain * row.get("chains", 1))
    if np.isfinite(ess) and ess < needed:
        v.add(
            Status.UNRELIABLE,
            f"Too few effective posterior draws for this patient (ESS {ess:.0f}, need {needed:.0f}).",
        )
    ok = row.get("solver_ok_rate", 1.0)
    if ok < th.min_solver_ok:
        v.add(
            Status.UNRELIABLE,
            f"The model could not be solved for {100 * (1 - ok):.1f}% of this patient's posterior draws.",
        )
    return v


def _data_rules(
    row: Mapping[str, float],
    contraction: Mapping[str, float],
    cov_flags: tuple[str, ...],
    post,
    th: TrustThresholds,
) -> _Verdict:
    """Does this patient's own data inform the twin (judged whatever the fit verdict)."""
    v = _Verdict()
    n_obs = int(row["n_obs"])
    n_cens = int(row["n_censored"])
    c_med = row["contraction_median"]
    finite = {k: float(c) for k, c in contraction.items() if np.isfinite(c)}
    n_params = len(contraction)
    min_obs = th.min_observations if th.min_observations is not None else n_params
    informed = {k: c for k, c in finite.items() if c >= th.contraction_limited}
    weak = {k: c for k, c in finite.items() if c < th.contraction_limited}
    if n_obs == 0:
        extra = f" ({n_cens} below the quantification limit)" if n_cens else ""
        v.add(
            Status.INSUFFICIENT,
            f"No measurements{extra}: the twin shows the population average for a patient "
            "with these covariates, not this patient.",
        )
    elif finite and max(finite.values()) < th.contraction_insufficient:
        v.add(
            Status.INSUFFICIENT,
            f"The patient's {n_obs} measurement(s) narrowed none of the parameters "
            f"(contraction: {', '.join(_contraction_text(k, c) for k, c in finite.items())}); "
            "the simulation relies almost entirely on the population average.",
        )
    elif np.isfinite(c_med) and c_med < th.contraction_limited:
        # Judged per parameter: a pinned-down CL is said so even when V and ka are not.
        pinned = (
            f"Well informed: {', '.join(_contraction_text(k, c) for k, c in informed.items())}. "
            if informed
            else ""
        )
        v.add(
            Status.LIMITED,
            f"{pinned}Weakly informed by the measurements: "
            f"{', '.join(_contraction_text(k, c) for k, c in weak.items())}; for these the "
            "population average still weighs heavily.",
        )
    n_eff = float(row.get("n_eff", n_obs))  # autocorrelated residuals count for less
    n_points = int(row.get("n_design_points", n_obs))  # repeats at one time count once
    if n_obs > 0 and n_eff < min_obs:
        worth = f" (worth {n_eff:.1f} independent ones)" if n_eff < n_obs else ""
        v.add(
            Status.LIMITED,
            f"Only {n_obs} measurement(s){worth} for {n_params} parameters; the simulation "
            "relies partly on the population average.",
        )
    elif n_obs > 0 and n_points < min_obs:
        v.add(
            Status.LIMITED,
            f"The {n_obs} measurements were taken at only {n_points} distinct time(s) "
            f"(values of the model's time axis, {_time_unit(post)}) for {n_params} "
            "parameters: repeats at one time do not inform the shape of the response, and "
            "the simulation relies partly on the population average.",
        )
    span_fraction = row.get("span_fraction", np.nan)
    if n_obs > 1 and np.isfinite(span_fraction) and span_fraction < th.min_span_fraction:
        v.add(
            Status.LIMITED,
            f"The measurements cover only {_fmt(row['obs_span'])} {_time_unit(post)} "
            f"({100 * span_fraction:.0f}% of the cohort's typical sampling period); "
            "other phases of the response are not informed.",
        )
    if row.get("ppc_pvalue", 1.0) < th.ppc_outside_pvalue:
        v.add(
            Status.LIMITED,
            f"{int(row['ppc_outside95'])} of {int(row['ppc_n'])} measurements fall outside the "
            "twin's 95% predictive range: the model may not describe this patient well.",
        )
    elif row.get("ppc_extreme", 0) > 0:
        v.add(
            Status.LIMITED,
            f"A measurement (around t = {_fmt(row['ppc_worst_time'])} {_time_unit(post)}) lies beyond "
            "anything the twin predicts: check it for errors or an unmodelled event.",
        )
    for text in cov_flags:
        v.add(Status.LIMITED, f"Covariate outside the cohort's range: {text}")
    return v


def _score_rule(row: Mapping[str, float], th: TrustThresholds) -> str | None:
    """The sentence of the score rule (``p_miss >= p_miss_limited`` → limited), or None.

    The score answers neither question alone (it grows with scarce data and with a wide
    population), so it moves the status but neither verdict.
    """
    p = row.get("p_miss", np.nan)
    if not (np.isfinite(p) and p >= th.p_miss_limited):
        return None
    margins = [
        f"{row[k]:.3g} for {k.removeprefix('score_margin_')}"
        for k in row
        if k.startswith("score_margin_") and np.isfinite(row[k])
    ]
    return (
        f"The twin's own uncertainty gives a {100 * p:.0f}% chance that its forecast misses the "
        f"true value by more than the clinical margin ({', '.join(margins)}) somewhere over "
        "the cohort's usual sampling times."
    )


#: Each question's answer in words, by the most severe status its reasons imply.
_FIT_VERDICT = {Status.TRUSTWORTHY: "sound", Status.UNRELIABLE: "unreliable"}
_DATA_VERDICT = {
    Status.TRUSTWORTHY: "informed",
    Status.LIMITED: "partly informed",
    Status.INSUFFICIENT: "uninformed",
}


def _patient_rules(
    pid: str,
    row: Mapping[str, float],
    contraction: Mapping[str, float],
    cov_flags: tuple[str, ...],
    post,
    th: TrustThresholds,
    fit_reasons: tuple[str, ...],
) -> tuple[Status, list[str], str, list[str], str, list[str]]:
    """Status and reasons, and the two questions' verdicts with their own reasons.

    The status is the most severe of both; an approximate fit caps it at
    ``th.approximate_cap`` and makes the fit verdict ``"approximate"`` (unless unreliable).
    """
    fit = _fit_rules(row, th, fit_reasons)
    data = _data_rules(row, contraction, cov_flags, post, th)
    status = fit.status.worst(data.status)
    reasons = [*fit.reasons, *data.reasons]
    score_text = _score_rule(row, th)
    if score_text:
        status = status.worst(Status.LIMITED)
        reasons.append(score_text)
    fit_verdict = _FIT_VERDICT[fit.status]
    if post.approximate:
        cap = Status(th.approximate_cap)
        if cap.severity > status.severity:
            status = cap
        text = (
            f"Fitted with an approximate method ({post.method}): no convergence check is possible "
            "and uncertainty may be understated; confirm with method='nuts'."
        )
        reasons.append(text)
        fit.reasons.append(text)
        if fit_verdict == "sound":
            fit_verdict = "approximate"
    return status, reasons, fit_verdict, fit.reasons, _DATA_VERDICT[data.status], data.reasons


def _time_unit(post) -> str:
    card = getattr(post.model, "card", None)
    return getattr(card, "time_unit", "") or "time units"


def cohort_metrics(
    post, thresholds: TrustThresholds | None = None, patients: Sequence[str] | None = None
) -> CohortMetrics:
    """All metric tables of a fit (the input of the rules).

    ``patients`` limits the per-patient convergence diagnostics (the costly table) to those
    ids; the other tables are cohort-wide, since they judge a patient against the cohort.
    """
    th = thresholds or TrustThresholds()
    info, ctab = information_metrics(post, th)
    covtab, covflags = covariate_support(post, th)
    return CohortMetrics(
        information=info,
        contraction=ctab,
        convergence=patient_convergence(post, patients),
        ppc=ppc_metrics(post),
        covariates=covtab,
        covariate_flags=covflags,
        fit=global_fit_quality(post, th),
    )


def _assess_all(
    post, th: TrustThresholds, patients: Sequence[str] | None = None, score: bool = True
) -> dict[str, TrustAssessment]:
    ids = list(post.patient_ids) if patients is None else list(patients)
    m = cohort_metrics(post, th, ids)
    tables = [m.information, m.convergence, m.ppc, m.covariates]
    if score:
        tables.append(patient_scores(post, th))
    merged = pd.concat([t.loc[ids] for t in tables], axis=1)
    out: dict[str, TrustAssessment] = {}
    for pid in ids:
        row = merged.loc[pid].to_dict() | m.fit.metrics
        contraction = m.contraction.loc[pid].to_dict()
        status, reasons, fit_v, fit_r, data_v, data_r = _patient_rules(
            pid, row, contraction, m.covariate_flags[pid], post, th, m.fit.reasons
        )
        metrics = {k: _num(v) for k, v in row.items()}
        metrics |= {f"contraction_{k}": _num(v) for k, v in contraction.items()}
        metrics["approximate"] = float(post.approximate)
        p_miss = metrics.get("p_miss", np.nan)
        out[pid] = TrustAssessment(
            pid, status, tuple(reasons), metrics, th, fit_v, data_v, tuple(fit_r), tuple(data_r),
            p_miss,
        )  # fmt: skip
    return out


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def _provenance(post, th: TrustThresholds) -> dict[str, str]:
    attrs = post.idata.attrs
    return {
        "kind": "twin_uq trust report",
        "model_name": str(attrs.get("model_name", post.model.name)),
        "model_source_hash": str(attrs.get("model_source_hash", "")),
        "data_hash": str(attrs.get("data_hash", "")),
        "method": str(post.method),
        "seed": str(attrs.get("seed", "")),
        "fit_created_at": str(attrs.get("created_at", "")),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "thresholds": th.to_json(),
    }


def assess_cohort(
    post, thresholds: TrustThresholds | Mapping | None = None, score: bool = True
) -> TrustReport:
    """Assess the trustworthiness of every patient's twin in a fit.

    Parameters
    ----------
    post
        A :class:`~twin_uq.posterior.CohortPosterior`.
    thresholds
        :class:`TrustThresholds`, a dict of its fields, or ``None`` for the defaults.
    score
        Compute the trust score ``p_miss`` (solves the model at every patient's posterior
        draws over the cohort's usual sampling times) and apply its rule; ``False`` skips
        both.

    Returns
    -------
    TrustReport
    """
    th = _as_thresholds(thresholds)
    return TrustReport(_assess_all(post, th, score=score), th, _provenance(post, th))


def assess_patient(
    post, patient_id: str, thresholds: TrustThresholds | Mapping | None = None, score: bool = True
) -> TrustAssessment:
    """Trust assessment of one patient (covariate support is judged against the cohort).

    Only this patient's convergence diagnostics are computed; the other metrics judge the
    patient against the cohort and are the ones :func:`assess_cohort` gives.

    Raises
    ------
    twin_uq.posterior.UnknownPatientError
        Unknown patient id (with close matches).
    """
    pid = post.patient(patient_id).patient_id  # one resolution, close ids on a typo
    return _assess_all(post, _as_thresholds(thresholds), [pid], score=score)[pid]


def _as_thresholds(thresholds) -> TrustThresholds:
    if thresholds is None:
        return TrustThresholds()
    if isinstance(thresholds, TrustThresholds):
        return thresholds
    if isinstance(thresholds, str):
        return TrustThresholds.from_json(thresholds)
    if isinstance(thresholds, Mapping):
        return TrustThresholds(**dict(thresholds))
    raise TypeError(
        f"thresholds must be TrustThresholds, a dict or None, got {type(thresholds).__name__}."
    )


def report_json(report: TrustReport) -> str:
    """The report as JSON (statuses, reasons, metrics, provenance)."""
    return json.dumps(
        {
            "provenance": report.provenance,
            "patients": [
                {
                    "patient": a.patient_id,
                    "status": a.status.value,
                    "p_miss": None if not np.isfinite(a.p_miss) else a.p_miss,
                    "fit_verdict": a.fit_verdict,
                    "data_verdict": a.data_verdict,
                    "reasons": list(a.reasons),
                    "metrics": {
                        k: (None if not np.isfinite(v) else v) for k, v in a.metrics.items()
                    },
                }
                for a in report
            ],
        }
    )
