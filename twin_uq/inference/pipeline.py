"""The one-machine fit pipeline: prepare the problem, run a method, build the posterior.

Shared by every :class:`~twin_uq.inference.methods.FitMethod` that runs on one machine;
a method only supplies the draws of the latent sites (its ``run``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from typing import TYPE_CHECKING, Any, Protocol

import jax

from twin_uq.data.time_units import warn_assumed_time_unit
from twin_uq.inference.backends import BackendResult
from twin_uq.inference.buckets import take_derived, take_result
from twin_uq.inference.data_checks import ModelDataMismatch, data_findings
from twin_uq.inference.idata import build_idata
from twin_uq.inference.postprocess import derive_draw_quantities
from twin_uq.inference.prefit import PriorDataConflict, review_typical_values
from twin_uq.inference.prepare import PreparedFit, prepare_fit, with_centering
from twin_uq.inference.solver_check import check_fit_draws
from twin_uq.posterior.cohort import CohortPosterior
from twin_uq.posterior.failure import FitFailedError

if TYPE_CHECKING:
    from twin_uq.data import Cohort
    from twin_uq.inference.population import PopulationModel
    from twin_uq.model.base import SolverSettings

__all__ = ["fit_prepared", "prepare_problem"]


class _Method(Protocol):
    """What the pipeline needs of a fit method (see :class:`FitMethod`)."""

    def run(
        self, prepared: PreparedFit, key: jax.Array, *, seed: int, progress: bool
    ) -> BackendResult: ...

    def record(self) -> dict[str, Any]: ...

    def legacy_settings(self, seed: int) -> dict[str, Any]: ...


def prepare_problem(
    spec: PopulationModel,
    cohort: Cohort,
    solver: SolverSettings | None,
    *,
    shape_buckets: bool = False,
) -> PreparedFit:
    """Bind the population model to the cohort (arrays, priors, centring).

    Unless ``spec.prior_check == "off"``, a quick pooled fit checks the typical values
    against the priors first (:func:`~twin_uq.inference.prefit.review_typical_values`);
    with ``"adapt"`` the priors in conflict are re-centred and the problem prepared again
    with them. Either way a conflict is a :class:`PriorDataConflict` warning and the review
    rides along as ``prepared.prior_review``. The same pooled fit feeds the data-driven
    model checks (:mod:`twin_uq.inference.data_checks`: a missing lag, a time unit that is
    not the data's), each finding a :class:`ModelDataMismatch` warning. A cohort without a declared time unit is
    announced (:class:`~twin_uq.data.TimeUnitAssumedWarning`). ``shape_buckets``: padded
    to shape buckets (:mod:`twin_uq.inference.buckets`; ``prepared.padding``).
    """
    # With the prior check, the centring point is searched once, for the final priors.
    checked = spec.prior_check != "off"
    prepared = prepare_fit(
        spec, cohort, solver, shape_buckets=shape_buckets, defer_centering=checked
    )
    model = spec.model
    warn_assumed_time_unit(
        cohort.time_unit,
        model.card.time_unit,
        model=model.name,
        source=cohort.source,
        checked=checked,
    )
    if not checked:
        return prepared
    review = review_typical_values(prepared)
    review = dataclasses.replace(review, findings=data_findings(prepared, review.pooled))
    message = review.message()
    if message is not None:
        warnings.warn(message, PriorDataConflict, stacklevel=4)
    for finding in review.findings:  # a missing lag, a time unit that is not the data's
        warnings.warn(finding.message, ModelDataMismatch, stacklevel=4)
    if review.adjusted:
        adapted = dataclasses.replace(spec, priors={**spec.priors, **review.adjusted})
        prepared = prepare_fit(
            adapted, cohort, solver, shape_buckets=shape_buckets, defer_centering=True
        )
    return dataclasses.replace(with_centering(prepared), prior_review=review)


def fit_prepared(
    method: _Method, prepared: PreparedFit, *, seed: int, progress: bool
) -> CohortPosterior:
    """Run ``method`` on ``prepared`` and post-process its draws into a posterior.

    The seed's key is split in two: one for the method, one for the posterior predictive
    replicates, so that the same seed gives the same draws for every consumer.

    Raises
    ------
    FitFailedError
        Where the sampler did not sample (chains that never moved or always diverged,
        non-finite draws; :mod:`twin_uq.posterior.failure`). The failed fit rides along
        as ``err.posterior`` (marked ``idata.attrs["sampler_failure"]``) for finding the
        cause; it refuses summaries, twins and reports.
    """
    k_fit, k_post = jax.random.split(jax.random.key(seed))
    result = method.run(prepared, k_fit, seed=seed, progress=progress)
    t0 = time.perf_counter()
    derived = derive_draw_quantities(
        prepared.structure, result.samples, prepared.data, prepared.centering, k_post
    )
    padding = prepared.padding
    if padding is not None:  # shape buckets: only real patients from here on
        result = take_result(result, padding)
        derived = take_derived(derived, padding)
        prepared = prepared.unpadded()
    result.timings["postprocess"] = time.perf_counter() - t0
    check = check_fit_draws(prepared, result.samples, derived)
    idata = build_idata(
        prepared, result, derived, settings_json=json.dumps(method.legacy_settings(seed))
    )
    idata.attrs["fit_method"] = json.dumps(method.record())
    if padding is not None:  # provenance: the sampler ran padded (other draws, same posterior)
        idata.attrs["shape_buckets"] = json.dumps(dataclasses.asdict(padding))
    if check is not None:
        idata.attrs["fixed_step_check"] = json.dumps(check)
    if prepared.prior_review is not None:
        idata.attrs["prior_check"] = json.dumps(prepared.prior_review.record())
    post = CohortPosterior(
        idata=idata, model=prepared.spec.model, cohort=prepared.cohort, prepared=prepared
    )
    if post.failure is not None:
        idata.attrs["sampler_failure"] = post.failure.record()
        raise FitFailedError(post.failure, post)
    return post
