"""``twin-uq update``: condition one patient's twin on new observations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from twin_uq.cli._console import err_console, out_console, spinner
from twin_uq.cli._errors import handle_errors
from twin_uq.cli._io import load_fit, read_patient_rows, write_dataset
from twin_uq.cli._options import (
    FitFile,
    FitModel,
    PatientId,
    Seed,
    UpdateChains,
    UpdateDraws,
    Verbose,
    Warmup,
    check_suffix,
)


def twin_dataset(twin, fit_file: Path):
    """The draws and data of an updated twin as an xarray Dataset (not a cohort fit)."""
    import dataclasses

    import numpy as np
    import xarray as xr

    outputs = list(twin.model.output_names)
    obs = twin.observations
    ds = xr.Dataset(
        {
            "theta": (("draw", "parameter"), np.asarray(twin.theta)),
            "sigma_add": (("draw", "output"), np.asarray(twin.add)),
            "sigma_prop": (("draw", "output"), np.asarray(twin.prop)),
            "nu": ("draw", np.asarray(twin.nu)),
            "obs_time": ("obs", obs["time"].to_numpy(float)),
            "obs_output": ("obs", obs["output"].astype(str).to_numpy()),
            "obs_value": ("obs", obs["value"].to_numpy(float)),
            "obs_censored": ("obs", obs["censored"].to_numpy(bool)),
        },
        coords={
            "parameter": list(twin.model.parameter_names),
            "output": outputs,
            "draw": np.arange(twin.theta.shape[0]),
        },
        attrs={
            "kind": "twin_uq updated posterior twin (one patient; not a cohort fit file)",
            "patient_id": twin.patient_id,
            "model_name": twin.model.name,
            "source_fit": str(fit_file),
            "n_chains": int(twin.n_chains),
            "approximate": bool(twin.approximate),
            "history": json.dumps([dataclasses.asdict(h) for h in twin.history], default=str),
        },
    )
    return ds


@handle_errors
def update(
    fit_file: FitFile,
    patient: PatientId,
    data: Annotated[
        Path, typer.Option("--data", "-d", help="New rows of this patient (cohort table format).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="netCDF file (.nc) of the updated twin.")
    ],
    chains: UpdateChains = 4,
    warmup: Warmup = 300,
    draws: UpdateDraws = 250,
    seed: Seed = 0,
    model: FitModel = None,
    verbose: Verbose = False,
) -> None:
    """Update one patient's twin with new observations, without refitting the cohort.

    The cohort's population posterior is the prior. The result is the updated twin's
    posterior draws (individual parameters, residual error, the data conditioned on) as
    netCDF; it is not a cohort fit file, so predict/trust do not read it.
    """
    check_suffix(out, (".nc",))
    new = read_patient_rows(data, patient)
    post = load_fit(fit_file, model)
    twin = post.twin(patient)
    with spinner(f"Updating patient {patient} with {int(new.n_obs.sum())} new observations"):
        updated = twin.update(new, chains=chains, warmup=warmup, draws=draws, seed=seed)
    write_dataset(twin_dataset(updated, fit_file), out)
    rec = updated.history[-1]
    out_console.print(
        f"Patient {patient}: {rec.rows_added} observations added, {rec.n_draws} draws, "
        f"max R-hat {rec.r_hat:.3f}, min bulk ESS {rec.ess_bulk:.0f}, divergences {rec.divergences}"
    )
    err_console.print(
        "note: the update changes one patient's twin, not the cohort fit; the file holds that "
        "twin's posterior draws (open with xarray), not a fit that predict/trust can read.",
        soft_wrap=True,
    )
    out_console.print(f"Updated twin written to {out}")
