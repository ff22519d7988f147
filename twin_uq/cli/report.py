"""``twin-uq report`` and ``twin-uq audit``: self-contained HTML for people to read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._io import ensure_parent, load_fit, read_schedule
from twin_uq.cli._options import (
    FitFile,
    FitModel,
    Interval,
    Verbose,
    check_suffix,
    existing_file,
    parse_assignments,
)


def write_html(result, path: Path) -> Path:
    """Write an object with ``to_html(path)`` (an audit result) as HTML."""
    ensure_parent(path)
    result.to_html(path)
    return path


@handle_errors
def report(
    fit_file: FitFile,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")],
    patient: Annotated[
        str | None, typer.Option("--patient", "-p", help="Clinician report of this patient.")
    ] = None,
    cohort: Annotated[bool, typer.Option("--cohort", help="Cohort report (statistician).")] = False,
    schedule: Annotated[
        list[str] | None,
        typer.Option(
            "--schedule",
            "-s",
            help="What-if regimen for a patient report: NAME=schedule.csv (repeatable; NAME=own).",
        ),
    ] = None,
    interval: Interval = 0.9,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Write a clinician report of one patient (--patient) or the cohort report (--cohort)."""
    check_suffix(out, (".html",))
    if (patient is None) == (not cohort):
        raise CLIError("report needs exactly one of --patient ID or --cohort.")
    named = parse_assignments(schedule, "--schedule")
    regimens = {
        name: (None if str(path) == "own" else read_schedule(Path(str(path))))
        for name, path in named.items()
    }
    if regimens and cohort:
        raise CLIError("--schedule belongs to a patient report (--patient), not --cohort.")
    post = load_fit(fit_file, model)
    from twin_uq import report as rep

    if cohort:
        with spinner("Writing the cohort report"):
            rep.cohort(post, out, interval=interval)
    else:
        with spinner(f"Writing the report of patient {patient}"):
            rep.patient(post, patient, out, schedules=regimens or None, interval=interval)
    out_console.print(f"Report written to {out}")


def _cuts(column: str, text: object) -> list[float]:
    try:
        return [float(x) for x in str(text).split(",")]
    except ValueError:
        raise CLIError(f"--bins {column}={text}: expected comma-separated numbers.") from None


@handle_errors
def audit(
    fit_file: FitFile,
    by: Annotated[
        list[str],
        typer.Option("--by", help="Covariate column to compare subgroups by (repeatable)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write .html (audit report) or .csv (table).")
    ],
    bins: Annotated[
        list[str] | None,
        typer.Option(help='Band edges of a numeric column, e.g. "AGE=0,65,120" (repeatable).'),
    ] = None,
    interval: Annotated[float, typer.Option(help="Predictive interval judged, in (0, 1).")] = 0.9,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and predictive noise.")] = 0,
    holdout: Annotated[
        Path | None,
        typer.Option(help="Held-out later rows (cohort table) for coverage and error per group."),
    ] = None,
    next_samples: Annotated[
        bool,
        typer.Option(
            help="For groups whose twins are more often data-poor: each such patient's best "
            "next measurement (a second or two per patient)."
        ),
    ] = False,
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
    from twin_uq.audit import audit as run_audit

    cuts = {k: _cuts(k, v) for k, v in parse_assignments(bins, "--bins").items()}
    with spinner(f"Auditing by {', '.join(by)}"):
        result = run_audit(
            post,
            by=by,
            holdout=rows,
            bins=cuts or None,
            interval=interval,
            seed=seed,
            next_samples=next_samples,
        )
    if suffix == ".csv":
        result.to_csv(ensure_parent(out))
    else:
        write_html(result, out)
    out_console.print(str(result), markup=False)
    out_console.print(f"Audit written to {out}")
