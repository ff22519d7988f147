"""``twin-uq predict`` and ``twin-uq whatif``: one patient's twin, forward in time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq._csv import write_csv
from twin_uq.cli._console import out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._io import load_fit, read_schedule, write_dataset
from twin_uq.cli._options import (
    FitFile,
    FitModel,
    Interval,
    PatientId,
    Verbose,
    check_suffix,
    parse_assignments,
    parse_times,
)

Times = Annotated[
    str,
    typer.Option(
        "--times", "-t", help="Prediction times: START:STOP:STEP (STOP included) or 0,1,2.5."
    ),
]
Draws = Annotated[
    int | None, typer.Option("--draws", help="Use this many posterior draws (default: all).")
]
NoiseSeed = Annotated[int, typer.Option(help="Seed of the residual-noise draws.")]


def prediction_table(ds) -> object:
    """A long table (one row per output and time) of a prediction Dataset."""
    cols = ["median", "lower", "upper", "f_median", "f_lower", "f_upper"]
    frame = ds[cols].to_dataframe().reset_index()
    frame["extrapolation"] = ds["extrapolation"].sel(time=frame["time"].to_numpy()).to_numpy()
    frame["horizon"] = ds["horizon"].sel(time=frame["time"].to_numpy()).to_numpy()
    frame.insert(0, "patient", ds.attrs["patient_id"])
    frame["interval"] = ds.attrs["interval"]
    return frame[["patient", "output", "time", *cols, "extrapolation", "horizon", "interval"]]


@handle_errors
def predict(
    fit_file: FitFile,
    patient: PatientId,
    times: Times,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Write .csv (intervals) or .nc (draws too).")
    ],
    schedule: Annotated[
        Path | None,
        typer.Option(
            help="Dosing schedule CSV (time, amt, cmt, rate); default: the patient's own."
        ),
    ] = None,
    interval: Interval = 0.9,
    draws: Draws = None,
    seed: NoiseSeed = 0,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Predict one patient's outputs with credible intervals."""
    suffix = check_suffix(out, (".csv", ".nc"))
    t = parse_times(times)
    sched = read_schedule(schedule) if schedule is not None else None
    post = load_fit(fit_file, model)
    with spinner(f"Simulating patient {patient} at {t.size} times"):
        ds = post.twin(patient).predict(
            t, schedule=sched, interval=interval, draws=draws, seed=seed
        )
    if suffix == ".csv":
        write_csv(prediction_table(ds), out, index=False)
    else:
        write_dataset(ds, out)
    n_extra = int(ds["extrapolation"].sum())
    out_console.print(
        f"Patient {patient}: {ds.attrs['n_draws']} draws, {100 * interval:.0f}% intervals"
        + (f", {n_extra} of {t.size} times after the last observation" if n_extra else "")
    )
    out_console.print(f"Prediction written to {out}")


@handle_errors
def whatif(
    fit_file: FitFile,
    patient: PatientId,
    schedule: Annotated[
        list[str],
        typer.Option(
            "--schedule",
            "-s",
            help="A named regimen: NAME=schedule.csv (repeat for each; NAME=own is the patient's own).",
        ),
    ],
    times: Times,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Write .csv (comparison table) or .nc (predictions)."),
    ],
    output: Annotated[
        str | None, typer.Option(help="Output compared (default: the model's first).")
    ] = None,
    statistic: Annotated[
        str, typer.Option(help="Criterion over the times: mean, max, min or auc.")
    ] = "mean",
    goal: Annotated[str, typer.Option(help="maximize or minimize the criterion.")] = "maximize",
    interval: Interval = 0.9,
    draws: Draws = None,
    seed: NoiseSeed = 0,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Compare dosing regimens for one patient: predictions and P(best) per regimen."""
    suffix = check_suffix(out, (".csv", ".nc"))
    t = parse_times(times)
    named = parse_assignments(schedule, "--schedule")
    if len(named) < 2:
        raise CLIError("whatif needs at least two --schedule NAME=FILE regimens to compare.")
    regimens = {
        name: (None if str(path) == "own" else read_schedule(Path(str(path))))
        for name, path in named.items()
    }
    post = load_fit(fit_file, model)
    from twin_uq.twin import Criterion

    criterion = Criterion(output or post.model.output_names[0], statistic, goal=goal)
    with spinner(f"Simulating {len(regimens)} regimens for patient {patient}"):
        result = post.twin(patient).what_if(
            regimens, t, criterion, interval=interval, draws=draws, seed=seed
        )
    if suffix == ".csv":
        write_csv(result.table, out, index=False)
    else:
        import xarray as xr

        names = list(result.predictions)
        ds = xr.concat([result.predictions[n] for n in names], dim="regimen", join="outer")
        ds = ds.assign_coords(regimen=names)
        table = result.table.set_index("regimen").loc[names]
        for col in table.columns:
            if table[col].dtype.kind in "fiub":
                ds[f"criterion_{col}"] = ("regimen", table[col].to_numpy())
        ds.attrs["criterion"] = criterion.describe()
        write_dataset(ds, out)
    out_console.print(result.summary(), markup=False)
    out_console.print(f"Comparison written to {out}")
