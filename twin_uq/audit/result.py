"""``AuditResult``: the tables, findings and limitations of an audit, and their exports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from twin_uq.errors import InputError

__all__ = ["AuditResult"]


@dataclass(frozen=True)
class AuditResult:
    """The outcome of :func:`twin_uq.audit`.

    Attributes
    ----------
    table
        One row per grouping × group × metric: ``estimate``, ``lower``, ``upper`` (what they
        mean is in ``interval``: a Bayesian-bootstrap interval, or the range for
        observations per patient), ``n`` (patients with a value), ``unit``, ``small``,
        ``reference``. Metrics: ``patients``, ``obs_per_patient``, ``flagged`` (share
        limited or worse), ``width`` (median interval width), ``coverage``, ``mae``,
        ``status_<name>`` (share of each trust status).
    disparities
        One row per non-reference group × metric: ``difference`` (group − reference),
        ``lower``, ``upper``, ``detected`` (interval excludes 0 and neither group is small),
        ``finding`` (a sentence).
    findings
        Sentences: disparities detected, then key metrics without a detected difference,
        then groups too small to judge.
    limitations
        What the audit cannot tell.
    patient_metrics
        The per-patient numbers behind the tables.
    groups
        Group label of every patient, one column per grouping.
    settings
        How the audit was run (by, interval, level, n_boot, seed, fit facts).
    sampling
        With ``next_samples=True``: the best next measurement of each data-poor patient of
        the groups with a data gap (:func:`~twin_uq.audit.sampling.closing_samples`);
        otherwise ``None``.
    """

    table: pd.DataFrame
    disparities: pd.DataFrame
    findings: list[str]
    limitations: list[str]
    patient_metrics: pd.DataFrame
    groups: pd.DataFrame
    settings: dict = field(default_factory=dict)
    metric_defs: tuple = ()
    sampling: pd.DataFrame | None = None

    def __str__(self) -> str:
        lines = [f"Audit by {', '.join(map(str, self.settings.get('by', [])))}:"]
        lines += [f"  - {f}" for f in self.findings]
        return "\n".join(lines)

    def to_xarray(self):
        """An ``xarray.Dataset`` with dims ``(group, metric)``.

        Variables ``estimate``, ``lower``, ``upper``, ``n`` and, for groups compared with a
        reference, ``difference``, ``diff_lower``, ``diff_upper``, ``detected`` (NaN /
        False elsewhere). Coordinates on ``group``: ``grouping``, ``label``, ``small``,
        ``is_reference``. ``group`` values are ``"<grouping>: <label>"``.
        """
        import xarray as xr

        t = self.table.copy()
        t["key"] = t["grouping"] + ": " + t["group"]
        keys = list(dict.fromkeys(t["key"]))
        metrics = list(dict.fromkeys(t["metric"]))
        data = {}
        for col in ("estimate", "lower", "upper", "n"):
            data[col] = (
                t.pivot(index="key", columns="metric", values=col)
                .reindex(index=keys, columns=metrics)
                .astype(float)
            )
        d = self.disparities.copy()
        d["key"] = d["grouping"] + ": " + d["group"]
        for src, dst in (
            ("difference", "difference"),
            ("lower", "diff_lower"),
            ("upper", "diff_upper"),
        ):
            data[dst] = (
                d.pivot(index="key", columns="metric", values=src)
                .reindex(index=keys, columns=metrics)
                .astype(float)
                if len(d)
                else pd.DataFrame(np.nan, index=keys, columns=metrics)
            )
        det = (
            d.pivot(index="key", columns="metric", values="detected").reindex(
                index=keys, columns=metrics
            )
            if len(d)
            else pd.DataFrame(False, index=keys, columns=metrics)
        )
        first = t.drop_duplicates("key").set_index("key").loc[keys]
        ds = xr.Dataset(
            {k: (("group", "metric"), v.to_numpy()) for k, v in data.items()}
            | {"detected": (("group", "metric"), det.fillna(False).to_numpy(bool))},
            coords={
                "group": np.array(keys, dtype=object),
                "metric": np.array(metrics, dtype=object),
                "grouping": ("group", first["grouping"].to_numpy(object)),
                "label": ("group", first["group"].to_numpy(object)),
                "small": ("group", first["small"].to_numpy(bool)),
                "is_reference": ("group", first["reference"].to_numpy(bool)),
            },
            attrs={k: str(v) for k, v in self.settings.items()},
        )
        return ds

    def to_csv(self, path: str | Path, which: str = "table") -> Path:
        """Write ``table`` (default) or ``disparities`` as CSV; ``pd.read_csv`` reads it back.

        Text cells a spreadsheet would run as formulas (group labels from covariate values
        such as ``=cmd|...``) are written with a leading ``'``; the write is atomic.
        """
        frames = {"table": self.table, "disparities": self.disparities}
        if which not in frames:
            raise InputError(f"which must be 'table' or 'disparities', got {which!r}.")
        from twin_uq._csv import write_csv

        return write_csv(frames[which], path, index=False)

    def figures(self) -> dict[str, tuple[str, str]]:
        """Forest plots as SVG text, one per grouping: ``{grouping: (svg, alt text)}``."""
        from twin_uq.audit.report import forest_svg

        return {g: forest_svg(self, g) for g in dict.fromkeys(self.table["grouping"])}

    def to_html(self, path: str | Path | None = None, title: str = "Fairness audit") -> str:
        """A self-contained HTML audit report (inline CSS and SVG, no network).

        Returns the HTML text; writes it to ``path`` when given.
        """
        from twin_uq.audit.report import render_html

        html = render_html(self, title)
        if path is not None:
            from twin_uq._atomic import atomic_write_text

            atomic_write_text(path, html)
        return html
