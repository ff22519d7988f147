"""Data-driven model checks: does the model describe what the data show.

:func:`twin_uq.testing.check_model` checks a model on its own; this module checks it
against a cohort, from the quick pooled fit of the pre-fit check
(:func:`twin_uq.inference.prefit.pooled_fit`), for two mistakes that no error catches:

* **A missing lag** (:func:`missing_lag`). After a dose into a compartment no output
  observes (an absorption depot), the first observation is measured before the drug
  arrives: zero, below the limit of quantification, or far below what a model without a
  lag time predicts from the first instant. The check counts those first observations that
  the pooled fit over-predicts by more than a factor 2 (or that are censored below a
  limit the model puts them at least twice above) and compares the count with how often
  the other observations are that far off. Many, far more often than elsewhere: the
  model lacks a lag (``one_compartment_oral_lag``, ``tq.with_dose_parameters``).
* **A time unit that is not the data's** (:func:`time_unit_mismatch`). Data in minutes
  read as hours make every rate constant and clearance (unit with time in the
  denominator) 60 times smaller than the model's typical values, and every time constant
  (a lag, a mean transit time) 60 times larger; hours read as days, 24 times; and so on.
  The check converts each such parameter's pooled estimate / prior median into the time
  factor it implies and names the unit when at least two parameters agree on a factor of
  a known unit (within a factor 2 of their median, the unit's factor within a factor 2 of
  that median). One parameter far from its prior is a prior-data conflict (the drug may
  simply be different), not a unit.

Both run in the pre-fit check of every fit (``prior_check`` not ``"off"``; findings are
:class:`ModelDataMismatch` warnings and are recorded in ``attrs["prior_check"]``) and on
their own through :func:`check_data` (command line: ``twin-uq check``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from twin_uq.data.model_checks import observed_states
from twin_uq.data.time_units import SECONDS, known_time_unit
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prefit import (
    DataFinding,
    PooledFit,
    PriorReview,
    review_typical_values,
)
from twin_uq.inference.prepare import PreparedFit, prepare_fit
from twin_uq.model.load import list_models
from twin_uq.model.scales import to_natural

if TYPE_CHECKING:
    from twin_uq.data import Cohort
    from twin_uq.model.base import Model, SolverSettings

__all__ = [
    "DataCheckReport",
    "ModelDataMismatch",
    "check_data",
    "data_findings",
    "missing_lag",
    "time_exponent",
    "time_unit_mismatch",
]

#: An observation counts as over-predicted below this fraction of its prediction.
OVER_FACTOR = 0.5
#: Significance of the excess of over-predicted first observations (one-sided binomial).
LAG_ALPHA = 1e-3
#: Tolerance (factor) of agreement between parameters' implied time factors.
UNIT_TOLERANCE = 2.0


class ModelDataMismatch(UserWarning):
    """The data show something the model does not describe (a lag, another time unit)."""


# ---- time unit ------------------------------------------------------------------------------


def time_exponent(unit: str, time_unit: str) -> int:
    """The power of the model's time unit in a parameter's unit: ``"1/h"`` -1, ``"h"`` +1.

    ``"L/h"`` -1, ``"L/h/kg"`` -1, ``"h^-1"`` -1, ``"mg"`` 0. Tokens are compared with
    the time unit's canonical spelling (``"hr"`` is ``"h"``).
    """
    wanted = known_time_unit(time_unit) or str(time_unit).strip().lower()
    text = str(unit).replace("·", "*").replace(" ", "*")
    parts = text.split("/")
    total = 0
    for k, part in enumerate(parts):
        sign = 1 if k == 0 else -1
        for token in filter(None, re.split(r"\*", part)):
            base, _, power = token.partition("^")
            try:
                p = int(power) if power else 1
            except ValueError:
                continue
            name = base.strip().lower()
            if (known_time_unit(name) or name) == wanted:
                total += sign * p
    return total


def time_unit_mismatch(
    model: Model, prior_loc: np.ndarray, pooled: PooledFit, cohort: Cohort | None = None
) -> DataFinding | None:
    """The time unit the pooled estimates point to, when it is not the model's (or None).

    Parameters
    ----------
    model
        The model (its parameters' units and card's time unit).
    prior_loc
        ``(K,)`` prior means of the typical values on the latent scale.
    pooled
        The pooled fit (only a converged one is read).
    cohort
        For the time span of the observations, quoted in the message.
    """
    if not pooled.converged:
        return None
    model_unit = known_time_unit(model.card.time_unit)
    if model_unit is None:
        return None
    prior = np.asarray(to_natural(model, np.asarray(prior_loc, float)))
    estimate = np.asarray(to_natural(model, np.asarray(pooled.log_typical, float)))
    implied: dict[str, float] = {}
    for k, p in enumerate(model.parameters):
        e = time_exponent(p.unit, model_unit)
        if e == 0 or not (prior[k] > 0 and estimate[k] > 0):
            continue
        # Data in a unit c model units long: numeric times are 1/c of the model's, so a
        # quantity with time power e is estimated c**(-e) times its value.
        implied[p.name] = -math.log(estimate[k] / prior[k]) / e
    if len(implied) < 2:
        return None
    centre = float(np.median(list(implied.values())))
    tol = math.log(UNIT_TOLERANCE)
    agree = {n: v for n, v in implied.items() if abs(v - centre) < tol}
    if len(agree) < 2:
        return None
    candidates = {u: math.log(SECONDS[u] / SECONDS[model_unit]) for u in SECONDS if u != model_unit}
    unit, log_c = min(candidates.items(), key=lambda kv: abs(kv[1] - centre))
    if abs(log_c - centre) >= tol:
        return None
    factor = math.exp(log_c)
    how = ", ".join(
        f"{n} {estimate[k]:.3g} vs prior {prior[k]:.3g} ({estimate[k] / prior[k]:.3g}x)"
        for k, n in enumerate(model.parameter_names)
        if n in agree
    )
    span = ""
    if cohort is not None and cohort.obs_mask.any():
        t = cohort.obs_time[cohort.obs_mask]
        span = f" The observations span {t.min():.4g} to {t.max():.4g} {model.card.time_unit}."
    declared = (
        f"declared {cohort.time_unit!r}"
        if cohort is not None and cohort.time_unit is not None
        else f"assumed {model_unit!r}, the model's unit"
    )
    message = (
        f"Time unit: the data's time scale is {1 / factor:.4g}x the model's. The pooled "
        f"estimates of {how} all point to TIME in {unit!r}, not {model_unit!r} ({declared})."
        f"{span} If the records are in {unit!r}, read them with time_unit={unit!r} and convert "
        f"to {model_unit!r} (multiply TIME, II and DUR by {factor:.4g}); if the unit is right, "
        "the drug's rates are far from the model's defaults: check the doses and the model."
    )
    details = {
        "likely_unit": unit,
        "model_unit": model_unit,
        "factor": factor,
        "implied_log_factor": {n: round(v, 4) for n, v in implied.items()},
    }
    return DataFinding("time_unit", message, details)


# ---- missing lag ----------------------------------------------------------------------------


def _depot_compartments(model: Model) -> set[int]:
    """1-based compartments no output observes and without a declared lag."""
    seen = observed_states(model)
    if seen is None:
        return set()
    lagged = {c for c, d in model.dose_parameters.items() if d.lag is not None}
    return {k + 1 for k, s in enumerate(seen) if not s} - lagged


def _doses(cohort: Cohort, k: int, default_cmt: int) -> list[tuple[float, int]]:
    """``(time, cmt)`` of every dose of patient ``k`` in time order (cmt 0 -> default)."""
    out = [(b.time, b.cmt) for b in cohort.boluses[k]]
    out += [(i.start, i.cmt) for i in cohort.infusions[k]]
    out += [(m.start, m.cmt) for m in cohort.modelled[k]]
    return sorted((float(t), int(c) or default_cmt) for t, c in out)


def _first_after(
    cohort: Cohort, depots: set[int], default_cmt: int
) -> list[tuple[int, int, float]]:
    """``(patient, obs index, dose time)`` of the first observation after each depot dose.

    Only observations before the patient's next dose (of any kind) count, and not those at
    the dose's own time (a pre-dose sample is zero with or without a lag).
    """
    out = []
    for k in range(cohort.n_patients):
        doses = _doses(cohort, k, default_cmt)
        times = cohort.obs_time[k]
        mask = cohort.obs_mask[k]
        for j, (t0, cmt) in enumerate(doses):
            if cmt not in depots:
                continue
            t_next = doses[j + 1][0] if j + 1 < len(doses) else math.inf
            after = np.flatnonzero(mask & (times > t0) & (times <= t_next))
            if after.size and times[after[0]] < t_next:
                out.append((k, int(after[0]), t0))
    return out


def _over_predicted(value, pred, lloq, cens) -> np.ndarray:
    """Observations far below their prediction (or censored below well under it)."""
    below = cens == 1
    return np.where(below, pred > lloq / OVER_FACTOR, value < OVER_FACTOR * pred)


def missing_lag(model: Model, cohort: Cohort, predictions: np.ndarray) -> DataFinding | None:
    """A lag time the model lacks, from the pooled fit's first observations after doses.

    Parameters
    ----------
    model, cohort
        The model and the cohort (doses, observations).
    predictions
        ``(P, N)`` predictions of each observation at the pooled estimate (NaN where the
        solve failed).
    """
    depots = _depot_compartments(model)
    if not depots:
        return None
    firsts = _first_after(cohort, depots, int(model.default_dose_cmt))
    if len(firsts) < 3:
        return None
    value, lloq, arrays_cens = cohort.obs_value, cohort.obs_lloq, cohort.obs_cens
    pred = np.asarray(predictions, float)
    usable = cohort.obs_mask & np.isfinite(pred) & (pred > 0) & (arrays_cens != -1)
    over = _over_predicted(value, pred, lloq, arrays_cens) & usable
    early = np.zeros_like(usable)
    for k, j, _ in firsts:
        early[k, j] = True
    early &= usable
    n, hits = int(early.sum()), int((over & early).sum())
    rest = usable & ~early
    base = float((over & rest).sum() / max(rest.sum(), 1))
    if n < 3 or hits < 3 or hits < 0.5 * n:
        return None
    p_value = float(stats.binom.sf(hits - 1, n, max(base, 0.05)))
    if p_value >= LAG_ALPHA:
        return None
    unit = model.card.time_unit
    shown = []
    for k, j, t0 in firsts:
        if over[k, j] and early[k, j]:
            obs = "below the limit" if arrays_cens[k, j] == 1 else f"observed {value[k, j]:.3g}"
            shown.append(
                f"{cohort.ids[k]!r} (dose at {t0:g} {unit}, sample at "
                f"{cohort.obs_time[k, j]:g} {unit}: {obs}, predicted {pred[k, j]:.3g})"
            )
    more = f"; and {len(shown) - 5} more" if len(shown) > 5 else ""
    cmt = min(depots)
    sibling = f"{model.name}_lag"
    suggest = f"fit {sibling!r}, or " if sibling in list_models() else ""
    message = (
        f"Missing lag: {hits} of {n} first observations after a dose into compartment "
        f"{cmt} ({model.states[cmt - 1]!r}) lie far below what model {model.name!r} predicts "
        f"(under half the prediction, or censored below a limit under half of it), against "
        f"{base:.0%} of the other observations: {'; '.join(shown[:5])}{more}. The drug "
        f"arrives later than the dose: {suggest}add a lag time with "
        f"tq.with_dose_parameters(model, {cmt}, lag=tq.Parameter('ALAG', {unit!r}, 0.5))."
    )
    details = {
        "compartment": cmt,
        "first_observations": n,
        "over_predicted": hits,
        "rate_elsewhere": round(base, 4),
        "p_value": p_value,
        "patients": sorted({cohort.ids[k] for k, j, _ in firsts if over[k, j] and early[k, j]}),
    }
    return DataFinding("missing_lag", message, details)


# ---- both, from a prepared fit --------------------------------------------------------------


def data_findings(prepared: PreparedFit, pooled: PooledFit) -> tuple[DataFinding, ...]:
    """Both checks on a prepared fit and its pooled fit (nothing from an unconverged one)."""
    if not pooled.converged:
        return ()
    model, cohort = prepared.spec.model, prepared.cohort
    found = []
    unit = time_unit_mismatch(model, np.asarray(prepared.priors.mu_loc), pooled, cohort)
    if unit is not None:
        found.append(unit)
    if pooled.predictions is not None:
        lag = missing_lag(model, cohort, pooled.predictions)
        if lag is not None:
            found.append(lag)
    return tuple(found)


@dataclasses.dataclass(frozen=True)
class DataCheckReport:
    """What :func:`check_data` found: the typical-value review and the model findings.

    ``str()`` gives the block the command line prints.
    """

    review: PriorReview

    @property
    def findings(self) -> tuple[DataFinding, ...]:
        """The model findings (missing lag, time unit)."""
        return self.review.findings

    def __str__(self) -> str:
        r = self.review
        lines = [
            "Pre-fit check (pooled fit: "
            + ("converged" if r.pooled.converged else "did not converge; inconclusive")
            + ")"
        ]
        for c in r.checks:
            flag = "  <- prior-data conflict" if c.conflict else ""
            lines.append(
                f"  {c.parameter:<10} pooled {c.estimate:<10.4g} prior median "
                f"{c.prior_median:<10.4g} {c.unit:<8} z {c.z:+.1f}{flag}"
            )
        if not self.findings:
            lines.append("  no missing lag or time-unit mismatch seen in the data")
        lines += [f"  {f.message}" for f in self.findings]
        return "\n".join(lines)


def check_data(
    model: Model,
    cohort: Cohort,
    *,
    population: PopulationModel | None = None,
    solver: SolverSettings | None = None,
) -> DataCheckReport:
    """Check a model against a cohort before fitting: typical values, lag, time unit.

    Runs the pre-fit check of a fit (the pooled fit, each typical value against its prior)
    and the data-driven model checks of this module, without sampling or warnings: the
    report says what a fit would warn about (``review.adjusted``: the priors ``"adapt"``
    would re-centre).

    Parameters
    ----------
    model
        The model (checked by :func:`twin_uq.load_model` first).
    cohort
        The cohort.
    population
        The population model of the intended fit (default ``PopulationModel(model)``
        with ``centering=0``: the checks do not depend on the centring, so none is
        computed).
    solver
        Solver settings (default the model's).
    """
    spec = population if population is not None else PopulationModel(model, centering=0.0)
    prepared = prepare_fit(spec, cohort, solver)
    review = review_typical_values(prepared)
    review = dataclasses.replace(review, findings=data_findings(prepared, review.pooled))
    return DataCheckReport(review)
