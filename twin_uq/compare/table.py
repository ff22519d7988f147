"""``tq.compare``: leave-one-out comparison of several fits of the same cohort."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import arviz_stats as azs
import numpy as np
import pandas as pd

from twin_uq.compare.loo import K_THRESHOLD, LooResult, loo
from twin_uq.compare.stacking import stacking_weights
from twin_uq.errors import InputError

if TYPE_CHECKING:
    from twin_uq.posterior import CohortPosterior

__all__ = ["CohortMismatchError", "check_same_cohort", "compare", "comparison_table"]

#: The observation fields two fits must share, as the cohort stores them.
_OBS_FIELDS = ("obs_time", "obs_value", "obs_mask", "obs_censored", "obs_lloq")


class CohortMismatchError(InputError):
    """Fits of different cohorts (patients or observations) cannot be compared."""


def check_same_cohort(posteriors: Mapping[str, CohortPosterior]) -> None:
    """Refuse fits of different data: the same patients with the same observations.

    Raises
    ------
    CohortMismatchError
        Naming the two fits and the patients or observations that differ.
    """
    names = list(posteriors)
    first = names[0]
    ref = posteriors[first].cohort
    for name in names[1:]:
        other = posteriors[name].cohort
        a, b = set(ref.ids), set(other.ids)
        if a != b:
            only_a, only_b = sorted(a - b)[:5], sorted(b - a)[:5]
            raise CohortMismatchError(
                f"Fits {first!r} and {name!r} are of different cohorts: patients only in "
                f"{first!r}: {only_a}; only in {name!r}: {only_b}. Compare fits of the same data."
            )
        if ref.outputs != other.outputs:
            raise CohortMismatchError(
                f"Fits {first!r} and {name!r} observe different outputs: {list(ref.outputs)} "
                f"vs {list(other.outputs)}."
            )
        for pid in ref.ids:
            i, j = ref.index(pid), other.index(pid)
            for field in (*_OBS_FIELDS, "obs_output"):
                x, y = getattr(ref, field)[i], getattr(other, field)[j]
                n = max(int(ref.obs_mask[i].sum()), int(other.obs_mask[j].sum()))
                x, y = np.asarray(x)[:n], np.asarray(y)[:n]
                same = x.shape == y.shape and np.array_equal(
                    x, y, equal_nan=np.asarray(x).dtype.kind == "f"
                )
                if not same:
                    raise CohortMismatchError(
                        f"Fits {first!r} and {name!r} differ in patient {pid}'s observations "
                        f"({field.removeprefix('obs_')}): compare fits of the same data."
                    )
        if ref.boluses != other.boluses or ref.infusions != other.infusions:
            raise CohortMismatchError(
                f"Fits {first!r} and {name!r} have different dosing records; compare fits of "
                "the same data."
            )


def comparison_table(results: Mapping[str, LooResult], posteriors=None) -> pd.DataFrame:
    """The comparison table of several leave-one-out results (see :func:`compare`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # arviz_stats gives the elpd differences and their standard errors; its weights
        # (pseudo-BMA, cheap) are replaced by underflow-safe stacking below.
        arviz = azs.compare(
            {k: r.elpd_data for k, r in results.items()}, method="pseudo-bma", round_to="none"
        )
    names = list(results)
    elpd_i = np.column_stack([results[k].elpd_i for k in names])
    weights = dict(zip(names, stacking_weights(elpd_i), strict=True))
    rows = []
    for name in arviz.index:
        r = results[name]
        rows.append(
            {
                "model": name,
                "rank": int(arviz.loc[name, "rank"]),
                "elpd": r.elpd,
                "se": r.se,
                "elpd_diff": float(arviz.loc[name, "elpd_diff"]),
                "dse": float(arviz.loc[name, "dse"]),
                "p_loo": r.p_loo,
                "n_high_k": r.n_high_k,
                "max_k": float(r.pareto_k.max()),
                "n_refits": len(r.refitted),
                "weight": weights[name],
                "method": r.method,
                "approximate": r.approximate,
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    by = {r.by for r in results.values()}.pop()
    table.attrs.update(
        by=by,
        approximate=any(r.approximate for r in results.values()),
        k_threshold=K_THRESHOLD,
        n_units=int(elpd_i.shape[0]),
    )
    return table


def compare(
    posteriors: Mapping[str, CohortPosterior],
    by: str = "patient",
    *,
    refit: bool = False,
    max_refits: int = 5,
    n_inner: int = 512,
    seed: int = 0,
) -> pd.DataFrame:
    """Compare fits of the same cohort by leave-one-out predictive accuracy.

    Parameters
    ----------
    posteriors
        Model label -> fit, e.g. ``{"1cmt": post1, "2cmt": post2}``: at least two fits of
        the same patients and observations (different models or population models).
    by
        ``"patient"`` (leave-one-patient-out: how well each fitted population predicts a
        patient it has not seen) or ``"observation"``.
    refit, max_refits, n_inner, seed
        See :func:`twin_uq.compare.loo`.

    Returns
    -------
    pandas.DataFrame
        One row per model, best first: ``rank``, ``elpd`` and its ``se``, ``elpd_diff``
        (to the best, <= 0) and ``dse`` (SE of that difference), ``p_loo``, ``n_high_k``
        (patients with Pareto k > 0.7 after refits), ``max_k``, ``n_refits``, ``weight``
        (stacking weights over the units left out), ``method``, ``approximate``.
        ``attrs``: ``by``, ``approximate`` (any fit approximate), ``k_threshold``,
        ``n_units``.

    Raises
    ------
    CohortMismatchError
        The fits are of different cohorts.
    """
    if len(posteriors) < 2:
        raise InputError(f"compare() needs at least two fits, got {len(posteriors)}.")
    check_same_cohort(posteriors)
    results = {
        name: loo(p, by, refit=refit, max_refits=max_refits, n_inner=n_inner, seed=seed)
        for name, p in posteriors.items()
    }
    return comparison_table(results)
