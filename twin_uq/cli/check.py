"""``twin-uq check``: check a model against a cohort before fitting (lag, time unit, priors)."""

from __future__ import annotations

from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import handle_errors
from twin_uq.cli._options import (
    CohortData,
    DataTimeUnit,
    ModelChoice,
    SortRows,
    Verbose,
    existing_file,
)


@handle_errors
def check(
    data: CohortData,
    model: ModelChoice,
    sort: SortRows = False,
    time_unit: DataTimeUnit = None,
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
