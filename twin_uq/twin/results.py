"""Small result objects of twin questions: probabilities, regimen comparisons, dose tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.stats as st
import xarray as xr

from twin_uq.twin.criteria import Criterion, Event

__all__ = [
    "DoseRecommendation",
    "ProbabilityResult",
    "UpdateRecord",
    "WhatIfResult",
    "beta_interval",
    "hit_fraction",
    "probability_percent",
]


def beta_interval(k: float, n: int, interval: float) -> tuple[float, float]:
    """Jeffreys interval: central interval of Beta(k + 1/2, n - k + 1/2).

    With the usual boundary modification (Brown, Cai & DasGupta 2001): the lower limit is
    0 when ``k = 0`` and the upper limit 1 when ``k = n``, so the interval always contains
    the observed proportion.
    """
    a = (1 - interval) / 2
    dist = st.beta(k + 0.5, n - k + 0.5)
    lo = 0.0 if k <= 0 else float(dist.ppf(a))
    hi = 1.0 if k >= n else float(dist.ppf(1 - a))
    return lo, hi


def hit_fraction(hit: np.ndarray, ess: float) -> tuple[float, float, float, float]:
    """``(p, mcse, lower, upper)`` of a per-draw yes/no outcome ``hit`` ``(D,)``.

    ``p`` is the fraction of draws with a hit, ``mcse = sqrt(p (1 - p) / ess)`` its Monte
    Carlo error with ``ess`` effective draws, and ``(lower, upper)`` the 90% Jeffreys
    interval of :func:`beta_interval` over the ``D`` draws.
    """
    n, k = hit.size, int(hit.sum())
    p = k / n
    lo, hi = beta_interval(k, n, 0.9)
    return p, float(np.sqrt(p * (1 - p) / ess)), lo, hi


def probability_percent(p: float, *, in_words: bool = False) -> str:
    """A probability as a whole percentage that reads "0%" or "100%" only when exactly so.

    Below 1% it is ``"<1%"`` and above 99% ``">99%"`` (``in_words``: "less than 1%", "more
    than 99%"), so a rare but possible event is never shown as impossible or certain.
    """
    if p < 0.01:
        return ("less than 1%" if in_words else "<1%") if p > 0 else "0%"
    if p > 0.99:
        return ("more than 99%" if in_words else ">99%") if p < 1 else "100%"
    return f"{100 * p:.0f}%"


_pct = probability_percent  # short name for the sentences below


@dataclass(frozen=True)
class ProbabilityResult:
    """Posterior probability of an event for one patient.

    Attributes
    ----------
    probability
        Fraction of (successfully simulated) posterior draws in which the event happens.
    mcse
        Monte Carlo standard error, ``sqrt(p (1 - p) / ess)`` with ``ess`` the effective
        sample size of the event indicator (the number of draws when it cannot be estimated).
    n_draws, n_failed_draws
        Draws used, and draws excluded because their ODE solve failed.
    lower, upper
        90% Jeffreys interval of the probability given the Monte Carlo draws (Monte Carlo
        uncertainty only; the probability itself already carries the patient's uncertainty).
    """

    event: Event
    probability: float
    mcse: float
    n_draws: int
    n_failed_draws: int
    ess: float
    lower: float
    upper: float
    include_noise: bool
    patient_id: str

    def __float__(self) -> float:
        return self.probability

    def summary(self) -> str:
        """One plain sentence."""
        what = "a measurement of " if self.include_noise else ""
        return (
            f"Patient {self.patient_id}: probability of {what}{self.event.describe()} is "
            f"{_pct(self.probability)} (Monte Carlo error ±{100 * self.mcse:.1f} points, "
            f"{self.n_draws} posterior draws)."
        )


@dataclass(frozen=True)
class WhatIfResult:
    """Side-by-side regimens: predictions, criterion values and P(best).

    Attributes
    ----------
    table
        One row per regimen: ``regimen``, ``median``, ``lower``, ``upper`` (criterion value,
        central ``interval``), ``p_best`` (posterior probability that the regimen is best;
        ties split evenly), ``p_best_mcse``.
    predictions
        Regimen name → prediction Dataset (see :meth:`PosteriorTwin.predict`).
    criterion
        The criterion compared.
    values
        Regimen name → ``(D,)`` criterion value per draw (draws aligned across regimens).
    """

    table: pd.DataFrame
    predictions: dict[str, xr.Dataset]
    criterion: Criterion
    values: dict[str, np.ndarray] = field(repr=False)
    patient_id: str = ""
    interval: float = 0.9

    @property
    def best(self) -> str:
        """The regimen with the highest P(best)."""
        return str(self.table.loc[self.table["p_best"].idxmax(), "regimen"])

    def summary(self) -> str:
        """One plain sentence per regimen."""
        lines = []
        n = len(self.table)
        goal = {"maximize": "highest", "minimize": "lowest", "target": "closest to target"}[
            self.criterion.goal
        ]
        for row in self.table.itertuples():
            lines.append(
                f"Regimen {row.regimen}: {self.criterion.describe()} is {row.median:.3g} "
                f"({100 * self.interval:.0f}% interval {row.lower:.3g}–{row.upper:.3g}); "
                f"probability that it gives the {goal} value of the {n} regimens: {_pct(row.p_best)}."
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class DoseRecommendation:
    """Probability of target attainment per candidate regimen.

    Attributes
    ----------
    table
        One row per candidate: ``candidate``, ``p_target``, ``mcse``, ``lower``, ``upper``
        (90% Jeffreys interval for Monte Carlo error), ``n_draws``; sorted as given.
    best
        Candidate with the highest probability of attaining the target.
    """

    table: pd.DataFrame
    best: str
    target: Event | Criterion
    predictions: dict[str, xr.Dataset] = field(repr=False)
    patient_id: str = ""

    def summary(self) -> str:
        """One plain sentence per candidate and the recommendation."""
        what = self.target.describe()
        lines = [
            f"Candidate {r.candidate}: probability of {what} is {_pct(r.p_target)} "
            f"(Monte Carlo 90% interval {_pct(r.lower)}–{_pct(r.upper)})."
            for r in self.table.itertuples()
        ]
        lines.append(f"Highest probability of target attainment: {self.best}.")
        return "\n".join(lines)


@dataclass(frozen=True)
class UpdateRecord:
    """One conditioning of a twin on new observations.

    Attributes
    ----------
    time
        When the update ran (ISO 8601, UTC).
    rows_added
        Observations added.
    method
        ``"importance"`` (PSIS-checked importance sampling) or ``"nuts-conditional"`` (NUTS
        on the patient's parameters), both given the population posterior.
    r_hat, ess_bulk, divergences
        Diagnostics of the update's sampler (worst over parameters; for importance
        sampling ``r_hat`` is NaN and ``ess_bulk`` is the importance-sampling ESS).
    pareto_k
        PSIS k-hat of importance sampling (NaN for NUTS); reliable below 0.7.
    seconds
        Wall time of the sampling.
    """

    time: str
    rows_added: int
    method: str
    r_hat: float
    ess_bulk: float
    divergences: int
    n_draws: int
    seconds: float
    pareto_k: float = float("nan")

    @property
    def converged(self) -> bool:
        """NUTS: R-hat < 1.01, bulk ESS >= 400, no divergences; importance: k-hat < 0.7, ESS >= 400."""
        if self.method == "importance":
            return bool(self.pareto_k < 0.7 and self.ess_bulk >= 400)
        return bool(self.r_hat < 1.01 and self.ess_bulk >= 400 and self.divergences == 0)
