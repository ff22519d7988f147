"""Build the ArviZ ``DataTree`` of a fit: named dimensions, derived groups, provenance."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata as md
import json
import platform

import arviz_base as azb
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.data.time_units import describe_time_unit
from twin_uq.inference.backends import BackendResult
from twin_uq.inference.postprocess import DrawQuantities
from twin_uq.inference.prepare import PreparedFit
from twin_uq.inference.random_effects import all_random, embed_omega
from twin_uq.model.load import model_source_hash
from twin_uq.model.scales import fixed_index, random_index, scale_labels, to_natural

__all__ = ["APPROXIMATE_METHODS", "build_idata", "cohort_table_dataset", "data_hash", "provenance"]

APPROXIMATE_METHODS = ("svi", "laplace")
_PACKAGES = (
    "twin-uq",
    "jax",
    "jaxlib",
    "numpyro",
    "diffrax",
    "equinox",
    "arviz-base",
    "arviz-stats",
    "xarray",
    "pandas",
    "numpy",
)


def data_hash(table: pd.DataFrame) -> str:
    """SHA-256 of a cohort table in a canonical CSV form."""
    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()


def provenance(prepared: PreparedFit, settings_json: str, info: dict) -> dict[str, str]:
    """Attributes that let anyone trace and reproduce a result."""
    spec = prepared.spec
    model = spec.model
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "unknown"
    settings = json.loads(settings_json)
    return {
        "twin_uq_version": versions["twin-uq"],
        "package_versions": json.dumps(versions),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "model_name": model.name,
        "model_source_hash": model_source_hash(model),
        "data_hash": data_hash(prepared.cohort.to_dataframe()),
        "data_source": str(prepared.cohort.source),
        "data_time_unit": describe_time_unit(prepared.cohort.time_unit, model.card.time_unit),
        "method": settings["method"],
        "approximate": str(settings["method"] in APPROXIMATE_METHODS).lower(),
        "settings": settings_json,
        "seed": str(settings["seed"]),
        "population_model": json.dumps(
            {
                "covariate_effects": {k: list(v) for k, v in spec.covariate_effects.items()},
                "correlation": spec.correlation,
                "centering": spec.centering,
                "prior_check": spec.prior_check,
                "covariate_interpolation": spec.covariate_interpolation,
                "iov": list(spec.iov),
                "error": dict(zip(model.output_names, spec.error_kinds(), strict=True)),
                # only when set: files of fits without it stay byte-identical
                **(
                    {"residual_correlation": spec.residual_correlation}
                    if spec.correlated_outputs()
                    else {}
                ),
                "priors": {
                    k: v if isinstance(v, int | float | str) else list(v)
                    for k, v in spec.priors.items()
                },
            }
        ),
        "solver": json.dumps(prepared.structure.settings.__dict__),
        "backend_info": json.dumps(info, default=str),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def cohort_table_dataset(table: pd.DataFrame) -> xr.Dataset:
    """The cohort's long table as a Dataset (dim ``row``), storable in netCDF/zarr."""
    frame = table.reset_index(drop=True).copy()
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
    ds = xr.Dataset({c: ("row", frame[c].to_numpy()) for c in frame.columns})
    ds.attrs["columns"] = json.dumps(list(frame.columns))
    return ds


#: The stored fields of :class:`twin_uq.inference.centering.AutoCentering` and their dims
#: (its ``output`` is ``constant_data/obs_output``).
CENTERING_FIELDS = {
    "sensitivity": ("patient", "parameter", "obs"),
    "residual": ("patient", "obs"),
    "point": ("patient", "parameter"),
    "var_add": ("patient", "obs"),
    "var_prop": ("patient", "obs"),
    "unused": ("patient", "obs"),
    "add": ("output_",),
    "prop": ("output_",),
}


