"""Two-stage fitting of large cohorts on Dask.

Stage 1 fits the hierarchical model to a random subsample of patients (or takes a given
population posterior). Stage 2 computes every patient's posterior *conditional on* the
stage-1 population posterior — the mixture-prior NUTS of :mod:`twin_uq.twin.update` —
which is embarrassingly parallel: batches of patients run on Dask workers, one compiled
sampler per worker process. The pieces are gathered into one
:class:`~twin_uq.posterior.CohortPosterior` with the layout of a single-machine fit.

As a fit method: ``tq.fit(model, cohort, method=TwoStage(cluster=..., subsample=200))``.

What the result is (and is not)
-------------------------------
* Each patient's ``theta`` draws are exact draws of ``p(theta_i | y_i, stage-1 posterior)``.
  Patients outside the subsample do not inform the population parameters; patients inside
  it count their data twice (prior and likelihood). Both effects shrink as the subsample
  grows; the result is labelled ``approximate`` and ``method="two-stage"``.
* Population variables (``mu``, ``omega``, ``sigma_*`` ...) at draw ``d`` are stage-1 draws
  (evenly thinned to the stage-2 draw count): their marginals are the stage-1 posterior,
  but a patient's ``theta`` at draw ``d`` is paired with the population draw
  ``two_stage.pop_draw[d, patient]``, not with ``mu[d]``. Joint (population, patient)
  statements must use that index.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from twin_uq.data import Cohort, read_cohort
from twin_uq.distributed._worker import conditional_batch, schedule_sizes
from twin_uq.distributed.assemble import IncompleteResultError, assemble, patient_means
from twin_uq.distributed.cluster import gather_all, get_client, worker_task
from twin_uq.errors import InputError
from twin_uq.inference.fit import method_from_options
from twin_uq.inference.methods import (
    NUTS,
    FitMethod,
    FitOptions,
    FitSettingsError,
    check_counts,
)
from twin_uq.inference.population import PopulationModel, build_covariate_design
from twin_uq.inference.postprocess import residuals_of_draws
from twin_uq.inference.prepare import prepare_fit
from twin_uq.model.base import Model
from twin_uq.model.load import load_model, model_source_hash
from twin_uq.posterior import CohortPosterior
from twin_uq.posterior.population import flat_draws, population_chol

__all__ = ["IncompleteResultError", "TwoStage", "fit_two_stage"]

log = logging.getLogger(__name__)


def _model_ref(model: Model) -> Any:
    """A built-in model travels by name (workers load it); a user's model by pickle."""
    try:
        builtin = load_model(model.name)
        if model_source_hash(builtin) == model_source_hash(model):
            return model.name
    except Exception:  # not a built-in name
        pass
    return model


def _restandardise(draws: Mapping[str, np.ndarray], stage1_design, full_design, model: Model):
    """Re-express ``mu``/``beta`` in the full cohort's covariate standardisation.

    Stage 1 standardises covariates with the subsample's median and SD; the result is
    stored with the full cohort's. For a numeric term ``beta (x - c1)/s1`` equals
    ``beta s/s1 (x - c)/s + beta (c - c1)/s1``: the slope rescales and the offset moves
    into ``mu``. Indicator terms need the same reference level in both.
    """
    if "beta" not in draws:
        return draws
    if tuple(stage1_design.effects) != tuple(full_design.effects):
        raise InputError(
            "The stage-1 subsample and the full cohort give different covariate terms "
            f"({stage1_design.effect_labels} vs {full_design.effect_labels}): a category level "
            "or reference level is missing from the subsample; enlarge `subsample`."
        )
    out = dict(draws)
    mu, beta = draws["mu"].copy(), draws["beta"].copy()
    for e, (par, term) in enumerate(stage1_design.effects):
        q = stage1_design.terms.index(term)
        c1, s1 = stage1_design.centre[q], stage1_design.scale[q]
        c, s = full_design.centre[q], full_design.scale[q]
        k = model.parameter_names.index(par)
        mu[:, k] = mu[:, k] + beta[:, e] * (c - c1) / s1
        beta[:, e] = beta[:, e] * s / s1
    out["mu"], out["beta"] = mu, beta
    return out


def _thin(n_from: int, n_to: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_from - 1, min(n_to, n_from)).round().astype(int))


