"""A continuous trust score: the probability that the twin's forecast misses a clinical margin.

The twin's forecast of a value is the median of its posterior (predictive) draws. Under the
twin's own uncertainty, the forecast misses the truth by more than a clinically relevant
``margin`` (output units) with probability

    p_miss = P(|Y - median(Y)| > margin),   Y ~ the twin's draws,

and, over several times and outputs at once, ``P(any point misses)`` (from the joint draws,
so the dependence between times is kept). If the twin's uncertainty is right, then among
forecasts with ``p_miss = p`` a fraction ``p`` really miss: the score is calibrated by
construction where the posterior is, and ``benchmarks/trust_score_study.py`` checks it out
of sample. Approximate fits (Laplace, SVI) understate uncertainty; their deviations from the
median are widened by ``TrustThresholds.approximate_score_inflation`` before counting.

The margin comes from the caller, from ``TrustThresholds.clinical_margin``, or is
``score_margin_fraction`` times the width of the output's clinically meaningful range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from twin_uq.errors import InputError
from twin_uq.trust.thresholds import TrustThresholds

__all__ = [
    "any_miss_probability",
    "clinical_margins",
    "expected_abs_error",
    "gaussian_miss_probability",
    "miss_probability",
    "patient_scores",
]


def _deviation(draws: np.ndarray, inflation: float) -> np.ndarray:
    """``|draws - median|`` over axis 0, times ``inflation``; NaN draws (failed solves) ignored."""
    if inflation <= 0:
        raise InputError(f"score inflation must be > 0, got {inflation}.")
    d = np.asarray(draws, float)
    with np.errstate(all="ignore"):
        med = np.nanmedian(d, axis=0)
    return inflation * np.abs(d - med[None])


def miss_probability(draws: np.ndarray, margin, *, inflation: float = 1.0) -> np.ndarray:
    """``P(|Y - median(Y)| > margin)`` at every point, from draws of ``Y``.

    Parameters
    ----------
    draws
        ``(S, ...)`` draws (axis 0) of the forecast quantity; NaN draws are left out.
    margin
        Clinically relevant error, output units; scalar or broadcastable to ``draws.shape[1:]``.
    inflation
        Factor on the deviations from the median (> 1 widens an approximate posterior).

    Returns
    -------
    ``draws.shape[1:]`` probabilities in [0, 1] (NaN where no draw is finite).
    """
    dev = _deviation(draws, inflation)
    ok = np.isfinite(dev)
    miss = np.where(ok, dev > np.asarray(margin, float), False)
    with np.errstate(all="ignore"):
        return miss.sum(axis=0) / ok.sum(axis=0)


def any_miss_probability(
    draws: np.ndarray, margin, *, inflation: float = 1.0, keep: int = 0
) -> np.ndarray | float:
    """``P(at least one point misses by more than margin)`` from joint draws.

    Parameters
    ----------
    draws
        ``(S, A_1 ... A_keep, B ...)``: the first ``keep`` axes after the draws are kept
        (e.g. patients), the others (times, outputs) are pooled into "any".
    margin
        Scalar or broadcastable to ``draws.shape[1:]`` (e.g. one margin per output).
    inflation
        As in :func:`miss_probability`.
    keep
        Number of leading non-draw axes kept.

    Returns
    -------
    Float (``keep=0``) or ``draws.shape[1:1 + keep]`` probabilities. A draw with a NaN at
    some point is left out.
    """
    dev = _deviation(draws, inflation)
    axes = tuple(range(1 + keep, dev.ndim))
    ok = np.isfinite(dev).all(axis=axes) if axes else np.isfinite(dev)
    with np.errstate(invalid="ignore"):
        miss = dev > np.asarray(margin, float)
    miss = miss.any(axis=axes) if axes else miss
    with np.errstate(all="ignore"):
        p = np.where(ok, miss, False).sum(axis=0) / ok.sum(axis=0)
    return float(p) if keep == 0 else p


def expected_abs_error(draws: np.ndarray, *, inflation: float = 1.0) -> np.ndarray:
    """``E|Y - median(Y)|`` at every point (the expected absolute error of the forecast)."""
    with np.errstate(all="ignore"):
        return np.nanmean(_deviation(draws, inflation), axis=0)


def gaussian_miss_probability(sd, margin):
    """Closed form for a Gaussian forecast: ``P(|Y - m| > margin) = erfc(margin / (sd √2))``."""
    sd = np.asarray(sd, float)
    margin = np.asarray(margin, float)
    return np.vectorize(math.erfc)(margin / (sd * math.sqrt(2.0)))


def clinical_margins(
    outputs: Sequence[str],
    th: TrustThresholds,
    model=None,
    margin: Mapping[str, float] | float | None = None,
    clinical_range: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, float]:
    """The clinically relevant error of each output (output units); outputs without one are left out.

    Order of precedence: ``margin`` (one value for all outputs, or by output), then
    ``th.clinical_margin``, then ``th.score_margin_fraction`` times the width of the
    clinical range (``clinical_range``, then ``th.clinical_range``, then
    ``Output.clinical_range`` of ``model``).
    """
    ranges: dict[str, tuple[float, float]] = {}
    if model is not None:
        ranges |= {o.name: tuple(o.clinical_range) for o in model.outputs if o.clinical_range}
    ranges |= {k: tuple(v) for k, v in th.clinical_range.items()}
    ranges |= {k: tuple(v) for k, v in (clinical_range or {}).items()}
    out: dict[str, float] = {}
    for o in outputs:
        if o in ranges:
            lo, hi = map(float, ranges[o])
            out[o] = th.score_margin_fraction * (hi - lo)
        if o in th.clinical_margin:
            out[o] = float(th.clinical_margin[o])
    if margin is not None:
        given = margin if isinstance(margin, Mapping) else dict.fromkeys(outputs, margin)
        out |= {o: float(v) for o, v in given.items() if o in outputs}
    for o, m in out.items():
        if not (np.isfinite(m) and m > 0):
            raise InputError(f"the clinical margin of output {o!r} must be > 0, got {m}.")
    return out


def _score_times(post, n_times: int = 12) -> np.ndarray:
    """The cohort's usual sampling times: up to ``n_times`` quantiles of all observation times."""
    cd = post.idata["constant_data"].to_dataset()
    mask = np.asarray(cd["obs_mask"].values, bool)
    times = np.asarray(cd["obs_time"].values, float)[mask]
    if times.size == 0:
        return np.array([])
    grid = np.unique(times)
    if grid.size > n_times:
        grid = np.unique(np.quantile(times, np.linspace(0.0, 1.0, n_times)))
    return grid


