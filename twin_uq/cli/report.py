"""``twin-uq report`` and ``twin-uq audit``: self-contained HTML for people to read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._io import ensure_parent, load_fit
from twin_uq.cli._options import FitModel, Verbose, check_suffix, existing_file


def _require(module: str, name: str):
    """``module.name``, or a clear error when this install does not have it yet."""
    import importlib

    mod = importlib.import_module(module)
    func = getattr(mod, name, None)
    if func is None:
        raise CLIError(f"{module}.{name} is not available in this version of twin_uq.")
    return func


def write_html(result, path: Path) -> Path:
    """Write a report object (HTML text, or an object with ``save``/``to_html``) to ``path``."""
    ensure_parent(path)
    if isinstance(result, str):
        path.write_text(result, encoding="utf-8")
    elif hasattr(result, "save"):
        result.save(path)
    elif hasattr(result, "to_html"):
        path.write_text(result.to_html(), encoding="utf-8")
    else:
        raise TypeError(f"Cannot write a {type(result).__name__} as HTML.")
    return path


@handle_errors
def report(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="Fit file (.nc or .zarr).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")],
    patient: Annotated[
        str | None, typer.Option("--patient", "-p", help="Clinician report of this patient.")
    ] = None,
    cohort: Annotated[bool, typer.Option("--cohort", help="Cohort report (statistician).")] = False,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Write a clinician report of one patient (--patient) or the cohort report (--cohort)."""
    check_suffix(out, (".html",))
    if (patient is None) == (not cohort):
        raise CLIError("report needs exactly one of --patient ID or --cohort.")
    post = load_fit(fit_file, model)
    if cohort:
        make = _require("twin_uq.report", "cohort")
        with spinner("Writing the cohort report"):
            write_html(make(post), out)
    else:
        make = _require("twin_uq.report", "patient")
        with spinner(f"Writing the report of patient {patient}"):
            write_html(make(post, patient), out)
    out_console.print(f"Report written to {out}")


@handle_errors
def audit(
    fit_file: Annotated[Path, typer.Argument(metavar="FIT", help="Fit file (.nc or .zarr).")],
    by: Annotated[
        list[str],
        typer.Option("--by", help="Covariate column to compare subgroups by (repeatable)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write .html (audit report) or .csv (table).")
    ],
    holdout: Annotated[
        Path | None,
        typer.Option(help="Held-out later rows (cohort table) for coverage and error per group."),
    ] = None,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Fairness audit: flag rates, interval widths, coverage and error per subgroup."""
    suffix = check_suffix(out, (".html", ".csv"))
    rows = None
    if holdout is not None:
        import twin_uq as tq

        rows = tq.read_cohort(existing_file(holdout, "Hold-out file"))
    post = load_fit(fit_file, model)
    run = _require("twin_uq.audit", "audit")
    with spinner(f"Auditing by {', '.join(by)}"):
        result = run(post, by=by[0] if len(by) == 1 else by, holdout=rows)
    if suffix == ".csv":
        result.table.to_csv(ensure_parent(out), index=False)
    else:
        write_html(result, out)
    summary = getattr(result, "summary", None)
    if callable(summary):
        out_console.print(summary(), markup=False)
    out_console.print(f"Audit written to {out}")