def build_idata(
    prepared: PreparedFit, result: BackendResult, derived: DrawQuantities, settings_json: str
):
    """Assemble the InferenceData (an ``xarray.DataTree``) of a fit."""
    model = prepared.spec.model
    structure = prepared.structure
    cohort = prepared.cohort
    arrays = prepared.data.arrays
    samples = result.samples
    param = list(model.parameter_names)
    mu = samples["mu"]
    # omega over every parameter: 0 for a fixed effect (it has no between-patient SD)
    omega = embed_omega(model, samples["omega"], xp=np) if "omega" in samples else 0.0 * mu
    posterior = {
        "mu": mu,
        "typical": to_natural(model, mu),
        "omega": omega,
        "theta": derived["theta"],
        "eta": derived["eta"],
    }
    dims = {
        "mu": ["parameter"],
        "typical": ["parameter"],
        "omega": ["parameter"],
        "theta": ["patient", "parameter"],
        "eta": ["patient", "parameter"],
    }
    coords: dict[str, list] = {
        "parameter": param,
        "patient": list(cohort.ids),
        "obs": list(range(arrays.obs_time.shape[1])),
        "output": list(model.output_names),
    }
    if structure.n_effects:
        posterior["beta"] = samples["beta"]
        dims["beta"] = ["effect"]
        coords["effect"] = list(prepared.design.effect_labels)
    if structure.add_outputs:
        posterior["sigma_add"] = samples["sigma_add"]
        dims["sigma_add"] = ["add_output"]
        coords["add_output"] = [model.output_names[i] for i in structure.add_outputs]
    if structure.prop_outputs:
        posterior["sigma_prop"] = samples["sigma_prop"]
        dims["sigma_prop"] = ["prop_output"]
        coords["prop_output"] = [model.output_names[i] for i in structure.prop_outputs]
    if structure.student_t:
        posterior["nu"] = samples["nu"]
    if structure.iov:  # between-occasion SDs and the standardised occasion effects
        posterior["omega_occ"] = samples["omega_occ"]
        posterior["kappa"] = samples["kappa"]
        dims["omega_occ"] = ["iov_parameter"]
        dims["kappa"] = ["patient", "occasion", "iov_parameter"]
        coords["iov_parameter"] = list(prepared.spec.iov)
        coords["occasion"] = list(range(structure.n_occasions))
    if structure.ou_outputs:
        posterior["tau"] = samples["tau"]
        dims["tau"] = ["ou_output"]
        coords["ou_output"] = [model.output_names[i] for i in structure.ou_outputs]
    if structure.correlated:
        chol = samples["corr_chol"]
        corr = np.einsum("cdij,cdkj->cdik", chol, chol)
        if not all_random(model):  # a fixed effect correlates with nothing
            r = random_index(model)
            full = np.broadcast_to(np.eye(len(param)), (*corr.shape[:2], len(param), len(param)))
            full = full.copy()
            full[..., r[:, None], r[None, :]] = corr
            corr = full
        posterior["corr"] = corr
        dims["corr"] = ["parameter", "parameter_"]
        coords["parameter_"] = param
    mask = np.asarray(arrays.obs_mask)
    observed = np.where(
        mask & ~np.asarray(arrays.obs_censored), np.asarray(arrays.obs_value), np.nan
    )
    groups = {
        "posterior": posterior,
        "posterior_predictive": {"y": derived["y_rep"], "f": derived["f"]},
        "log_likelihood": {"y": derived["loglik_obs"].sum(axis=-1)},
        "observed_data": {"y": observed},
        "constant_data": {
            "obs_time": np.where(mask, np.asarray(arrays.obs_time), np.nan),
            "obs_output": np.asarray(arrays.obs_output),
            "obs_mask": mask,
            "obs_censored": np.asarray(arrays.obs_censored),
            "obs_lloq": np.asarray(arrays.obs_lloq),
            # Direction (1 below obs_lloq, -1 above) and the interval's other bound (NaN:
            # none): posterior predictive checks score censored points by their interval.
            "obs_cens": (
                np.asarray(arrays.obs_censored, dtype=np.int64)
                if arrays.obs_cens is None
                else np.asarray(arrays.obs_cens, dtype=np.int64)
            ),
            "obs_limit": (
                np.full(np.shape(arrays.obs_lloq), np.nan)
                if arrays.obs_limit is None
                else np.asarray(arrays.obs_limit)
            ),
            "solver_ok_rate": derived["solver_ok"].mean(axis=(0, 1)),
            "centering_weight": np.asarray(prepared.centering.weights),
        },
    }
    auto = prepared.centering.auto
    if auto is not None:
        # The linearised likelihood the random effects were whitened with (reloaded by
        # load_posterior), and for readers F and h at the residual SDs estimated for it.
        numpy_auto = auto.as_numpy()
        information, vector = numpy_auto.canonical(numpy_auto.add, numpy_auto.prop, xp=np)
        constant = groups["constant_data"]
        constant["centering_information"] = np.asarray(information)
        constant["centering_information_vector"] = np.asarray(vector)
        dims["centering_information"] = ["patient", "parameter", "parameter_"]
        dims["centering_information_vector"] = ["patient", "parameter"]
        coords["parameter_"] = param
        for name, dim in CENTERING_FIELDS.items():
            constant[f"centering_{name}"] = np.asarray(getattr(auto, name))
            dims[f"centering_{name}"] = list(dim)
        coords["output_"] = list(prepared.spec.model.output_names)
    dims.update(
        {
            "y": ["patient", "obs"],
            "f": ["patient", "obs"],
            "obs_time": ["patient", "obs"],
            "obs_output": ["patient", "obs"],
            "obs_mask": ["patient", "obs"],
            "obs_censored": ["patient", "obs"],
            "obs_lloq": ["patient", "obs"],
            "obs_cens": ["patient", "obs"],
            "obs_limit": ["patient", "obs"],
            "solver_ok_rate": ["patient"],
            "centering_weight": ["patient", "parameter"],
        }
    )
    if result.sample_stats:
        groups["sample_stats"] = dict(result.sample_stats)
    attrs = provenance(prepared, settings_json, {**result.info, "timings": result.timings})
    # The log-likelihood group is per patient (leave-one-patient-out), so its dims differ.
    ll_dims = {"y": ["patient"]}
    tree = azb.from_dict(
        {k: v for k, v in groups.items() if k != "log_likelihood"},
        coords=coords,
        dims=dims,
    )
    ll = azb.from_dict({"log_likelihood": groups["log_likelihood"]}, coords=coords, dims=ll_dims)
    tree["log_likelihood"] = ll["log_likelihood"]
    tree["cohort_table"] = xr.DataTree(cohort_table_dataset(cohort.to_dataframe()))
    solver_fail = int((~derived["solver_ok"]).sum())
    tree.attrs.update(attrs)
    # How to read mu, typical and omega: each parameter's latent scale, and which ones are
    # fixed effects (omega 0, eta 0, one value for all patients given their covariates).
    tree.attrs["parameter_scales"] = json.dumps(dict(zip(param, scale_labels(model), strict=True)))
    tree.attrs["fixed_parameters"] = json.dumps([param[k] for k in fixed_index(model)])
    tree.attrs["solver_failures_at_draws"] = str(solver_fail)
    return tree
