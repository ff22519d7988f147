"""``twin-uq update-many``: condition many patients' twins on new rows, on Dask workers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import err_console, out_console, spinner
from twin_uq.cli._errors import CLIError, handle_errors
from twin_uq.cli._io import _read_relabelled, _read_table, load_fit, write_dataset
from twin_uq.cli._options import (
    FitFile,
    FitModel,
    Seed,
    UpdateChains,
    UpdateDraws,
    Verbose,
    Warmup,
    check_suffix,
)
from twin_uq.cli.fit import _cluster, parse_scheduler


def updates_dataset(results: dict[str, dict], parameter_names, fit_file: Path, settings: dict):
    """The updated twins' draws as one Dataset.

    ``theta`` (patient, draw, parameter) and per-patient diagnostics; patients with fewer
    draws are padded with NaN (their count is ``n_draws``).
    """
    import json

    import numpy as np
    import xarray as xr

    ids = list(results)
    n = max(r["theta"].shape[0] for r in results.values())
    theta = np.full((len(ids), n, len(parameter_names)), np.nan)
    for i, pid in enumerate(ids):
        t = np.asarray(results[pid]["theta"])
        theta[i, : t.shape[0]] = t

    def column(key, dtype=float):
        return ("patient", np.array([results[p][key] for p in ids], dtype=dtype))

    return xr.Dataset(
        {
            "theta": (("patient", "draw", "parameter"), theta),
            "n_draws": ("patient", np.array([results[p]["theta"].shape[0] for p in ids])),
            "method": column("method", str),
            "r_hat": column("r_hat"),
            "ess_bulk": column("ess_bulk"),
            "divergences": column("divergences", int),
            "seconds": column("seconds"),
        },
        coords={"patient": ids, "parameter": list(parameter_names), "draw": np.arange(n)},
        attrs={
            "kind": "twin_uq updated posterior twins (not a cohort fit file)",
            "source_fit": str(fit_file),
            "update_settings": json.dumps(settings),
        },
    )


@handle_errors
def update_many(
    fit_file: FitFile,
    data: Annotated[
        Path,
        typer.Option("--data", "-d", help="New rows of several patients (cohort table with id)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="netCDF file (.nc) of the updated twins.")
    ],
    scheduler: Annotated[
        str,
        typer.Option(
            help="A Dask scheduler address (tcp://host:8786), or 'local' / 'local:N' for a "
            "local cluster of N worker processes (default 2)."
        ),
    ] = "local",
    chains: UpdateChains = 4,
    warmup: Warmup = 300,
    draws: UpdateDraws = 250,
    seed: Seed = 0,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Update the twins of every patient in --data, in parallel on Dask workers.

    The cohort's population posterior is the prior of each update; the cohort fit itself is
    unchanged. Every patient is updated once; a failed update is retried, and patients
    whose update still fails are named (nothing is written then).
    """
    check_suffix(out, (".nc",))
    local_workers = parse_scheduler(scheduler)
    frame = _read_table(Path(data), "Data file")
    lower = {str(c).lower(): c for c in frame.columns}
    if "id" not in lower:
        raise CLIError(f"Data file {data}: needs an id column naming the patient of every row.")
    _read_relabelled(frame, data, patient=False)  # every row problem, by file line
    post = load_fit(fit_file, model)
    ids = list(dict.fromkeys(frame[lower["id"]].astype(str).str.strip()))
    unknown = [i for i in ids if i not in post.patient_ids]
    if unknown:
        raise CLIError(
            f"Data file {data}: patients not in the fit {fit_file}: {', '.join(unknown[:5])}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            + "."
        )
    try:
        from twin_uq.distributed import update_many as run_updates
    except ImportError as err:
        raise CLIError("--scheduler needs Dask: pip install 'twin-uq[dask]'.") from err
    where = f"a local cluster of {local_workers} workers" if local_workers else scheduler
    settings = dict(chains=chains, warmup=warmup, draws=draws, seed=seed)
    with spinner(f"Updating {len(ids)} twins on {where}"), _cluster(scheduler, local_workers) as c:
        try:
            results = run_updates(post, frame, cluster=c, **settings)
        except OSError as err:  # distributed raises OSError when no scheduler answers
            raise CLIError(f"--scheduler: could not use the Dask scheduler: {err}") from err
    write_dataset(updates_dataset(results, post.model.parameter_names, fit_file, settings), out)
    for pid, r in results.items():
        out_console.print(
            f"  {pid}: {r['method']}, {r['theta'].shape[0]} draws, max R-hat {r['r_hat']:.3f}, "
            f"min bulk ESS {r['ess_bulk']:.0f}, divergences {r['divergences']}",
            markup=False,
        )
    err_console.print(
        "note: the updates change these patients' twins, not the cohort fit; the file holds "
        "their posterior draws (open with xarray), not a fit that predict/trust can read.",
        soft_wrap=True,
    )
    out_console.print(f"{len(results)} updated twins written to {out}")
