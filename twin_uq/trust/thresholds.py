"""The thresholds that turn trust metrics into a status, with the reasoning behind each."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from twin_uq.errors import InputError

__all__ = ["TrustThresholds"]


@dataclass(frozen=True)
class TrustThresholds:
    """Where the trust assessment draws its lines (all configurable; see docs/trust.md).

    A patient is **unreliable** when the numbers themselves cannot be relied on, whatever
    the data: the sampler did not converge (for the whole fit or for this patient) or the
    model could not be solved. **Insufficient** when the patient's own data carry almost
    no information, so the twin is essentially the population average. **Limited** when
    the twin is informed but some aspect calls for caution. Otherwise **trustworthy**.

    Parameters
    ----------
    rhat_max
        Largest acceptable R-hat (population quantities and this patient's parameters).
        1.01 follows Vehtari et al. (2021, *Bayesian Analysis*): above it, chains disagree
        enough that intervals can be badly wrong.
    ess_min
        Smallest acceptable bulk and tail effective sample size; scaled down to
        ``ess_per_chain * chains`` for short runs, as in :meth:`CohortPosterior.diagnostics`.
        Below ~100 per chain, R-hat itself is unreliable and 90 % interval ends carry
        Monte-Carlo error of several percentiles.
    ess_per_chain
        See ``ess_min``.
    max_divergence_fraction
        Divergent transitions allowed (fraction of draws). 0: a single divergence means
        the sampler met geometry it could not explore, which biases every patient's
        posterior, so every patient becomes unreliable.
    min_solver_ok
        Smallest fraction of posterior draws for which the model could be solved for this
        patient. Below 1, part of the posterior mass is where the model breaks down.
    contraction_insufficient
        Median (over parameters) posterior contraction below which the data are deemed to
        carry almost no information: the posterior variance of ``log theta`` is still more
        than 80 % of the variance of a new, unobserved patient's ``log theta``. The twin is
        then mostly the population average, with the patient's name on it.
    contraction_limited
        Median contraction below which the information is moderate (posterior variance
        above half the population variance): the data still let the population dominate.
    min_population_sd
        Parameters whose population SD of ``log theta`` (prior predictive, new patient) is
        below this are left out of the contraction summary: when patients hardly differ
        (CV < 5 %), the population value is already individual, and no data are needed.
    min_observations
        Fewest uncensored observations before the twin counts as data-poor. ``None``: the
        number of model parameters — with fewer observations than parameters, the
        patient's parameters cannot all be identified from their own data.
    min_span_fraction
        Observations spanning less than this fraction of the cohort's median observation
        span are "bunched": they inform the part of the dynamics they cover only.
    ppc_outside_pvalue
        The patient's own observations falling outside the 95 % posterior predictive
        interval more often than expected: flagged when the binomial tail probability of
        that many misses (p = 0.05 each) is below this value. 0.01 keeps the false-alarm
        rate low, because each patient is tested once per fit.
    covariate_z_max
        Robust z-score (median / 1.4826·MAD) of a numeric covariate beyond which it lies
        outside the bulk of the cohort; 3.5 is the outlier cut-off of Iglewicz & Hoaglin
        (1993) for the modified z-score.
    mahalanobis_quantile
        Robust squared Mahalanobis distance of the numeric covariates above this chi-square
        quantile: the combination of covariates is unusual even when each is not.
    min_category_count
        A categorical covariate level held by fewer than this many *other* patients is out
        of the cohort's support: the fit has (almost) no one like this patient.
    approximate_cap
        Best status an approximate fit (SVI, Laplace) can give. Default ``"limited"``:
        approximations have no convergence diagnostics and tend to understate uncertainty
        most for data-poor patients, so a clinician should not see "trustworthy".
    extrapolation_limited
        A prediction reaching further beyond the last observation than this multiple of
        the observed period is a long extrapolation.
    interval_width_limited, interval_width_insufficient
        Widest predictive interval as a fraction of the clinically meaningful range: above
        ``interval_width_limited`` (0.5) the interval spans half the range, so it cannot
        separate clinically different states; above ``interval_width_insufficient`` (1.0)
        it is wider than the whole range and says nothing clinically.
    clinical_range
        Clinically meaningful range per output, overriding ``Output.clinical_range``.
    output_overrides
        Per output name, replacements for ``extrapolation_limited``,
        ``interval_width_limited`` and ``interval_width_insufficient``.
    score_margin_fraction
        The clinically relevant forecast error of the trust score (``p_miss``,
        :mod:`twin_uq.trust.score`), as a fraction of the width of the output's clinically
        meaningful range: 0.1 (0.4 mg/L for a 0-4 mg/L concentration range, 23 mg/dL for
        glucose 70-300 mg/dL), an error that can move a decision between neighbouring
        clinical states.
    clinical_margin
        Per output, the clinically relevant error in output units (overrides
        ``score_margin_fraction``).
    p_miss_limited
        A twin whose value misses the margin somewhere over the cohort's usual sampling
        times with at least this probability (``p_miss``) is at best ``limited``; 0.2: a
        one-in-five chance of a clinically relevant error is too much to act on unchecked.
    approximate_score_inflation
        Factor on the deviations of an approximate fit's (Laplace, SVI) draws from their
        median before ``p_miss`` is counted: these fits understate uncertainty. 1.0: on
        Laplace fits of three models (benchmarks/trust_score_study.py, 2026-12-07) no
        single factor improved calibration (PK models under-, Bergman over-predicted).
    """

    rhat_max: float = 1.01
    ess_min: float = 400.0
    ess_per_chain: float = 100.0
    max_divergence_fraction: float = 0.0
    min_solver_ok: float = 1.0
    contraction_insufficient: float = 0.2
    contraction_limited: float = 0.5
    min_population_sd: float = 0.05
    min_observations: int | None = None
    min_span_fraction: float = 0.25
    ppc_outside_pvalue: float = 0.01
    covariate_z_max: float = 3.5
    mahalanobis_quantile: float = 0.999
    min_category_count: int = 2
    approximate_cap: str = "limited"
    extrapolation_limited: float = 1.0
    interval_width_limited: float = 0.5
    interval_width_insufficient: float = 1.0
    clinical_range: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    output_overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    score_margin_fraction: float = 0.1
    clinical_margin: Mapping[str, float] = field(default_factory=dict)
    p_miss_limited: float = 0.2
    approximate_score_inflation: float = 1.0

    def __post_init__(self) -> None:
        if not self.score_margin_fraction > 0.0:
            raise InputError(
                f"TrustThresholds: score_margin_fraction must be > 0, got {self.score_margin_fraction}."
            )
        if not 0.0 < self.p_miss_limited <= 1.0:
            raise InputError(
                f"TrustThresholds: p_miss_limited must lie in (0, 1], got {self.p_miss_limited}."
            )
        if not self.approximate_score_inflation > 0.0:
            raise InputError(
                "TrustThresholds: approximate_score_inflation must be > 0, got "
                f"{self.approximate_score_inflation}."
            )
        if not 0.0 <= self.contraction_insufficient <= self.contraction_limited <= 1.0:
            raise InputError(
                "TrustThresholds: need 0 <= contraction_insufficient <= contraction_limited <= 1, "
                f"got {self.contraction_insufficient} and {self.contraction_limited}."
            )
        if self.rhat_max < 1.0:
            raise InputError(f"TrustThresholds: rhat_max must be >= 1, got {self.rhat_max}.")
        if self.approximate_cap not in ("trustworthy", "limited", "insufficient", "unreliable"):
            raise InputError(
                f"TrustThresholds: approximate_cap must be a status name, got {self.approximate_cap!r}."
            )
        if not 0.0 < self.mahalanobis_quantile < 1.0:
            raise InputError("TrustThresholds: mahalanobis_quantile must lie in (0, 1).")
        if self.interval_width_limited > self.interval_width_insufficient:
            raise InputError(
                "TrustThresholds: interval_width_limited must not exceed interval_width_insufficient."
            )
        allowed = {"extrapolation_limited", "interval_width_limited", "interval_width_insufficient"}
        for out, over in self.output_overrides.items():
            bad = set(over) - allowed
            if bad:
                raise InputError(
                    f"TrustThresholds.output_overrides[{out!r}] has unknown keys {sorted(bad)}; "
                    f"allowed: {sorted(allowed)}."
                )

    def for_output(self, output: str) -> TrustThresholds:
        """These thresholds with ``output_overrides[output]`` applied."""
        over = dict(self.output_overrides.get(output, {}))
        return dataclasses.replace(self, **over) if over else self

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        d = dataclasses.asdict(self)
        d["clinical_range"] = {k: list(v) for k, v in self.clinical_range.items()}
        d["output_overrides"] = {k: dict(v) for k, v in self.output_overrides.items()}
        d["clinical_margin"] = {k: float(v) for k, v in self.clinical_margin.items()}
        return d

    def to_json(self) -> str:
        """JSON text, stored with every trust output as provenance."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrustThresholds:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        d["clinical_range"] = {k: tuple(v) for k, v in d.get("clinical_range", {}).items()}
        return cls(**d)
