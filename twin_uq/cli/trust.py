"""``twin-uq trust``: trust status of every patient's twin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq._atomic import atomic_write_text
from twin_uq._csv import write_csv
from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import handle_errors
from twin_uq.cli._io import load_fit
from twin_uq.cli._options import FitFile, FitModel, Verbose, check_suffix


def print_counts(report) -> None:
    """One line of status counts."""
    counts = ", ".join(f"{k} {v}" for k, v in report.counts().items())
    out_console.print(f"Trust: {len(report)} patients ({counts})", markup=False)


@handle_errors
def trust(
    fit_file: FitFile,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write .csv (one row per patient) or .json (full report)."
        ),
    ] = None,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Assess every patient's twin: status, reasons in plain words and the numbers behind them."""
    suffix = check_suffix(out, (".csv", ".json")) if out is not None else None
    post = load_fit(fit_file, model)
    with spinner("Assessing trust"):
        report = post.trust()
    table = report.table
    if suffix == ".csv":
        write_csv(table, out)
    elif suffix == ".json":
        from twin_uq.trust import report_json

        atomic_write_text(out, report_json(report))
    print_counts(report)
    for pid in report.flagged():
        a = report[pid]
        out_console.print(f"  {pid}: {a.status.value} — {'; '.join(a.reasons)}", markup=False)
    if out is not None:
        out_console.print(f"Trust table written to {out}")
