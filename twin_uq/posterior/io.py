"""Reading a saved cohort fit back: checks of the file, then a :class:`CohortPosterior`.

Writing is :meth:`CohortPosterior.save`. A reloaded fit reads its settings, population
model and centring from the file; the fit's arrays are rebuilt from the stored cohort
table only when inference-level code asks for them (see :attr:`CohortPosterior.prepared`).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.data import read_cohort
from twin_uq.errors import InputError
from twin_uq.inference.centering import AutoCentering
from twin_uq.inference.idata import CENTERING_FIELDS
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.prepare import prepare_fit
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.load import load_model, model_source_hash
from twin_uq.posterior.cohort import CohortPosterior

__all__ = ["PosteriorLoadError", "load_posterior"]


class PosteriorLoadError(InputError):
    """A saved fit cannot be read back (corrupt, truncated, or from another model)."""


def _table_from_dataset(ds: xr.Dataset) -> pd.DataFrame:
    columns = json.loads(ds.attrs["columns"])
    frame = pd.DataFrame({c: ds[c].values for c in columns})
    for c in columns:
        if frame[c].dtype == object:
            frame[c] = frame[c].replace("", np.nan)
    return frame


#: What every fit file holds: provenance attributes, groups and posterior variables.
_NEEDED_ATTRS = ("model_name", "model_source_hash", "population_model", "settings", "solver")
_NEEDED_GROUPS = (
    "posterior",
    "posterior_predictive",
    "log_likelihood",
    "observed_data",
    "constant_data",
    "cohort_table",
)
_NEEDED_POSTERIOR = ("mu", "typical", "omega", "theta")


def _check_contents(tree: xr.DataTree, path: Path) -> None:
    """Refuse a file that is not a complete twin_uq fit, naming what is missing."""
    attrs = [k for k in _NEEDED_ATTRS if k not in tree.attrs]
    if len(attrs) == len(_NEEDED_ATTRS):
        raise PosteriorLoadError(
            f"{path} is not a twin_uq fit file: it has none of the provenance attributes "
            f"({', '.join(_NEEDED_ATTRS)}) that twin_uq writes; groups found: "
            f"{', '.join(tree.children) or '(none)'}."
        )
    groups = [g for g in _NEEDED_GROUPS if g not in tree.children]
    variables = (
        [v for v in _NEEDED_POSTERIOR if v not in tree["posterior"].data_vars]
        if "posterior" in tree.children
        else []
    )
    missing = (
        [f"attribute {a!r}" for a in attrs]
        + [f"group {g!r}" for g in groups]
        + [f"posterior variable {v!r}" for v in variables]
    )
    if missing:
        raise PosteriorLoadError(
            f"{path} is an incomplete or damaged twin_uq fit file: missing {', '.join(missing)}. "
            "Refit, or restore the file from a copy."
        )


def load_posterior(path: str | Path, model: str | Path | Model | None = None) -> CohortPosterior:
    """Read a fit written by :meth:`CohortPosterior.save`.

    Parameters
    ----------
    path
        A ``.nc`` or ``.zarr`` fit file.
    model
        The model the fit used. Default: the built-in model named in the file. A user's
        own model must be passed (code is never executed from a data file). Its source
        must match the hash recorded at fit time.

    Raises
    ------
    PosteriorLoadError
        Missing, corrupt or truncated file; a file that is not a twin_uq fit; or a model
        whose source differs from the one the fit used.
    """
    path = Path(path)
    if not path.exists():
        raise PosteriorLoadError(f"Fit file not found: {path}")
    try:
        if path.suffix.lower() == ".zarr":
            tree = xr.open_datatree(path, engine="zarr", consolidated=False)
        else:
            tree = xr.open_datatree(path, engine="h5netcdf")
        tree = tree.load()
    except Exception as err:
        raise PosteriorLoadError(
            f"Cannot read fit file {path}: it is corrupt, truncated or not netCDF/zarr ({type(err).__name__}: {err})."
        ) from err
    attrs = tree.attrs
    _check_contents(tree, path)
    chosen = load_model(model if model is not None else attrs["model_name"])
    if (
        chosen.name != attrs["model_name"]
        or model_source_hash(chosen) != attrs["model_source_hash"]
    ):
        raise PosteriorLoadError(
            f"{path} was fitted with model {attrs['model_name']!r} (source hash {attrs['model_source_hash'][:12]}), "
            f"but the model given is {chosen.name!r} (hash {model_source_hash(chosen)[:12]}). Pass the model file used for the fit."
        )
    cohort = read_cohort(
        _table_from_dataset(tree["cohort_table"].to_dataset()),
        name=attrs.get("data_source"),
        time_unit=_declared_time_unit(attrs.get("data_time_unit")),
    )
    pm = json.loads(attrs["population_model"])
    spec = PopulationModel(
        model=chosen,
        covariate_effects=pm["covariate_effects"],
        correlation=pm["correlation"],
        centering=pm["centering"],
        # the priors stored are those the fit used, adapted ones included: a reloaded fit
        # is never checked again (files from before the check lack the key)
        prior_check=pm.get("prior_check", "off"),
        covariate_interpolation=pm.get("covariate_interpolation", "locf"),
        iov=tuple(pm.get("iov", ())),
        error=pm["error"],
        residual_correlation=pm.get("residual_correlation", "none"),
        priors={k: tuple(v) if isinstance(v, list) else v for k, v in pm["priors"].items()},
    )
    constant = tree["constant_data"] if "constant_data" in tree.children else None
    weights = (
        np.asarray(constant["centering_weight"].values)
        if constant is not None and "centering_weight" in constant.data_vars
        else None
    )
    # Fits saved before the whitened latents (no linearised likelihood) reload with the
    # weights stored, fixed: ``z`` of those files is not a whitened latent.
    auto = None
    if weights is not None and "centering_sensitivity" in constant.data_vars:
        fields = {n: jnp.asarray(constant[f"centering_{n}"].values) for n in CENTERING_FIELDS}
        auto = AutoCentering(**fields, output=jnp.asarray(constant["obs_output"].values))
    solver = SolverSettings(**json.loads(attrs["solver"]))

    def prepare():
        return prepare_fit(spec, cohort, solver, centering=weights, auto=auto)

    return CohortPosterior(tree, chosen, cohort, population_model=spec, prepare=prepare)


def _declared_time_unit(text: str | None) -> str | None:
    """The unit a fit's data declared (``"min (declared)"`` -> ``"min"``), else ``None``.

    ``attrs["data_time_unit"]`` is :func:`~twin_uq.data.time_units.describe_time_unit`'s
    text; an undeclared (assumed) unit stays undeclared on reload.
    """
    suffix = " (declared)"
    if text is None or not str(text).endswith(suffix):
        return None
    return str(text)[: -len(suffix)]
