"""Exact leave-one-patient-out: refit the cohort without a patient, score that patient.

Where Pareto smoothed importance sampling cannot be trusted for a patient (Pareto k above
0.7) the patient's leave-one-out predictive density is computed by brute force: the same
fit method (rebuilt from the fit's provenance, ``idata.attrs["fit_method"]``), the same
population model, solver and seed, on the cohort without that patient. The left-out
patient is a new patient of the refitted population:

    log p(y_i | y_-i) = log E_{phi ~ p(phi | y_-i)} E_{theta ~ p(theta | phi, x_i)} p(y_i | theta)

estimated at every refitted posterior draw ``phi`` by the same inner importance sampler as
the PSIS estimate (:mod:`twin_uq.compare.marginal`), scored by the residual contract:
the quantity the importance-sampling estimate targets.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from arviz_stats.loo import SamplingWrapper

from twin_uq.compare.marginal import Proposal, marginal_loglik
from twin_uq.errors import InputError
from twin_uq.inference.methods import NUTS, SVI, FitMethod, FitOptions, Laplace, PyMC
from twin_uq.posterior.population import population_for_covariates

if TYPE_CHECKING:
    from twin_uq.posterior import CohortPosterior

__all__ = ["PatientRefit", "fit_method_of", "held_out_loglik"]

_METHODS: dict[str, type[FitMethod]] = {"nuts": NUTS, "svi": SVI, "laplace": Laplace}


def fit_method_of(post: CohortPosterior) -> FitMethod:
    """The fit method object a posterior was computed with (from its provenance).

    Raises
    ------
    InputError
        The fit file predates stored methods, or its method cannot be rebuilt on one
        machine (a two-stage fit): exact refits are not possible from it.
    """
    raw = post.idata.attrs.get("fit_method")
    if raw is None:
        raise InputError(
            "This fit does not record its fit method (attrs['fit_method']); exact refits "
            "need it. Refit with the current twin_uq, or use refit=False."
        )
    record = dict(json.loads(raw))
    name = record.pop("method")
    cls = PyMC if record.pop("backend", None) == "pymc" else _METHODS.get(name)
    if cls is None:
        raise InputError(
            f"Exact refits support the one-machine methods {sorted(_METHODS)} and PyMC; "
            f"this fit used {name!r}."
        )
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in record.items() if k in fields})


def held_out_loglik(
    refitted: CohortPosterior, post: CohortPosterior, patient: int, proposal: Proposal
) -> np.ndarray:
    """``(C, D)`` log p(y_i | phi) per draw of ``refitted`` (a fit without patient ``patient``).

    The patient is a new patient of the refitted population (its covariates placed on the
    refit's covariate scale); its random effects are integrated out as in the importance
    sampling estimate (:func:`twin_uq.compare.marginal.marginal_loglik`, same ``proposal``).
    """
    pid = post.patient_ids[patient]
    cov = post.cohort.covariates
    baseline = dict(cov.loc[pid]) if pid in cov.index else {}
    pop = population_for_covariates(refitted, baseline)
    ll = marginal_loglik(post, patient, pop, proposal)
    return ll.reshape(refitted.n_chains, -1)


class PatientRefit(SamplingWrapper):
    """:func:`arviz_stats.reloo`'s interface to twin_uq fits, one left-out patient at a time.

    ``sel_observations(i)`` drops patient ``i`` from the cohort, ``sample`` refits with the
    original method, population model, solver and fit seed, and ``log_likelihood__i`` scores
    the left-out patient (:func:`held_out_loglik`, with the patient's inner proposal).
    """

    def __init__(self, post: CohortPosterior, tree: xr.DataTree, proposals: dict[str, Proposal]):
        super().__init__(model=post.model, idata_orig=tree)
        self.post = post
        self.method = fit_method_of(post)
        self.proposals = proposals
        self.refitted: list[str] = []

    def sel_observations(self, idx):
        i = int(np.asarray(idx).reshape(-1)[0])
        ids = self.post.patient_ids
        keep = [p for j, p in enumerate(ids) if j != i]
        if not keep:
            raise InputError("Cannot leave out the only patient of a cohort.")
        return self.post.cohort.select(keep), i

    def sample(self, modified_observed_data):
        # The original fit's own seed: the refit differs from it only by the patient.
        fit_seed = int(self.post.idata.attrs.get("seed", 0))
        options = FitOptions(solver=self.post.solver, seed=fit_seed, progress=False)
        return self.method.fit_cohort(self.post.population_model, modified_observed_data, options)

    def get_inference_data(self, fitted_model):
        return fitted_model

    def log_likelihood__i(self, excluded_obs, idata__i):
        pid = self.post.patient_ids[excluded_obs]
        ll = held_out_loglik(idata__i, self.post, excluded_obs, self.proposals[pid])
        self.refitted.append(pid)
        return xr.DataArray(ll[..., None], dims=("chain", "draw", "patient"))
