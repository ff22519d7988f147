"""A fit whose sampler did not sample: detected, named, and never turned into numbers.

A NUTS chain whose every transition diverges (a log density or gradient that is NaN or
infinite where the chain starts, a step size that cannot be adapted) never leaves its
starting point: its "draws" are one point repeated, and summaries of them look like a
posterior with zero-width intervals. R-hat cannot catch it when every chain starts at the
same point (it is 0/0, NaN) and the bulk ESS of constant draws is reported as the number of
draws. Pharmacometric tools stop there (NONMEM: "MINIMIZATION TERMINATED", no estimates
used downstream); so does twin_uq: :func:`twin_uq.fit` raises :class:`FitFailedError`, and a
saved or reloaded posterior with such draws refuses summaries, patient views, twins, trust
and reports, while its ``idata`` and :meth:`~twin_uq.posterior.CohortPosterior.diagnostics`
stay readable for finding the cause.

The rule (:func:`sampler_failure`), over the variables whose convergence decides the
verdict (population quantities, patients' parameters, occasion effects):

* a draw that is not finite (NaN or infinite) — in any method;
* a chain whose draws never change, if it has at least :data:`MIN_DRAWS` draws or every
  transition of it diverged (a working NUTS chain stays put on a transition with
  probability well below one half, so ten identical draws in a row do not happen by
  chance; with fewer, only the divergences tell);
* a chain whose every post-warm-up transition diverged, if it has at least
  :data:`MIN_DRAWS` draws.

A chain that moves with some divergent transitions is a fit that needs attention (its
diagnostics say so, and trust marks its twins unreliable), not a failed one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from twin_uq.errors import UnavailableError

__all__ = ["MIN_DRAWS", "FitFailedError", "SamplerFailure", "draws_failure", "sampler_failure"]

#: Draws per chain from which a chain that never moves, or always diverges, is a failure.
MIN_DRAWS = 10

#: Variables judged (as :data:`twin_uq.posterior.diagnostics.POPULATION_VARS`, + patients').
_JUDGED = (
    *("mu", "omega", "beta", "sigma_add", "sigma_prop", "nu", "omega_occ", "tau"),
    *("theta", "kappa"),
)


@dataclass(frozen=True)
class SamplerFailure:
    """Why a fit's draws are not a posterior.

    Attributes
    ----------
    method
        The fit method (``nuts``, ``svi``, ...).
    stuck
        0-based chains whose draws never changed.
    all_divergent
        0-based chains every post-warm-up transition of which diverged.
    non_finite
        ``variable`` names with NaN or infinite draws.
    draws
        Draws per chain.
    """

    method: str
    stuck: tuple[int, ...]
    all_divergent: tuple[int, ...]
    non_finite: tuple[str, ...]
    draws: int

    def reasons(self) -> list[str]:
        """One plain sentence per finding."""
        out = []
        if self.all_divergent:
            out.append(
                f"every one of the {self.draws} transitions after warm-up diverged in "
                f"{_chains(self.all_divergent)}"
            )
        if self.stuck:
            out.append(
                f"the draws of {_chains(self.stuck)} never moved from one point "
                "(zero-width intervals that would look like certainty)"
            )
        if self.non_finite:
            out.append(f"non-finite (NaN or infinite) draws of {', '.join(self.non_finite)}")
        return out

    def message(self) -> str:
        """What failed, what it means, and what to do."""
        return (
            f"The {self.method} fit did not sample the posterior: "
            + "; ".join(self.reasons())
            + ". These draws are not a posterior: no summary, twin, trust status or report "
            "is made from them. Usual causes: a log density or gradient that is NaN or "
            "infinite where the sampler starts (a prediction of exactly 0 under a "
            "proportional or lognormal error, a parameter outside the model's valid range, "
            "a solver failing at the starting values), or a model and data that disagree "
            "badly. What to do: run tq.check_data(model, cohort); simulate the model at its "
            "prior medians for a few patients (tq.simulate) and look for NaN or zeros; fit "
            "with method='laplace' to find a starting point; keep the default "
            "prior_check='adapt' and centering='auto'. The failed draws stay readable for "
            "this: err.posterior.idata, err.posterior.diagnostics()."
        )

    def record(self) -> str:
        """JSON for ``idata.attrs["sampler_failure"]``."""
        return json.dumps(
            dict(
                method=self.method,
                stuck=list(self.stuck),
                all_divergent=list(self.all_divergent),
                non_finite=list(self.non_finite),
                draws=self.draws,
            )
        )


class FitFailedError(UnavailableError):
    """A fit's sampler did not sample the posterior (see :mod:`twin_uq.posterior.failure`).

    Attributes
    ----------
    failure
        The :class:`SamplerFailure` found.
    posterior
        The failed fit, for finding the cause (its ``idata`` and ``diagnostics()``; every
        summary, view, twin and report of it refuses with this error). ``None`` where the
        error is raised by such a refusal.
    """

    def __init__(self, failure: SamplerFailure, posterior: object | None = None):
        super().__init__(failure.message())
        self.failure = failure
        self.posterior = posterior


def _chains(chains: tuple[int, ...]) -> str:
    words = ", ".join(str(c) for c in chains)
    return f"chain {words}" if len(chains) == 1 else f"chains {words}"


def sampler_failure(idata: xr.DataTree, method: str) -> SamplerFailure | None:
    """The failure of a fit's sampler, or ``None`` where its draws are usable.

    ``idata``: the fit's DataTree (``posterior`` with ``chain`` and ``draw`` dimensions;
    ``sample_stats.diverging`` where the method has it). See the module docstring for the
    rule (:func:`draws_failure` applies it).
    """
    post = idata["posterior"].to_dataset()
    draws = {v: post[v].transpose("chain", "draw", ...).values for v in _JUDGED if v in post}
    diverging = None
    if "sample_stats" in idata.children and "diverging" in idata["sample_stats"]:
        diverging = np.asarray(idata["sample_stats"]["diverging"].values, dtype=bool)
    return draws_failure(draws, diverging, method, shape=(post.sizes["chain"], post.sizes["draw"]))


def draws_failure(
    draws: Mapping[str, np.ndarray],
    diverging: np.ndarray | None,
    method: str,
    *,
    shape: tuple[int, int] | None = None,
) -> SamplerFailure | None:
    """The module's rule on raw sampler output; ``None`` where the draws are usable.

    ``draws``: variable name -> draws ``(chain, draw, ...)``, every variable judged;
    ``diverging``: the divergence flags ``(chain, draw)`` of the post-warm-up transitions
    (``None``: a method without them); ``shape``: ``(chains, draws)`` where ``draws`` may
    be empty (default: that of the first variable). Used by :func:`sampler_failure` for a
    cohort fit and by the twin update (:func:`twin_uq.twin.update.run_update`) for one
    patient's NUTS.
    """
    if shape is None:
        shape = np.shape(next(iter(draws.values())))[:2]
    n_chains, n_draws = shape
    names = list(draws)
    non_finite = tuple(v for v in names if not np.all(np.isfinite(draws[v])))
    # (chain, everything else flattened) per variable; a chain moved if any value changed
    moved = np.zeros(n_chains, dtype=bool)
    for v in names:
        x = np.asarray(draws[v]).reshape(n_chains, n_draws, -1)
        with np.errstate(invalid="ignore"):
            moved |= np.any(np.ptp(x, axis=1) > 0, axis=1) if n_draws > 1 else False
    if diverging is None:
        diverging = np.zeros((n_chains, n_draws), dtype=bool)
    diverging = np.asarray(diverging, dtype=bool)
    all_div = diverging.all(axis=1) & (n_draws > 0)
    long_enough = n_draws >= MIN_DRAWS
    stuck = ~moved & (n_draws > 1) & (long_enough | all_div)
    all_divergent = all_div & (long_enough | stuck)
    if not (stuck.any() or all_divergent.any() or non_finite):
        return None
    return SamplerFailure(
        method=method,
        stuck=tuple(int(c) for c in np.flatnonzero(stuck)),
        all_divergent=tuple(int(c) for c in np.flatnonzero(all_divergent)),
        non_finite=non_finite,
        draws=int(n_draws),
    )
