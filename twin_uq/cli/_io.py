"""Reading the CLI's input files (fits, schedules, new rows) and writing its outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from twin_uq._atomic import atomic_write
from twin_uq.cli._errors import CLIError
from twin_uq.cli._options import existing_file

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from twin_uq.data import Cohort
    from twin_uq.posterior import CohortPosterior

__all__ = ["load_fit", "read_patient_rows", "read_schedule", "write_dataset"]

_SCHEDULE_ID = "__schedule__"


def load_fit(path: Path, model: str | None = None) -> CohortPosterior:
    """Load a fit file written by ``twin-uq fit`` (or ``post.save``)."""
    from twin_uq.posterior import load_posterior

    existing_file(path, "Fit file")
    return load_posterior(path, model=model)


def _read_table(path: Path, what: str) -> pd.DataFrame:
    import pandas as pd

    existing_file(path, what)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        frame.index = range(1, len(frame) + 1)
    else:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise CLIError(f"{path}: cannot read as CSV ({' '.join(str(err).split())}).") from None
        # Line numbers as a text editor shows them (header = line 1), like read_cohort.
        frame.index = range(2, len(frame) + 2)
    return frame


def read_schedule(path: Path) -> list:
    """A dosing schedule from a CSV of NONMEM dose rows (``time, amt[, cmt, rate, dur]``).

    The rows are validated by :func:`twin_uq.read_cohort` (every row is a dose, ``EVID=1``),
    so problems are reported with file, line and column.

    Returns
    -------
    list of Bolus and Infusion
    """
    frame = _read_table(Path(path), "Schedule file")
    if frame.empty:
        raise CLIError(f"Schedule file {path} has no dose rows.")
    lower = {str(c).lower(): c for c in frame.columns}
    if "time" not in lower or "amt" not in lower:
        raise CLIError(
            f"Schedule file {path}: needs columns time and amt (and optionally cmt, rate, dur)."
        )
    if "evid" in lower:
        evid = frame[lower["evid"]].astype(str).str.strip()
        bad = [i for i, v in evid.items() if v not in ("1", "1.0")]
        if bad:
            raise CLIError(
                f"{path} line {bad[0]}, column {lower['evid']}: a schedule holds dose rows only (EVID=1)."
            )
    else:
        frame["evid"] = "1"
    if "id" in lower:
        frame = frame.drop(columns=[lower["id"]])
    frame.insert(0, "id", _SCHEDULE_ID)
    cohort = _read_relabelled(frame, path, patient=False)
    if cohort.modelled[0] or cohort.resets[0]:
        # Only boluses and infusions are returned: refuse rather than drop the others.
        raise CLIError(
            f"Schedule file {path}: RATE=-1/-2 doses without DUR and resets (EVID 3/4) are "
            "not supported in a schedule file; give RATE > 0 (or RATE=-2 with DUR)."
        )
    sched = cohort.schedule(_SCHEDULE_ID)
    return [*sched.boluses(), *sched.infusions()]


def read_patient_rows(path: Path, patient_id: str) -> Cohort:
    """New rows of one patient (cohort table format; ``id`` optional), validated."""
    frame = _read_table(Path(path), "Data file")
    if frame.empty:
        raise CLIError(f"Data file {path} has no rows.")
    lower = {str(c).lower(): c for c in frame.columns}
    if "id" in lower:
        ids = frame[lower["id"]].astype(str).str.strip()
        others = sorted(set(ids) - {str(patient_id)})
        if others:
            raise CLIError(
                f"{path}: rows of other patients {others[:3]}; --data must hold only patient {patient_id}."
            )
    else:
        frame.insert(0, "id", str(patient_id))
    return _read_relabelled(frame, path, patient=True)


def _read_relabelled(frame: pd.DataFrame, path: Path, *, patient: bool) -> Cohort:
    """``read_cohort`` of a frame read here, with problems named by file line (not index)."""
    from twin_uq.data import CohortError, Problem, read_cohort

    try:
        return read_cohort(frame, name=str(path))
    except CohortError as err:
        if not err.problems:
            raise
        problems = [
            Problem(p.row, p.column, p.patient if patient else None, p.message)
            for p in err.problems
        ]
        raise CohortError.from_problems(str(path), problems, row_word="line") from err


def _netcdf_attrs(attrs: dict) -> dict:
    """Attributes netCDF can store: booleans and None as text, containers as JSON."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool) or v is None:
            out[k] = json.dumps(v)
        elif isinstance(v, dict | list | tuple):
            out[k] = json.dumps(v, default=str)
        else:
            out[k] = v
    return out


def write_dataset(ds: xr.Dataset, path: Path) -> Path:
    """Write an xarray Dataset to netCDF (h5netcdf) atomically, making attributes storable."""
    ds = ds.copy()
    ds.attrs = _netcdf_attrs(dict(ds.attrs))
    for name in ds.variables:
        ds[name].attrs = _netcdf_attrs(dict(ds[name].attrs))
        if ds[name].dtype == bool:
            ds[name] = ds[name].astype("int8")
    # Written under a temporary name and renamed: a failed write leaves no half file.
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def ensure_parent(path: Path) -> Path:
    """Create the folder of an output file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