def patient_scores(
    post,
    th: TrustThresholds,
    times: Sequence[float] | None = None,
    margin: Mapping[str, float] | float | None = None,
    max_draws: int = 1000,
) -> pd.DataFrame:
    """Every patient's score over the cohort's usual sampling times (noise-free values).

    Parameters
    ----------
    post
        A :class:`CohortPosterior`.
    th
        Margins (``score_margin_fraction``, ``clinical_margin``, ``clinical_range``) and the
        inflation of approximate fits.
    times
        Where the twin's values are judged; default: up to 12 quantiles of the cohort's
        observation times (what the twin is usually asked about).
    margin
        Overrides the margins (one value, or by output).
    max_draws
        Thin the posterior to at most this many draws.

    Returns
    -------
    DataFrame indexed by patient: ``p_miss`` (probability that the twin's value misses its
    median by more than the margin at one or more of ``times`` and outputs),
    ``expected_abs_error_<output>`` (mean over ``times``) and ``score_margin_<output>``.
    Empty columns (NaN) when no output has a margin or there are no times.
    """
    from twin_uq.trust.validation import heldout_predictive  # JAX only when scoring

    ids = list(post.patient_ids)
    names = list(post.model.output_names)
    margins = clinical_margins(names, th, post.model, margin)
    grid = np.asarray(_score_times(post) if times is None else times, float)
    frame = pd.DataFrame(index=pd.Index(ids, name="patient"))
    frame["p_miss"] = np.nan
    if not margins or grid.size == 0:
        return frame
    outs = [names.index(o) for o in margins]
    t_flat = np.tile(grid, len(outs))
    o_flat = np.repeat(outs, grid.size)
    P = len(ids)
    f = heldout_predictive(
        post,
        np.broadcast_to(t_flat, (P, t_flat.size)).copy(),
        np.broadcast_to(o_flat, (P, o_flat.size)).copy(),
        max_draws=max_draws,
        noise=False,
    )  # (S, P, T * O)
    inflation = th.approximate_score_inflation if post.approximate else 1.0
    m_flat = np.repeat([margins[o] for o in margins], grid.size)
    frame["p_miss"] = any_miss_probability(f, m_flat, inflation=inflation, keep=1)
    eae = expected_abs_error(f, inflation=inflation)  # (P, T * O)
    for j, o in enumerate(margins):
        block = eae[:, j * grid.size : (j + 1) * grid.size]
        frame[f"expected_abs_error_{o}"] = np.nanmean(block, axis=1)
        frame[f"score_margin_{o}"] = margins[o]
    return frame