@dataclass(frozen=True)
class TwoStage(FitMethod):
    """Two-stage fit of a large cohort; stage 2 runs on Dask workers. Approximate.

    Parameters
    ----------
    cluster
        ``None`` (a local 2-process cluster), a scheduler address, a ``Client`` or a cluster.
    subsample
        Patients (drawn at random with the fit's seed) whose hierarchical fit gives the
        population posterior. ``subsample >= n_patients`` fits everyone.
    population_method
        The stage-1 method (default :class:`~twin_uq.inference.methods.NUTS`); with an
        approximate one, ``subsample`` may be the whole cohort.
    population
        A :class:`~twin_uq.CohortPosterior` to use as stage 1 (skips stage 1, e.g. last
        month's fit, or a fit of the same cohort to compare against).
    batch_size
        Patients per task. Each task loops over its patients with one compiled sampler.
    chains, warmup, draws
        Stage-2 NUTS per patient; the result has ``chains x draws`` draws.
    population_draws_used
        Stage-1 draws (evenly thinned) that form each patient's mixture prior; cost is
        linear in it.
    retries
        Resubmissions of a failed task (``client.submit(retries=...)``); a lost worker's
        tasks are rescheduled by Dask in addition.

    The seed seeds the subsample and every patient (patient ``i`` uses ``seed``-derived
    stream ``i``, so results do not depend on batching or on which worker ran what).
    The result has ``method == "two-stage"``, is ``approximate``, and has an extra group
    ``two_stage`` with the paired population draw per patient draw (``pop_draw``),
    per-patient sampler diagnostics, subsample membership and the worker that ran each
    patient. :class:`IncompleteResultError` names every patient whose batch failed after
    its retries, whose stage-2 NUTS did not sample
    (:class:`~twin_uq.twin.update.UpdateFailedError`, with its reason), or that came back
    twice.
    """

    name: ClassVar[str] = "two-stage"
    approximate: ClassVar[bool] = True

    cluster: Any = None
    subsample: int = 200
    population_method: FitMethod = dataclasses.field(default_factory=NUTS)
    population: CohortPosterior | None = None
    batch_size: int = 32
    chains: int = 4
    warmup: int = 200
    draws: int = 250
    population_draws_used: int = 256
    retries: int = 2

    def __post_init__(self) -> None:
        check_counts(self, ("batch_size", "chains", "warmup", "draws"))
        if isinstance(self.population_method, TwoStage):
            raise FitSettingsError("population_method of a TwoStage fit cannot be TwoStage.")

    def record(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["cluster"] = None if self.cluster is None else str(self.cluster)
        out["population_method"] = self.population_method.record()
        out["population"] = None if self.population is None else repr(self.population)
        return {"method": self.name, **out}

    def run(self, prepared, key, *, seed, progress):
        raise TypeError("TwoStage runs through fit_cohort (stage 2 is distributed).")

    def fit_cohort(
        self, spec: PopulationModel, cohort: Cohort, options: FitOptions
    ) -> CohortPosterior:
        """Stage 1 on a subsample (or the given population), stage 2 on the cluster.

        Stage 1 runs without a progress bar whatever ``options.progress`` says.
        """
        seed = options.seed
        t0 = time.perf_counter()
        model = spec.model
        fixed = [p.name for p in model.parameters if not p.bsv]
        if fixed:
            # Stage 2 samples each patient's parameters against the population's
            # between-patient distribution, which a fixed effect does not have.
            raise FitSettingsError(
                f"TwoStage cannot fit model {model.name!r}: parameter(s) {fixed} are fixed "
                "effects (bsv=False); fit it in one stage (method=tq.NUTS(...))."
            )
        if spec.iov:
            # Stage 2's workers solve one parameter vector per patient draw (no occasions).
            raise FitSettingsError(
                f"TwoStage does not handle inter-occasion variability (iov={list(spec.iov)}); "
                "fit in one stage (method=tq.NUTS(...), tq.SVI, tq.Laplace)."
            )
        if spec.correlated_outputs():
            # Stage 2's workers score observations independently (residual contract's M3).
            raise FitSettingsError(
                "TwoStage does not handle autocorrelated residuals (residual_correlation="
                "'ou'); fit in one stage (method=tq.NUTS(...), tq.SVI, tq.Laplace)."
            )
        if build_covariate_design(spec, cohort).segments is not None:
            # Stage 2's workers solve one parameter vector per draw (no covariate path).
            raise FitSettingsError(
                "TwoStage does not handle covariates that change within a patient (a "
                "time-varying covariate in covariate_effects or allometric scaling); fit in "
                "one stage (method=tq.NUTS(...), tq.SVI, tq.Laplace)."
            )
        ids = list(cohort.ids)
        P = len(ids)
        rng = np.random.default_rng(seed)
        timings: dict[str, float] = {}
        # ---- stage 1 ----------------------------------------------------------------
        if self.population is None:
            n_sub = min(int(self.subsample), P)
            if n_sub < 2:
                raise FitSettingsError(f"subsample must be >= 2 patients, got {self.subsample}.")
            sub_ids = [ids[i] for i in np.sort(rng.choice(P, n_sub, replace=False))]
            stage1 = self.population_method.fit_cohort(
                spec,
                cohort.select(sub_ids) if n_sub < P else cohort,
                dataclasses.replace(options, progress=False),
            )
        else:
            stage1 = self.population
            if stage1.model.name != model.name:
                raise FitSettingsError(
                    f"The population posterior is of model {stage1.model.name!r}, not "
                    f"{model.name!r}."
                )
            sub_ids = list(stage1.patient_ids)
        timings["stage1"] = time.perf_counter() - t0
        spec = stage1.population_model
        settings = stage1.solver
        # Stage 2 samples each patient on its own (no population latents to centre), so the
        # cohort-wide Fisher information of "auto" centring would be wasted work here.
        no_centering = np.zeros((cohort.n_patients, len(model.parameters)))
        prepared = prepare_fit(spec, cohort, settings, centering=no_centering)
        flat = _restandardise(flat_draws(stage1), stage1.prepared.design, prepared.design, model)
        S1 = flat["mu"].shape[0]
        keep = _thin(S1, self.population_draws_used)
        mix = {k: v[keep] for k, v in flat.items()}
        n_out = len(model.outputs)
        add, prop, nu = residuals_of_draws(stage1.prepared.structure, mix, n_out)
        chol = population_chol(mix)
        error_code = np.asarray(prepared.data.error_code)
        arrays = prepared.data.arrays
        N = int(arrays.obs_time.shape[1])
        # Every batch pads to the cohort's sizes of every dose-event kind: one compiled
        # shape per worker, whatever mix of steady-state, modelled or reset doses a batch has.
        sizes = schedule_sizes([arrays.schedule])
        # ---- stage 2 on the cluster -------------------------------------------------
        table = cohort.table
        size = self.batch_size
        batches = [list(range(i, min(i + size, P))) for i in range(0, P, size)]
        ref = _model_ref(model)
        t1 = time.perf_counter()
        with get_client(self.cluster) as client:
            n_workers = len(client.scheduler_info()["workers"])
            common = {
                "model": ref, "settings": settings, "chol": chol, "add": add, "prop": prop,
                "nu": nu, "error_code": error_code, "n_obs": N, "sizes": sizes,
                "chains": self.chains, "warmup": self.warmup, "draws": self.draws,
            }  # fmt: skip
            futures = {}
            for b, index in enumerate(batches):
                bids = [ids[i] for i in index]
                payload = common | {
                    "ids": bids,
                    "table": table[table["id"].isin(bids)].reset_index(drop=True),
                    "mean": patient_means(mix, prepared.data, np.asarray(index)),
                    "seeds": np.asarray([seed * 1_000_003 + 7919 * i + 1 for i in index]),
                }
                futures[b] = client.submit(
                    worker_task(conditional_batch), payload, retries=self.retries, pure=False,
                    key=f"twin-uq-stage2-{seed}-{b}-{time.time_ns()}",
                )  # fmt: skip
            done, failed = gather_all(client, futures)
        timings["stage2"] = time.perf_counter() - t1
        return assemble(
            model, cohort, prepared, stage1, flat, keep, done, failed, batches, ids,
            chains=self.chains, draws=self.draws, warmup=self.warmup, sub_ids=sub_ids,
            seed=seed, population_method=stage1.method, batch_size=size,
            n_workers=n_workers, timings=timings, population_draws_used=len(keep),
        )  # fmt: skip


_POPULATION_KEYS = ("covariate_effects", "correlation", "centering", "error", "priors")


def fit_two_stage(
    model: str | Path | Model,
    cohort: Cohort | str | Path | pd.DataFrame,
    *,
    subsample: int = 200,
    population_method: str | FitMethod = "nuts",
    population: CohortPosterior | None = None,
    population_kwargs: Mapping[str, Any] | None = None,
    cluster: Any = None,
    batch_size: int = 32,
    seed: int = 0,
    chains: int = 4,
    warmup: int = 200,
    draws: int = 250,
    population_draws_used: int = 256,
    retries: int = 2,
) -> CohortPosterior:
    """Fit a large cohort in two stages: ``tq.fit(..., method=TwoStage(...))`` as a function.

    ``population_kwargs`` holds the population model (``covariate_effects``,
    ``correlation``, ``error``, ``priors``...), ``solver``, and the stage-1 method's
    settings as :func:`twin_uq.fit` takes them (``chains``, ``warmup``, ``draws``...) when
    ``population_method`` is a string. Other parameters: see :class:`TwoStage`.
    """
    model = load_model(model)
    if not isinstance(cohort, Cohort):
        cohort = read_cohort(cohort)
    kwargs = dict(population_kwargs or {})
    kwargs.pop("progress", None)
    solver = kwargs.pop("solver", None)
    given = {k: kwargs.pop(k) for k in _POPULATION_KEYS if k in kwargs}
    spec = (
        population.population_model
        if population is not None and not given
        else PopulationModel(
            model=model,
            covariate_effects=dict(given.get("covariate_effects") or {}),
            correlation=given.get("correlation") or "diagonal",
            centering=given.get("centering", "auto"),
            error=dict(given.get("error") or {}),
            priors=dict(given.get("priors") or {}),
        )
    )
    stage1 = (
        population_method
        if isinstance(population_method, FitMethod)
        else method_from_options(population_method, **kwargs)
    )
    method = TwoStage(
        cluster=cluster, subsample=subsample, population_method=stage1, population=population,
        batch_size=batch_size, chains=chains, warmup=warmup, draws=draws,
        population_draws_used=population_draws_used, retries=retries,
    )  # fmt: skip
    return method.fit_cohort(spec, cohort, FitOptions(solver=solver, seed=seed, progress=False))
