"""Subgroups of a cohort from its recorded covariates: categories, numeric bands, intersections.

Every patient gets exactly one label per grouping; a missing covariate value is its own
group ("AGE missing"), never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from twin_uq.errors import InputError

__all__ = ["Grouping", "make_groupings"]

#: A numeric column with at most this many distinct values is treated as categorical.
MAX_NUMERIC_LEVELS = 5


@dataclass(frozen=True)
class Grouping:
    """One way of splitting the cohort.

    Attributes
    ----------
    name
        The covariate (``"AGE"``) or the intersection (``"SEX × sampling"``).
    labels
        Group label of every patient (index = patient id).
    order
        Group labels in display order (band order for numeric covariates).
    """

    name: str
    labels: pd.Series
    order: tuple[str, ...]

    def sizes(self) -> pd.Series:
        """Patients per group, in display order."""
        return self.labels.value_counts().reindex(list(self.order), fill_value=0)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _nice(x: float) -> float:
    return float(f"{x:.3g}")


def _band_labels(col: str, x: pd.Series, edges: Sequence[float], lo: float, hi: float):
    """Assign values to bands ``[e_k, e_{k+1})``, the last one closed; outside: own groups."""
    edges = [float(e) for e in edges]
    names = [f"{col} {_fmt(a)}–{_fmt(b)}" for a, b in zip([lo, *edges], [*edges, hi], strict=True)]
    v = x.to_numpy(float)
    k = np.searchsorted(np.asarray(edges), v, side="right")
    out = np.array([names[i] for i in k], dtype=object)
    return out, names


def _numeric_labels(col: str, x: pd.Series, bins: Sequence[float] | None, n_bands: int):
    finite = x[np.isfinite(x.to_numpy(float))]
    if bins is not None:
        edges = [float(b) for b in bins]
        if len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise InputError(
                f"bins[{col!r}] must be at least two increasing edges, got {list(bins)}."
            )
        inner, lo, hi = edges[1:-1], edges[0], edges[-1]
        labels, names = _band_labels(col, x, inner, lo, hi)
        v = x.to_numpy(float)
        below, above = v < lo, v > hi
        labels[below] = f"{col} < {_fmt(lo)}"
        labels[above] = f"{col} > {_fmt(hi)}"
        names = [f"{col} < {_fmt(lo)}", *names, f"{col} > {_fmt(hi)}"]
    else:
        q = np.quantile(finite.to_numpy(float), np.linspace(0, 1, n_bands + 1)[1:-1])
        inner = sorted({_nice(e) for e in q if finite.min() < _nice(e) <= finite.max()})
        labels, names = _band_labels(col, x, inner, float(finite.min()), float(finite.max()))
    return labels, names


def _column_labels(
    col: str, x: pd.Series, bins: Sequence[float] | None, n_bands: int
) -> tuple[pd.Series, list[str]]:
    missing = x.isna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(x) and not isinstance(x.dtype, pd.CategoricalDtype)
    if numeric and (bins is not None or x.dropna().nunique() > MAX_NUMERIC_LEVELS):
        labels, names = _numeric_labels(col, x, bins, n_bands)
    else:
        if bins is not None:
            raise InputError(f"bins given for {col!r}, which is not numeric.")
        levels = (
            [v for v in x.cat.categories if v in set(x.dropna())]
            if isinstance(x.dtype, pd.CategoricalDtype)
            else sorted(x.dropna().unique(), key=lambda v: (str(type(v)), v))
        )

        def text(v) -> str:
            return _fmt(v) if isinstance(v, float | np.floating) else str(v)

        names = [f"{col} = {text(v)}" for v in levels]
        labels = np.array(
            [f"{col} = {text(v)}" if not m else "" for v, m in zip(x, missing, strict=True)],
            dtype=object,
        )
    labels = np.asarray(labels, dtype=object)
    labels[missing] = f"{col} missing"
    names = [*names, f"{col} missing"]
    present = set(labels)
    return pd.Series(labels, index=x.index, name=col), [n for n in names if n in present]


def make_groupings(
    covariates: pd.DataFrame,
    by: str | Sequence[str],
    bins: Mapping[str, Sequence[float]] | None = None,
    n_bands: int = 3,
    intersections: bool = False,
) -> list[Grouping]:
    """Groupings of patients by covariate columns.

    Parameters
    ----------
    covariates
        One row per patient (index = patient id).
    by
        Column names. Categorical (or numeric with at most 5 distinct values) columns give
        one group per value (``"SEX = F"``); other numeric columns are cut into bands, at
        ``bins[col]`` edges when given (lower edge included, the last band closed:
        ``"AGE 65–120"``), otherwise at ``n_bands`` quantiles rounded to 3 significant
        digits.
    intersections
        Also every pair of ``by`` columns (``"SEX = F & sampling = sparse"``).

    Raises
    ------
    ValueError
        An unknown column (the message lists the available ones) or bad bins.
    """
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        raise InputError("audit needs at least one column in `by`.")
    bins = dict(bins or {})
    unknown = [c for c in [*by, *bins] if c not in covariates.columns]
    if unknown:
        raise InputError(
            f"Unknown covariate column(s) {unknown} in `by`/`bins`; the cohort has "
            f"{list(covariates.columns)}."
        )
    single: dict[str, Grouping] = {}
    for col in by:
        labels, order = _column_labels(col, covariates[col], bins.get(col), n_bands)
        single[col] = Grouping(col, labels, tuple(order))
    out = list(single.values())
    if intersections:
        for a, b in combinations(by, 2):
            ga, gb = single[a], single[b]
            lab = ga.labels + " & " + gb.labels
            order = tuple(
                f"{x} & {y}" for x in ga.order for y in gb.order if f"{x} & {y}" in set(lab)
            )
            out.append(Grouping(f"{a} × {b}", lab.rename(f"{a} × {b}"), order))
    return out
