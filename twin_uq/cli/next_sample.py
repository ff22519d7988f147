"""``twin-uq next-sample``: which one measurement, taken when, would most improve a twin."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from twin_uq._csv import write_csv
from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._io import load_fit
from twin_uq.cli._options import FitFile, FitModel, PatientId, Verbose, check_suffix, parse_times
from twin_uq.trust import assess_patient
from twin_uq.twin.next_sample import ForecastInterval, ParameterInterval


def parse_goal(text: str) -> ParameterInterval | ForecastInterval:
    """``CL`` (a parameter's interval) or ``forecast:OUTPUT@TIME`` (a forecast's interval)."""
    if not text.startswith("forecast:"):
        return ParameterInterval(text)
    output, sep, time = text.removeprefix("forecast:").partition("@")
    try:
        at = float(time)
    except ValueError:
        at = float("nan")
    if not (sep and output and math.isfinite(at)):
        raise CLIError(
            f"--goal {text!r}: give a parameter name (e.g. CL) or forecast:OUTPUT@TIME "
            "(e.g. forecast:concentration@96)."
        )
    return ForecastInterval(output, at)


@handle_errors
def next_sample(
    fit_file: FitFile,
    patient: PatientId,
    times: Annotated[
        str,
        typer.Option(
            "--times", "-t", help="Candidate times: START:STOP:STEP (STOP included) or 24,36,48."
        ),
    ],
    goal: Annotated[
        str,
        typer.Option(
            help="What to improve: a parameter (CL) or forecast:OUTPUT@TIME.",
        ),
    ],
    output: Annotated[
        list[str] | None,
        typer.Option("--output", help="Output that could be measured (repeat for several)."),
    ] = None,
    imagined: Annotated[
        int, typer.Option(help="Imagined measurements per candidate (MCSE ~ 1/sqrt).")
    ] = 128,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the candidate table (.csv).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the imagined measurements.")] = 0,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Rank candidate sampling times by the expected effect of one more measurement."""
    if out is not None:
        check_suffix(out, (".csv",))
    t = parse_times(times)
    parsed = parse_goal(goal)
    post = load_fit(fit_file, model)
    with spinner(f"Imagining {imagined} measurements at each of {t.size} times"):
        res = post.twin(patient).next_measurement(
            t, goal=parsed, output=output or None, n_imagined=imagined, seed=seed
        )
    with spinner("Assessing the twin's trust"):
        assessment = assess_patient(post, patient)
    table = res.table
    if out is not None:
        write_csv(table, out, index=False)
    top = table.sort_values("effect", ascending=False).head(5)
    for _, r in top.iterrows():
        out_console.print(
            f"  t = {r['time']:g} ({r['output']}): expected {r['effect']:.0%} "
            f"± {2 * r['mcse']:.0%} (2 MCSE)",
            markup=False,
        )
    out_console.print(res.summary(), markup=False)
    reasons = f" — {'; '.join(assessment.reasons)}" if assessment.reasons else ""
    out_console.print(f"Twin trust today: {assessment.status.value}{reasons}", markup=False)
