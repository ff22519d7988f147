"""``twin-uq stream``: follow a CGM stream with one patient's twin, batch by batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import out_console
from twin_uq.cli._errors import handle_errors
from twin_uq.cli._io import load_fit
from twin_uq.cli._options import (
    FitFile,
    FitModel,
    PatientId,
    Seed,
    Verbose,
    check_suffix,
    existing_file,
)


@handle_errors
def stream(
    fit_file: FitFile,
    patient: PatientId,
    csv: Annotated[
        Path,
        typer.Option(
            "--csv", help="The stream: columns time, glucose (or value), carbs (g), insulin (U)."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="JSON lines file, one line per batch.")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Readings per update.")] = 1,
    output: Annotated[str, typer.Option("--output", help="The model output read.")] = "glucose",
    seed: Seed = 0,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Update a patient's twin with each new CGM value (or batch of values) of a CSV stream.

    After each batch: the twin's trust, its forecast at +30/60/120 min (90 % intervals) and
    the risks of glucose below 70 / 54 and above 180 / 250 mg/dL within 120 min (with
    Monte Carlo standard errors). The stream's times continue the fit's time axis (min).
    """
    from twin_uq.diabetes.stream import stream_twin
    from twin_uq.trust import assess_patient

    if out is not None:
        check_suffix(out, (".jsonl",))
    existing_file(csv, "Stream file")
    post = load_fit(fit_file, model)
    twin = post.twin(patient)
    trust = assess_patient(post, twin.patient_id)
    lines = []
    for step in stream_twin(twin, csv, output=output, batch=batch, trust=trust, seed=seed):
        out_console.print(str(step), soft_wrap=True)
        if step.surprise:
            out_console.print(f"  note: {step.surprise}", soft_wrap=True)
        lines.append(json.dumps(step.record(), default=float))
        if out is not None:  # written as it goes: a reader can follow the file
            with open(out, "a" if len(lines) > 1 else "w") as fh:
                fh.write(lines[-1] + "\n")
    if out is not None:
        out_console.print(f"{len(lines)} steps written to {out}")
