"""``CohortPosterior``: the result of a cohort fit, its summaries, per-patient views and storage."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from twin_uq._atomic import atomic_write
from twin_uq.data import Cohort, CohortArrays
from twin_uq.data.occasions import OccasionSegments
from twin_uq.errors import InputError
from twin_uq.inference.numpyro_model import ProgramStructure
from twin_uq.inference.population import (
    CovariateDesign,
    PopulationModel,
    build_covariate_design,
    build_occasions,
)
from twin_uq.inference.prepare import PreparedFit
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.scales import to_natural
from twin_uq.posterior.diagnostics import Diagnostics, diagnose
from twin_uq.posterior.failure import FitFailedError, SamplerFailure, sampler_failure
from twin_uq.posterior.patient import (
    PatientPosterior,
    empty_observations,
    observations_frame,
    occasion_path,
    parameter_path,
    resolve_patient,
)
from twin_uq.posterior.population import (
    PopulationDraws,
    cohort_population_means,
    flat_draws,
    frozen,
    model_covariates,
    patient_population,
    population_for_covariates,
    population_scale,
)
from twin_uq.simulate.schedule import Bolus, Infusion, Schedule, as_schedule

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["CohortPosterior"]


class CohortPosterior:
    """The posterior of a cohort fit.

    Built by :func:`twin_uq.fit` or :func:`twin_uq.load_posterior`; consumers (twins,
    trust, reports, audit) read it through its public attributes and the per-patient
    views of :meth:`patient`.

    Attributes
    ----------
    idata
        ArviZ InferenceData (``xarray.DataTree``) with groups ``posterior`` (``mu``,
        ``typical``, ``omega``, ``theta``, ``eta``, residual parameters), ``posterior_predictive``,
        ``log_likelihood`` (per patient), ``observed_data``, ``constant_data``,
        ``sample_stats`` (NUTS), ``cohort_table``, and provenance attributes.
    model, cohort
        The model and the data the fit used.
    population_model
        The statistical model (priors, covariate effects, residual error, centring).
    """

    def __init__(
        self,
        idata: xr.DataTree,
        model: Model,
        cohort: Cohort,
        prepared: PreparedFit | None = None,
        *,
        population_model: PopulationModel | None = None,
        prepare: Callable[[], PreparedFit] | None = None,
    ):
        self.idata = idata
        self.model = model
        self.cohort = cohort
        self.population_model = prepared.spec if prepared is not None else population_model
        self._prepared = prepared
        self._prepare = prepare
        self._cache: dict[str, Any] = {}
        self._views: dict[int, PatientPosterior] = {}

    @property
    def prepared(self) -> PreparedFit:
        """The fit's arrays, structure and priors, for inference-level code.

        Two-stage fits and the PyMC export read it; a reloaded fit builds it on first use,
        from the stored centring.
        """
        if self._prepared is None:
            if self._prepare is None:
                raise AttributeError("This CohortPosterior was built without its fit problem.")
            self._prepared = self._prepare()
        return self._prepared

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
    def failure(self) -> SamplerFailure | None:
        """Why the draws are not a posterior (a sampler that did not sample), else ``None``.

        See :mod:`twin_uq.posterior.failure`. A failed fit refuses its summaries, patient
        views (and so twins, trust and reports) with :class:`FitFailedError`; ``idata`` and
        :meth:`diagnostics` stay readable.
        """
        if "failure" not in self._cache:
            self._cache["failure"] = sampler_failure(self.idata, self.method)
        return self._cache["failure"]

    def _require_sampled(self) -> None:
        """Refuse to turn the draws of a failed sampler into numbers."""
        if self.failure is not None:
            raise FitFailedError(self.failure, self)

    @property
    def patient_ids(self) -> tuple[str, ...]:
        """Patient identifiers in fit order."""
        return self.cohort.ids

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior group as a Dataset (refused for a failed sampler: read ``idata``)."""
        self._require_sampled()
        return self.idata["posterior"].to_dataset()

    @property
    def solver(self) -> SolverSettings:
        """The ODE solver settings the fit used (as stored with it)."""
        if "solver" not in self._cache:
            self._cache["solver"] = SolverSettings(**json.loads(self.idata.attrs["solver"]))
        return self._cache["solver"]

    @property
    def error_codes(self) -> np.ndarray:
        """``(O,)`` residual error model code of each output (read-only)."""
        return frozen(np.asarray(self.population_model.error_codes()))

    @property
    def covariate_design(self) -> CovariateDesign:
        """The fit's covariate design: terms, standardisation, effects, allometric offsets."""
        if "design" not in self._cache:
            prepared = self._prepared
            design = (
                prepared.design
                if prepared is not None
                else build_covariate_design(self.population_model, self.cohort)
            )
            self._cache["design"] = design
        return self._cache["design"]

    @property
    def structure(self) -> ProgramStructure:
        """The static structure of the fit's program (which residual sites exist, ...)."""
        if "structure" not in self._cache:
            prepared = self._prepared
            self._cache["structure"] = (
                prepared.structure
                if prepared is not None
                else ProgramStructure.from_spec(
                    self.population_model,
                    len(self.covariate_design.effects),
                    self.solver,
                    0 if self.occasions is None else self.occasions.n_occasions,
                )
            )
        return self._cache["structure"]

    @property
    def occasions(self) -> OccasionSegments | None:
        """The occasion segments of a fit with inter-occasion variability (else ``None``)."""
        if "occasions" not in self._cache:
            self._cache["occasions"] = build_occasions(
                self.population_model, self.cohort, self.covariate_design
            )
        return self._cache["occasions"]

    @property
    def arrays(self) -> CohortArrays:
        """The cohort's padded arrays for the model (observations, schedules, covariates)."""
        if "arrays" not in self._cache:
            prepared = self._prepared
            arrays = (
                prepared.data.arrays
                if prepared is not None
                else self.cohort.for_model(self.model).with_change_times(
                    self.covariate_design.change_time
                    if self.occasions is None
                    else self.occasions.time
                )
            )
            self._cache["arrays"] = arrays
        return self._cache["arrays"]

    @property
    def n_chains(self) -> int:
        """Number of chains (1 for approximate methods)."""
        return int(self.idata["posterior"].sizes["chain"])

    # ---- per-patient views -------------------------------------------------------------
    def population_draws(self) -> Mapping[str, np.ndarray]:
        """Population variables with (chain, draw) flattened to one draw axis ``S``.

        See :func:`twin_uq.posterior.population.flat_draws`; computed once.
        """
        self._require_sampled()
        if "flat" not in self._cache:
            self._cache["flat"] = flat_draws(self)
        return self._cache["flat"]

    def patient(self, patient_id: object) -> PatientPosterior:
        """The posterior and data of one fitted patient, built once and cached.

        Raises
        ------
        UnknownPatientError
            (a ``KeyError``) for an id not in the fit, naming close matches.
        """
        i = resolve_patient(tuple(self.patient_ids), patient_id)
        self._require_sampled()
        if i not in self._views:
            self._views[i] = self._build_view(i)
        return self._views[i]

    def _build_view(self, i: int) -> PatientPosterior:
        pid = self.patient_ids[i]
        model = self.model
        draws = self.population_draws()
        if "means" not in self._cache:  # shared by every patient's view: computed once
            self._cache["means"] = cohort_population_means(self, draws)
            self._cache["scale"] = population_scale(self, draws)
        pop = patient_population(self, i, draws, self._cache["means"], self._cache["scale"])
        th = self.posterior["theta"].sel(patient=pid, parameter=list(model.parameter_names))
        th = th.transpose("chain", "draw", "parameter").values
        arrays = self.arrays
        cov = self.cohort.covariates
        theta = th.reshape(-1, th.shape[-1])
        change_time, theta_path, covariate_path = parameter_path(
            model, self.covariate_design, i, theta, draws.get("beta")
        )
        occasions = omega_occ = None
        if self.occasions is not None:  # each occasion's own random effect
            occasions = self.occasions.frame(i)
            kappa = self.posterior["kappa"].sel(patient=pid)
            kappa = kappa.transpose("chain", "draw", "occasion", "iov_parameter").values
            omega_occ = np.zeros_like(theta)
            omega_occ[:, list(self.structure.iov)] = draws["omega_occ"]
            change_time, theta_path = occasion_path(
                model,
                theta,
                kappa.reshape(-1, *kappa.shape[2:]),
                draws["omega_occ"],
                self.structure.iov,
                occasions,
            )
        return PatientPosterior(
            patient_id=pid,
            **self._shared_fields(theta, pop),
            covariates=frozen(np.asarray(arrays.covariates[i])),
            baseline=dict(cov.loc[pid]) if pid in cov.index else {},
            schedule=self.cohort.schedule(pid, signals=model.signals),
            observations=observations_frame(arrays, i, model),
            table=self.cohort.table[self.cohort.table["id"] == pid].copy(),
            change_time=None if change_time is None else frozen(change_time),
            theta_path=None if theta_path is None else frozen(theta_path),
            covariate_path=covariate_path,
            occasions=occasions,
            omega_occ=None if omega_occ is None else frozen(omega_occ),
        )

    def _shared_fields(self, theta: np.ndarray, pop: PopulationDraws) -> dict[str, object]:
        """The :class:`PatientPosterior` fields a fitted and a new patient fill alike.

        ``theta`` ``(S, K)``: the patient's draws on the natural scale; ``pop``: its
        population prior with the residual parameters of every draw.
        """
        return dict(
            model=self.model,
            settings=self.solver,
            theta=frozen(theta),
            add=pop.add,
            prop=pop.prop,
            nu=pop.nu,
            tau=pop.tau,
            n_chains=self.n_chains,
            error_code=self.error_codes,
            population=pop,
            method=self.method,
            approximate=self.approximate,
        )

    def new_patient(
        self,
        covariates: Mapping[str, object],
        schedule: Schedule | Sequence[Bolus | Infusion],
        *,
        seed: int = 0,
        patient_id: str = "new patient",
    ) -> PatientPosterior:
        """A population-only view of a new patient with these covariates and no data.

        At every posterior draw the patient's parameters are drawn from the population
        distribution given ``covariates`` (typical values, covariate effects, allometry,
        between-patient variability); with inter-occasion variability also a fresh
        occasion effect ``N(0, omega_occ)`` (a new patient is on a new occasion from time 0,
        and its predictions say so).
        """
        self._require_sampled()
        pop = population_for_covariates(self, covariates)
        log_theta = pop.sample_log_theta(seed)
        occasion: dict[str, object] = {}
        if self.structure.iov:  # its own stream: the draws without IOV are unchanged
            omega_occ = np.zeros_like(log_theta)
            omega_occ[:, list(self.structure.iov)] = self.population_draws()["omega_occ"]
            kappa = np.random.default_rng([seed, 1]).standard_normal(log_theta.shape)
            log_theta = log_theta + omega_occ * kappa
            occasion = dict(
                occasions=pd.DataFrame({"occ": [], "index": []}, index=pd.Index([], name="time")),
                omega_occ=frozen(omega_occ),
                new_occasion_at=0.0,
            )
        theta = to_natural(self.model, log_theta)
        sched = as_schedule(schedule)
        return PatientPosterior(
            patient_id=patient_id,
            **self._shared_fields(theta, pop),
            covariates=frozen(model_covariates(self, covariates)),
            baseline=dict(covariates),
            schedule=sched,
            observations=empty_observations(),
            table=pd.DataFrame(),
            population_only=True,
            **occasion,
        )

    def __repr__(self) -> str:
        label = " (approximate)" if self.approximate else ""
        label += " (FAILED: the sampler did not sample)" if self.failure is not None else ""
        sizes = self.idata["posterior"].sizes
        return (
            f"<CohortPosterior {self.model.name}: {self.cohort.n_patients} patients, "
            f"method {self.method}{label}, draws {sizes['chain']}x{sizes['draw']}>"
        )

    # ---- summaries ---------------------------------------------------------------------
    def population_summary(self, interval: float = 0.9) -> pd.DataFrame:
        """Typical values, between-patient variability, covariate effects, residual error.

        Returns a DataFrame indexed by quantity (parameter names such as ``CL``, covariate
        effects such as ``CL~AGE``, residual parameters such as ``sigma_prop[conc]``) with
        ``kind``, ``unit``, ``median``, ``lower``, ``upper`` (central ``interval``), and for
        parameters the between-patient variability as ``cv_percent`` (median and interval;
        log-normal parameters only) and as ``omega`` (its SD on the parameter's ``scale``,
        ``"log"`` or ``"logit"``, with ``omega_lower``, ``omega_upper``); ``variability``
        says whether a parameter is a fixed effect (no between-patient variability: CV and
        omega are NaN). With inter-occasion variability, ``omega_occ`` (median,
        ``omega_occ_lower``, ``omega_occ_upper``) is each parameter's between-occasion SD
        on its latent scale (NaN for parameters without it).
        """
        _check_interval(interval)
        self._require_sampled()
        lo, hi = (1 - interval) / 2, 1 - (1 - interval) / 2
        post = self.posterior
        rows = []

        def q(x: np.ndarray) -> tuple[float, float, float]:
            x = np.asarray(x).reshape(-1)
            return float(np.median(x)), float(np.quantile(x, lo)), float(np.quantile(x, hi))

        def row(quantity: str, kind: str, unit: str, draws: np.ndarray, **extra) -> dict:
            """One quantity's median and central interval over ``draws`` (any shape)."""
            m, lower, upper = q(draws)
            return dict(
                quantity=quantity, kind=kind, unit=unit, median=m, lower=lower, upper=upper, **extra
            )

        for p in self.model.parameters:
            typ = post["typical"].sel(parameter=p.name).values
            om = post["omega"].sel(parameter=p.name).values
            nan3 = (np.nan, np.nan, np.nan)
            # CV% is a log-normal notion; a logit-normal parameter's variability is its SD on
            # the logit scale (omega columns); a fixed effect has none.
            cm, cl, cu = q(100 * np.sqrt(np.expm1(om**2))) if p.bsv and p.scale == "log" else nan3
            om_m, om_l, om_u = q(om) if p.bsv else nan3
            extra = dict(
                cv_percent=cm, cv_lower=cl, cv_upper=cu, omega=om_m, omega_lower=om_l,
                omega_upper=om_u, scale=p.scale,
                variability="between-patient" if p.bsv else "fixed (no between-patient variability)",
            )  # fmt: skip
            occ = (
                q(post["omega_occ"].sel(iov_parameter=p.name).values)
                if "omega_occ" in post and p.name in post["iov_parameter"].values
                else nan3
            )
            extra |= dict(
                zip(("omega_occ", "omega_occ_lower", "omega_occ_upper"), occ, strict=True)
            )
            rows.append(
                row(p.name, "typical value", p.unit, typ, **extra, description=p.description)
            )
        if "beta" in post:
            design = self.covariate_design
            for label, (par, term) in zip(design.effect_labels, design.effects, strict=True):
                b = post["beta"].sel(effect=label).values
                j = design.terms.index(term)
                per = (
                    "per SD of covariate"
                    if design.scale[j] != 1.0 or design.centre[j] != 0.0
                    else "vs reference level"
                )
                if self.model.parameter(par).scale == "logit":
                    effect = f"effect of {term} on the odds of {par} (odds ratio)"
                else:
                    effect = f"multiplicative effect of {term} on {par}"
                rows.append(
                    row(label, "covariate effect (ratio)", per, np.exp(b), description=effect)
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
                    rows.append(row(f"{var}[{out}]", kind, unit, post[var].sel({dim: out}).values))
        if "nu" in post:
            rows.append(row("nu", "Student-t degrees of freedom", "", post["nu"].values))
        for out in post["ou_output"].values if "tau" in post else ():
            tau = post["tau"].sel(ou_output=out).values
            rows.append(row(f"tau[{out}]", "residual correlation time (OU)", "time units", tau))
        table = pd.DataFrame(rows).set_index("quantity")
        table.attrs["interval"] = interval
        table.attrs["approximate"] = self.approximate
        return table

    def patient_summary(self, interval: float = 0.9) -> pd.DataFrame:
        """One row per patient and parameter: posterior median and central interval."""
        _check_interval(interval)
        self._require_sampled()
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

        See :func:`twin_uq.posterior.diagnostics.diagnose`.
        """
        spec = self.population_model
        return diagnose(
            self.idata,
            method=self.method,
            approximate=self.approximate,
            fixed_centering=spec.centering != "auto" or spec.correlation != "diagonal",
            rhat_max=rhat_max,
            ess_min=ess_min,
            failure=self.failure,
        )

    # ---- shortcuts to the layers above -------------------------------------------------
    # The posterior layer never imports twin/ or trust/: these shortcuts resolve the
    # public names through the package facade when called.
    def trust(self, thresholds=None):
        """Trust status of every patient's twin: ``tq.assess_cohort(post, thresholds)``."""
        import twin_uq

        return twin_uq.assess_cohort(self, thresholds)

    def twin(self, patient_id, future_covariates=None, new_occasion_at=None):
        """The posterior twin of one patient: ``tq.PosteriorTwin.from_posterior(post, id)``.

        ``future_covariates``: covariate values from given times after the record on,
        ``{time: {name: value}}``; ``new_occasion_at``: with inter-occasion variability,
        the time from which forecasts are for a new occasion (see
        ``PosteriorTwin.from_posterior``).
        """
        import twin_uq

        return twin_uq.PosteriorTwin.from_posterior(
            self, patient_id, future_covariates, new_occasion_at
        )

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
