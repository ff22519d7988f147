"""Options shared by several commands, and parsers of their text values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from twin_uq.cli._errors import CLIError

__all__ = [
    "CohortData",
    "DataTimeUnit",
    "FitFile",
    "FitModel",
    "Interval",
    "ModelChoice",
    "PatientId",
    "Seed",
    "SortRows",
    "UpdateChains",
    "UpdateDraws",
    "Verbose",
    "Warmup",
    "check_suffix",
    "existing_file",
    "parse_assignments",
    "parse_times",
]

Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show full error messages and tracebacks.")
]
FitFile = Annotated[Path, typer.Argument(metavar="FIT", help="Fit file (.nc or .zarr).")]
PatientId = Annotated[str, typer.Option("--patient", "-p", help="Patient id.")]
Interval = Annotated[float, typer.Option(help="Central credible interval, in (0, 1).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]
Warmup = Annotated[int, typer.Option("--warmup", help="Warm-up iterations per chain.")]
FitModel = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="The model file the fit used, if it is your own (built-in models are found by name).",
    ),
]

# Reading a cohort for a model (fit, check).
CohortData = Annotated[
    Path, typer.Argument(help="Cohort table (.csv or .parquet, NONMEM-style columns).")
]
ModelChoice = Annotated[
    str, typer.Option("--model", "-m", help="Built-in model name or a model .py file.")
]
SortRows = Annotated[
    bool, typer.Option("--sort", help="Sort each patient's rows by time instead of refusing.")
]
DataTimeUnit = Annotated[
    str | None,
    typer.Option(
        "--time-unit",
        help="Unit of TIME in the data (h, min, s, d, ...): checked against the model's; "
        "when left out the data are taken to be in the model's unit, with a warning, and "
        "the pre-fit check names a likely hours/minutes/days mismatch.",
    ),
]

# NUTS settings of a twin update (one patient conditioned on the population posterior);
# its --warmup and --seed are the shared Warmup and Seed.
UpdateChains = Annotated[int, typer.Option("--chains", help="NUTS chains per patient.")]
UpdateDraws = Annotated[int, typer.Option("--draws", help="Draws per chain.")]


def existing_file(path: Path, what: str) -> Path:
    """``path`` if it exists, else a :class:`CLIError` naming it."""
    if not Path(path).exists():
        raise CLIError(f"{what} not found: {path}")
    return Path(path)


def check_suffix(path: Path, allowed: tuple[str, ...], option: str = "--out") -> str:
    """The lower-case suffix of ``path``; a :class:`CLIError` when it is not ``allowed``."""
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise CLIError(
            f"{option} {path}: unsupported file type {suffix or '(none)'!r}; use {' or '.join(allowed)}."
        )
    return suffix


def parse_times(text: str) -> np.ndarray:
    """Times from ``START:STOP:STEP`` (STOP included) or a comma list ``0,1,2.5``.

    Raises
    ------
    CLIError
        Unparsable numbers, a non-positive step, ``STOP < START`` or more than 100 000 times.
    """
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise CLIError(
                    f"--times {text}: need STEP > 0 and STOP >= START (START:STOP:STEP)."
                )
            n = int(np.floor((stop - start) / step + 1e-9)) + 1
            if n > 100_000:
                raise CLIError(f"--times {text}: {n} times is too many (at most 100000).")
            return start + step * np.arange(n)
        values = np.array([float(p) for p in text.split(",") if p.strip()])
    except CLIError:
        raise
    except ValueError:
        raise CLIError(
            f"--times {text!r}: expected START:STOP:STEP (e.g. 0:24:0.5) or a comma list of numbers."
        ) from None
    if values.size == 0:
        raise CLIError("--times is empty.")
    return values


def parse_assignments(
    items: list[str] | None, option: str, *, split_values: bool = False
) -> dict[str, str | list[str]]:
    """Parse repeated ``KEY=VALUE`` options (``VALUE`` split on commas if ``split_values``).

    Repeats of one key are merged (lists) or refused (single values).
    """
    out: dict[str, str | list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise CLIError(f"{option} {item!r}: expected KEY=VALUE.")
        if split_values:
            values = [v.strip() for v in value.split(",") if v.strip()]
            previous = out.get(key, [])
            assert isinstance(previous, list)
            out[key] = previous + [v for v in values if v not in previous]
        else:
            if key in out:
                raise CLIError(f"{option}: {key!r} given twice.")
            out[key] = value
    return out
