"""A stand-alone VPC page (``twin-uq vpc ... --out vpc.html``): figure, table, settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from twin_uq.checks.plots import vpc_title
from twin_uq.report.cohort_checks import vpc_figures
from twin_uq.report.render import provenance, render, write
from twin_uq.report.text import format_number

__all__ = ["vpc_page"]


def vpc_page(post, result, path: str | Path) -> Path:
    """Write ``result`` (a :class:`~twin_uq.checks.VPCResult` of ``post``) as one HTML file."""
    p = result.percentiles
    rows = [
        dict(
            output=r.output, stratum=r.stratum, x=format_number(r.x, 3), n=r.n,
            percentile=f"{100 * r.percentile:.0f}th",
            observed=("below limit" if r.observed_blq else format_number(r.observed, 3)),
            interval=f"{format_number(r.sim_lower, 3)} to {format_number(r.sim_upper, 3)}",
            outside=bool(r.outside),
        )
        for r in p.itertuples()
    ]  # fmt: skip
    html = render(
        "vpc.html",
        title=f"VPC: {post.model.name}",
        heading=vpc_title(result),
        model=post.model,
        result=result,
        figures=vpc_figures(result),
        rows=rows,
        n_outside=int(p["outside"].sum()),
        provenance=provenance(post, **{"VPC seed": result.seed}),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return write(path, html)
