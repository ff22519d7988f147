"""``twin-uq check``: check a model against a cohort before fitting (lag, time unit, priors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import handle_errors
from twin_uq.cli._options import Verbose, existing_file


@handle_errors
def check(
    data: Annotated[
        Path, typer.Argument(help="Cohort table (.csv or .parquet, NONMEM-style columns).")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Built-in model name or a model .py file.")
    ],
    sort: Annotated[
        bool, typer.Option("--sort", help="Sort each patient's rows by time instead of refusing.")
    ] = False,
    time_unit: Annotated[
        str | None,
        typer.Option(
            "--time-unit",
            help="Unit of TIME in the data (h, min, s, d, ...); when left out the data are "
            "taken to be in the model's unit and the check tests that against the data.",
        ),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Check a model against a cohort without fitting it.

    Reads the cohort as `twin-uq fit` does, runs the pre-fit check (a quick pooled fit:
    each typical value against its prior) and the data-driven model checks: a lag time the
    model lacks, a time unit that is not the data's. Exit status 0 either way; what it
    finds is what `twin-uq fit` would warn about.
    """
    existing_file(data, "Cohort file")

    import twin_uq as tq
    from twin_uq.inference.data_checks import check_data

    with spinner("Reading and validating the cohort"):
        cohort = tq.read_cohort(data, sort=sort, time_unit=time_unit)
        chosen = tq.load_model(model)
    out_console.print(str(cohort.summary(model=chosen)), markup=False)
    with spinner(f"Checking {chosen.name} against {cohort.n_patients} patients"):
        report = check_data(chosen, cohort)
    out_console.print(str(report), markup=False)
