"""Trust of a twin that is being updated from a stream of readings (e.g. a CGM).

The cohort assessment (:func:`~twin_uq.trust.assess_patient`) judges the fit and how the
patient's data at fit time inform the twin; it needs the cohort posterior and costs seconds.
After each streamed update, :func:`reassess_twin` keeps that verdict and adds the rules
that can change reading by reading, from the updated twin alone:

* the update's sampler: importance sampling with Pareto k-hat >= 0.7 never stands (the
  update falls back to NUTS); NUTS with R-hat above ``rhat_max`` or undefined (NaN or
  infinite, with more than one chain), too few effective draws or divergences makes the
  twin unreliable, as in the fit rules;
* the information in the record: the effective number of readings (an Ornstein-Uhlenbeck
  residual counts a dense trace for less: :func:`ou_effective_observations` at the median
  ``tau`` of the twin's draws) below the number of parameters limits the twin;
* surprise: a reading outside the central interval the twin forecast for it (passed by the
  caller) limits the twin ("check the sensor, or an unmodelled meal or exercise").

Without a cohort assessment the status cannot be better than ``limited``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from twin_uq.inference.residual import ou_effective_observations
from twin_uq.trust.assess import Status, TrustAssessment
from twin_uq.trust.thresholds import TrustThresholds

__all__ = ["reassess_twin"]

NOT_ASSESSED = (
    "The cohort-level trust of this twin was not assessed (pass trust=tq.assess_patient(post, "
    "id)): the fit's convergence and the patient's covariates are unchecked."
)


def _effective_readings(twin) -> tuple[int, float]:
    """``(n, n_eff)``: uncensored observations and their effective number (OU: fewer)."""
    obs = twin.observations
    obs = obs[~obs["censored"].astype(bool)]
    n = len(obs)
    if twin.tau is None:
        return n, float(n)
    n_eff = 0.0
    for k, name in enumerate(twin.model.output_names):
        t = obs.loc[obs["output"] == name, "time"].to_numpy(float)
        tau = float(np.median(twin.tau[:, k]))
        n_eff += ou_effective_observations(t, tau) if tau > 0 else t.size
    return n, n_eff


def reassess_twin(
    twin,
    base: TrustAssessment | None = None,
    *,
    surprise: str | None = None,
    thresholds: TrustThresholds | None = None,
) -> TrustAssessment:
    """The trust of an updated twin: the cohort verdict ``base`` plus the streaming rules.

    Parameters
    ----------
    twin
        The twin after its latest update (its ``history`` holds the update diagnostics).
    base
        The patient's cohort assessment; ``None``: not assessed (status at best limited).
    surprise
        A sentence describing a reading outside the twin's forecast interval, or ``None``.
    thresholds
        Default: ``base.thresholds`` (or the defaults).
    """
    th = thresholds or (base.thresholds if base is not None else TrustThresholds())
    status = Status.TRUSTWORTHY if base is None else base.status
    fit_reasons = () if base is None else tuple(base.fit_reasons)
    data_reasons = () if base is None else tuple(base.data_reasons)
    fit_verdict = "not assessed" if base is None else base.fit_verdict
    data_verdict = "informed" if base is None else base.data_verdict
    new_fit: list[str] = []
    new_data: list[str] = []
    if base is None:
        status = status.worst(Status.LIMITED)
        new_fit.append(NOT_ASSESSED)
    metrics = {} if base is None else dict(base.metrics)
    if twin.history:
        rec = twin.history[-1]
        metrics |= {
            "update_pareto_k": rec.pareto_k,
            "update_r_hat": rec.r_hat,
            "update_ess": rec.ess_bulk,
            "update_divergences": float(rec.divergences),
        }
        bad = []
        if np.isfinite(rec.pareto_k) and rec.pareto_k >= 0.7:
            bad.append(f"importance-sampling k-hat {rec.pareto_k:.2f} (>= 0.7)")
        if np.isfinite(rec.r_hat) and rec.r_hat > th.rhat_max:
            bad.append(f"R-hat {rec.r_hat:.3f} (> {th.rhat_max})")
        elif not np.isfinite(rec.r_hat) and rec.method != "importance" and twin.n_chains > 1:
            # NaN (draws that never vary) or infinite (chains each stuck at their own
            # point): never "at most rhat_max". One chain or importance sampling has no
            # R-hat by construction (NaN), judged by its ESS / k-hat instead.
            bad.append(f"R-hat undefined ({rec.r_hat})")
        needed = min(th.ess_min, th.ess_per_chain * twin.n_chains)  # as the fit rule
        if rec.method != "importance" and rec.ess_bulk < needed:
            bad.append(f"ESS {rec.ess_bulk:.0f}")
        if rec.divergences > 0:
            bad.append(f"{rec.divergences} divergent transitions")
        if bad:
            status = status.worst(Status.UNRELIABLE)
            fit_verdict = "unreliable"
            new_fit.append(
                "The last update's sampler cannot be relied on (" + ", ".join(bad) + "); "
                "refit the cohort or update with more warm-up."
            )
    n, n_eff = _effective_readings(twin)
    metrics |= {"n_obs": float(n), "n_eff": n_eff}
    n_params = len(twin.model.parameter_names)
    min_obs = th.min_observations if th.min_observations is not None else n_params
    if n_eff < min_obs:
        status = status.worst(Status.LIMITED)
        data_verdict = "partly informed" if data_verdict == "informed" else data_verdict
        worth = f" (worth {n_eff:.1f} independent ones)" if n_eff < n else ""
        new_data.append(
            f"Only {n} reading(s){worth} for {n_params} parameters; the twin relies partly "
            "on the population average."
        )
    if surprise:
        status = status.worst(Status.LIMITED)
        data_verdict = "partly informed" if data_verdict == "informed" else data_verdict
        new_data.append(surprise)
    fit_reasons += tuple(new_fit)
    data_reasons += tuple(new_data)
    fields = dict(
        status=status,
        reasons=fit_reasons + data_reasons,
        metrics=metrics,
        fit_verdict=fit_verdict,
        data_verdict=data_verdict,
        fit_reasons=fit_reasons,
        data_reasons=data_reasons,
    )
    if base is None:
        return TrustAssessment(patient_id=twin.patient_id, thresholds=th, **fields)
    return replace(base, **fields)
