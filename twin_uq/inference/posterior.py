"""``CohortPosterior``: the result of a cohort fit, its summaries, diagnostics and storage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq._atomic import atomic_write
from twin_uq.data import Cohort, read_cohort
from twin_uq.errors import InputError
from twin_uq.inference.prepare import PreparedFit, prepare_fit
from twin_uq.model.base import Model
from twin_uq.model.load import load_model, model_source_hash

__all__ = ["CohortPosterior", "Diagnostics", "PosteriorLoadError", "load_posterior"]

#: Variables whose convergence decides the verdict (population level and individual).
_POPULATION_VARS = ("mu", "omega", "beta", "sigma_add", "sigma_prop", "nu")


class PosteriorLoadError(InputError):
    """A saved fit cannot be read back (corrupt, truncated, or from another model)."""


@dataclass(frozen=True)
class Diagnostics:
    """Convergence diagnostics of a fit with a plain-words verdict.

    Attributes
    ----------
    table
        One row per scalar quantity: ``r_hat``, ``ess_bulk``, ``ess_tail``.
    divergences, n_draws
        Divergent transitions after warm-up and the number of post-warm-up draws.
    bfmi
        Energy Bayesian fraction of missing information per chain.
    solver_failures
        Failed ODE solves at the retained posterior draws (patient × draw pairs).
    converged
        The verdict; ``reasons`` says why not.
    """

    table: pd.DataFrame
    divergences: int
    n_draws: int
    bfmi: np.ndarray
    solver_failures: int
    method: str
    converged: bool
    reasons: tuple[str, ...]

    @property
    def max_rhat(self) -> float:
        """Largest R-hat over all quantities."""
        return float(self.table["r_hat"].max())

    @property
    def min_ess_bulk(self) -> float:
        """Smallest bulk effective sample size."""
        return float(self.table["ess_bulk"].min())

    def __str__(self) -> str:
        verdict = "converged" if self.converged else "needs attention"
        lines = [
            f"Diagnostics ({self.method}): {verdict}",
            f"  max R-hat {self.max_rhat:.3f}, min bulk ESS {self.min_ess_bulk:.0f}, "
            f"divergences {self.divergences}/{self.n_draws}, solver failures {self.solver_failures}",
        ]
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


class CohortPosterior:
    """The posterior of a cohort fit.

    Attributes
    ----------
    idata
        ArviZ InferenceData (``xarray.DataTree``) with groups ``posterior`` (``mu``,
        ``typical``, ``omega``, ``theta``, ``eta``, residual parameters), ``posterior_predictive``,
        ``log_likelihood`` (per patient), ``observed_data``, ``constant_data``,
        ``sample_stats`` (NUTS), ``cohort_table``, and provenance attributes.
    model, cohort
        The model and the data the fit used.
    """

    def __init__(self, idata: xr.DataTree, model: Model, cohort: Cohort, prepared: PreparedFit):
        self.idata = idata
        self.model = model
        self.cohort = cohort
        self.prepared = prepared

    # ---- facts -------------------------------------------------------------------------
    @property
    def method(self) -> str:
        """Inference method (``nuts``, ``svi``, ``laplace``)."""
        return self.idata.attrs["method"]

    @property
    def approximate(self) -> bool:
        """Whether the posterior comes from an approximate method."""
        return self.idata.attrs.get("approximate") == "true"

    @property
    def patient_ids(self) -> tuple[str, ...]:
        """Patient identifiers in fit order."""
        return self.cohort.ids

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior group as a Dataset."""
        return self.idata["posterior"].to_dataset()

    def __repr__(self) -> str:
        label = " (approximate)" if self.approximate else ""
        return (
            f"<CohortPosterior {self.model.name}: {self.cohort.n_patients} patients, "
            f"method {self.method}{label}, draws {self.posterior.sizes['chain']}x{self.posterior.sizes['draw']}>"
        )

    # ---- summaries ---------------------------------------------------------------------
    def population_summary(self, interval: float = 0.9) -> pd.DataFrame:
        """Typical values, between-patient variability, covariate effects, residual error.

        Returns a DataFrame indexed by quantity (parameter names such as ``CL``, covariate
        effects such as ``CL~AGE``, residual parameters such as ``sigma_prop[conc]``) with
        ``kind``, ``unit``, ``median``, ``lower``, ``upper`` (central ``interval``), and for
        parameters the between-patient variability as ``cv_percent`` (median and interval).
        """
        _check_interval(interval)
        lo, hi = (1 - interval) / 2, 1 - (1 - interval) / 2
        post = self.posterior
        rows = []

        def q(x: np.ndarray) -> tuple[float, float, float]:
            x = np.asarray(x).reshape(-1)
            return float(np.median(x)), float(np.quantile(x, lo)), float(np.quantile(x, hi))

        for p in self.model.parameters:
            typ = post["typical"].sel(parameter=p.name).values
            om = post["omega"].sel(parameter=p.name).values
            cv = 100 * np.sqrt(np.expm1(om**2))
            m, lo_, up_ = q(typ)
            cm, cl, cu = q(cv)
            rows.append(
                dict(
                    quantity=p.name,
                    kind="typical value",
                    unit=p.unit,
                    median=m,
                    lower=lo_,
                    upper=up_,
                    cv_percent=cm,
                    cv_lower=cl,
                    cv_upper=cu,
                    description=p.description,
                )
            )
        if "beta" in post:
            design = self.prepared.design
            for label, (par, term) in zip(design.effect_labels, design.effects, strict=True):
                b = post["beta"].sel(effect=label).values
                j = design.terms.index(term)
                per = (
                    "per SD of covariate"
                    if design.scale[j] != 1.0 or design.centre[j] != 0.0
                    else "vs reference level"
                )
                m, lo_, up_ = q(np.exp(b))
                rows.append(
                    dict(
                        quantity=label,
                        kind="covariate effect (ratio)",
                        unit=per,
                        median=m,
                        lower=lo_,
                        upper=up_,
                        description=f"multiplicative effect of {term} on {par}",
                    )
                )
        for var, kind, dim in (
            ("sigma_add", "additive residual SD", "add_output"),
            ("sigma_prop", "proportional residual SD", "prop_output"),
        ):
            if var in post:
                for out in post[dim].values:
                    unit = (
                        self.model.outputs[self.model.output_index(str(out))].unit
                        if var == "sigma_add"
                        else "fraction"
                    )
                    m, lo_, up_ = q(post[var].sel({dim: out}).values)
                    rows.append(
                        dict(
                            quantity=f"{var}[{out}]",
                            kind=kind,
                            unit=unit,
                            median=m,
                            lower=lo_,
                            upper=up_,
                        )
                    )
        if "nu" in post:
            m, lo_, up_ = q(post["nu"].values)
            rows.append(
                dict(
                    quantity="nu",
                    kind="Student-t degrees of freedom",
                    unit="",
                    median=m,
                    lower=lo_,
                    upper=up_,
                )
            )
        table = pd.DataFrame(rows).set_index("quantity")
        table.attrs["interval"] = interval
        table.attrs["approximate"] = self.approximate
        return table

    def patient_summary(self, interval: float = 0.9) -> pd.DataFrame:
        """One row per patient and parameter: posterior median and central interval."""
        _check_interval(interval)
        lo, hi = (1 - interval) / 2, 1 - (1 - interval) / 2
        theta = self.posterior["theta"]
        stacked = theta.stack(sample=("chain", "draw"))
        med = stacked.median("sample")
        low = stacked.quantile(lo, "sample").drop_vars("quantile")
        up = stacked.quantile(hi, "sample").drop_vars("quantile")
        frame = xr.Dataset({"median": med, "lower": low, "upper": up}).to_dataframe()
        frame = frame[["median", "lower", "upper"]]
        units = {p.name: p.unit for p in self.model.parameters}
        frame["unit"] = [units[p] for p in frame.index.get_level_values("parameter")]
        frame.attrs["interval"] = interval
        return frame

    def diagnostics(self, rhat_max: float = 1.01, ess_min: float = 400.0) -> Diagnostics:
        """R-hat, bulk/tail ESS, divergences, E-BFMI and solver failures with a verdict.

        The verdict follows Vehtari et al. (2021): R-hat below ``rhat_max`` and bulk and
        tail ESS above ``ess_min`` (scaled down for short runs to 100 per chain) for every
        quantity, no divergent transitions, E-BFMI above 0.3. Approximate methods have no
        MCMC diagnostics and are never "converged" in this sense.
        """
        post = self.posterior
        names = [v for v in (*_POPULATION_VARS, "theta") if v in post]
        reasons: list[str] = []
        n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
        failures = int(self.idata.attrs.get("solver_failures_at_draws", "0"))
        solver_reasons = self._fixed_step_reasons()
        if self.approximate:
            table = pd.DataFrame(
                {"r_hat": np.nan, "ess_bulk": np.nan, "ess_tail": np.nan}, index=names
            )
            return Diagnostics(
                table,
                0,
                n_chains * n_draws,
                np.array([]),
                failures,
                self.method,
                False,
                (
                    f"{self.method} is an approximate method: no MCMC convergence diagnostics; "
                    "confirm important results with method='nuts'.",
                    *solver_reasons,
                ),
            )
        # One variable at a time: arviz-stats 1.3.3 summarising variables of different
        # dimensions together attached theta's values to the wrong patients' labels.
        summ = pd.concat(
            [
                azs.summary(self.idata, var_names=[n], kind="diagnostics", round_to="none")
                for n in names
            ]
        )
        table = summ[["r_hat", "ess_bulk", "ess_tail"]].astype(float)
        ess_needed = min(ess_min, 100.0 * n_chains)
        stats = self.idata["sample_stats"].to_dataset()
        divergences = int(stats["diverging"].sum())
        bfmi = np.asarray(azs.bfmi(self.idata)["energy"].values).reshape(-1)
        if n_chains < 2:
            reasons.append("only one chain: R-hat cannot detect non-convergence; run >= 2 chains")
        bad_r = table.index[table["r_hat"] > rhat_max]
        if len(bad_r):
            reasons.append(
                f"R-hat above {rhat_max} for {len(bad_r)} quantities (worst {table['r_hat'].idxmax()}: {table['r_hat'].max():.3f})"
            )
        low_ess = table.index[(table["ess_bulk"] < ess_needed) | (table["ess_tail"] < ess_needed)]
        if len(low_ess):
            reasons.append(
                f"effective sample size below {ess_needed:.0f} for {len(low_ess)} quantities (lowest {table['ess_bulk'].idxmin()}: {table['ess_bulk'].min():.0f})"
            )
        if divergences:
            fixed = self.prepared.data.auto_centering is None
            advice = "centering='auto', target_accept=0.95" if fixed else "target_accept=0.95"
            reasons.append(
                f"{divergences} divergent transitions: the posterior geometry was not explored reliably (try {advice})"
            )
        if np.any(bfmi < 0.3):
            reasons.append(f"E-BFMI below 0.3 in {int((bfmi < 0.3).sum())} chain(s)")
        if failures:
            reasons.append(f"{failures} ODE solve failures at posterior draws")
        reasons += solver_reasons
        return Diagnostics(
            table,
            divergences,
            n_chains * n_draws,
            bfmi,
            failures,
            self.method,
            not reasons,
            tuple(reasons),
        )

    def _fixed_step_reasons(self) -> list[str]:
        # The check a fixed-step fit ran afterwards (twin_uq.inference.solver_check).
        raw = self.idata.attrs.get("fixed_step_check")
        if raw is None:
            return []
        check = json.loads(raw)
        if check["passed"]:
            return []
        return [
            f"fixed-step solver error up to {check['max_error_sd']:.3g} residual SDs against "
            f"the adaptive reference at {check['draws_checked']} posterior draws (threshold "
            f"{check['threshold_sd']:.3g}, worst patient {check['worst_patient']}, "
            f"{check['disagreements']} solves failed in only one solver): use a smaller "
            "fixed_step or an adaptive method"
        ]

    def trust(self, thresholds=None):
        """Trust status of every patient's twin (see :func:`twin_uq.trust.assess_cohort`)."""
        from twin_uq.trust import assess_cohort

        return assess_cohort(self, thresholds)

    def twin(self, patient_id):
        """The posterior twin of one patient (see :class:`twin_uq.twin.PosteriorTwin`)."""
        from twin_uq.twin import PosteriorTwin

        return PosteriorTwin.from_posterior(self, patient_id)

    def to_pymc_model(self):
        """The fit's population model as a ``pm.Model`` to extend by hand (needs ``twin-uq[pymc]``)."""
        from twin_uq.inference.pymc_backend import build_pymc_model

        return build_pymc_model(self.prepared)

    # ---- storage -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fit to netCDF (``.nc``) or zarr (``.zarr``), atomically.

        The file is written next to its destination under a temporary name, flushed to
        disk and moved into place in one step (see :mod:`twin_uq._atomic`), so an
        interrupted or killed write leaves the previous file intact; temporaries left by a
        killed writer are removed by the next save to the same path.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".nc", ".zarr"):
            raise InputError(f"Unknown fit file type {path.name!r}: use .nc (netCDF) or .zarr.")
        if suffix == ".nc":
            return atomic_write(path, lambda tmp: self.idata.to_netcdf(tmp, engine="h5netcdf"))
        return atomic_write(path, lambda tmp: self.idata.to_zarr(tmp, consolidated=False))


def _check_interval(interval: float) -> None:
    if not 0.0 < float(interval) < 1.0:
        raise InputError(f"interval must lie strictly between 0 and 1, got {interval}.")


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
        _table_from_dataset(tree["cohort_table"].to_dataset()), name=attrs.get("data_source")
    )
    import jax.numpy as jnp

    from twin_uq.inference.centering import AutoCentering
    from twin_uq.inference.idata import CENTERING_FIELDS
    from twin_uq.inference.population import PopulationModel
    from twin_uq.model.base import SolverSettings

    pm = json.loads(attrs["population_model"])
    spec = PopulationModel(
        model=chosen,
        covariate_effects=pm["covariate_effects"],
        correlation=pm["correlation"],
        centering=pm["centering"],
        error=pm["error"],
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
    prepared = prepare_fit(
        spec, cohort, SolverSettings(**json.loads(attrs["solver"])), centering=weights, auto=auto
    )
    return CohortPosterior(idata=tree, model=chosen, cohort=cohort, prepared=prepared)
