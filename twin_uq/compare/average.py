"""Model averaging: twins that predict from a weighted mixture of several models' posteriors.

Structural uncertainty (one or two compartments? linear or saturable elimination?) is not
in any single model's intervals. ``tq.average({"1cmt": post1, "2cmt": post2})`` weighs the
fits by stacking on leave-one-patient-out (Yao et al. 2018; :func:`twin_uq.compare.compare`)
or by given weights, and ``.twin(patient_id)`` predicts from the mixture of the models'
posterior predictive draws: each model contributes a number of draws in proportion to its
weight (largest remainder), picked with a fixed seed, so the intervals carry the
structural uncertainty as well as each model's parameter and residual uncertainty.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from twin_uq.compare.table import check_same_cohort, compare
from twin_uq.errors import InputError
from twin_uq.simulate.status import SolveStatus
from twin_uq.trust import TrustAssessment, assess_patient
from twin_uq.twin import PosteriorTwin
from twin_uq.twin.inputs import check_interval

if TYPE_CHECKING:
    from twin_uq.posterior import CohortPosterior

__all__ = ["AveragedTwin", "ModelAverage", "allocate_draws", "average"]


def allocate_draws(weights: np.ndarray, total: int) -> np.ndarray:
    """Whole numbers of draws in proportion to ``weights`` summing to ``total``.

    Largest-remainder (Hamilton) rounding: each model gets ``floor(w * total)`` and the
    draws left go to the largest remainders (ties to the earlier model).
    """
    w = np.asarray(weights, dtype=float)
    exact = w / w.sum() * int(total)
    counts = np.floor(exact).astype(int)
    left = int(total) - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:left]] += 1
    return counts


@dataclass(frozen=True, eq=False)
class AveragedTwin:
    """One patient's model-averaged twin (build it with ``ModelAverage.twin(patient_id)``).

    Attributes
    ----------
    patient_id
        The patient.
    twins
        Model label -> that model's twin restricted to its share of the draws (models with
        weight 0 are left out).
    weights
        Model label -> weight (all models given to :func:`average`).
    draws
        Model label -> number of draws the model contributes.
    """

    patient_id: str
    twins: dict[str, PosteriorTwin]
    weights: dict[str, float]
    draws: dict[str, int]
    weight_source: str
    _posteriors: dict[str, CohortPosterior] = field(repr=False)

    @property
    def approximate(self) -> bool:
        """Whether any contributing fit is approximate (SVI, Laplace)."""
        return any(t.approximate for t in self.twins.values())

    @property
    def contributions(self) -> pd.DataFrame:
        """One row per model: ``model_name``, ``weight``, ``draws``, ``method``, ``approximate``."""
        rows = []
        for label, w in self.weights.items():
            post = self._posteriors[label]
            rows.append(
                {
                    "model": label,
                    "model_name": post.model.name,
                    "weight": w,
                    "draws": self.draws.get(label, 0),
                    "method": post.method,
                    "approximate": post.approximate,
                }
            )
        return pd.DataFrame(rows).set_index("model")

    def trust(self) -> dict[str, TrustAssessment]:
        """Trust of each contributing model's twin of this patient."""
        return {
            label: assess_patient(self._posteriors[label], self.patient_id) for label in self.twins
        }

    def describe(self) -> str:
        """Which models contribute and how much, in plain words (for the patient report)."""
        parts = [
            f"{label} ({self._posteriors[label].model.name}) {100 * self.weights[label]:.0f}%"
            f" ({self.draws[label]} draws)"
            for label in self.twins
        ]
        left = [label for label in self.weights if label not in self.twins]
        text = (
            f"Model-averaged twin of patient {self.patient_id}: predictions mix "
            f"{', '.join(parts)}; weights from {self.weight_source}."
        )
        if left:
            text += f" Not contributing (weight 0): {', '.join(left)}."
        if self.approximate:
            text += " At least one fit is approximate (SVI/Laplace)."
        return text

    def predict(
        self,
        times: Sequence[float] | np.ndarray,
        schedule=None,
        interval: float = 0.9,
        seed: int = 0,
    ) -> xr.Dataset:
        """Predictions of every output at ``times`` from the weighted mixture of models.

        Each contributing twin predicts with its share of the draws
        (:meth:`PosteriorTwin.predict`, model ``k`` with seed ``seed + k``); the draws are
        pooled and the intervals taken over the pool.

        Returns
        -------
        xarray.Dataset
            The layout of :meth:`PosteriorTwin.predict` (``f``, ``y`` (draw, time, output),
            ``median``, ``lower``, ``upper``, ``f_*``, ``extrapolation``, ``horizon``) with a
            ``model`` coordinate on ``draw`` (which model each draw comes from) and
            ``model_median`` (model, output, time). Attributes add ``model_weights`` and
            ``model_draws`` (JSON), ``description`` and ``trust`` (JSON: status per model).
        """
        interval = check_interval(interval)
        parts = []
        for k, (label, twin) in enumerate(self.twins.items()):
            ds = twin.predict(times, schedule=schedule, interval=interval, seed=seed + k)
            parts.append((label, ds))
        outputs = [list(ds["output"].values) for _, ds in parts]
        if any(o != outputs[0] for o in outputs):
            raise InputError(f"Averaged models must have the same outputs; got {outputs}.")
        f = np.concatenate([ds["f"].values for _, ds in parts])
        y = np.concatenate([ds["y"].values for _, ds in parts])
        labels = np.concatenate([[label] * ds.sizes["draw"] for label, ds in parts])
        first_label, first = parts[0]
        # The pooled draws are summarised as one twin's draws are (PosteriorTwin's own
        # quantiles, extrapolation and attributes); every pooled draw was solved.
        pooled = self.twins[first_label]._dataset(
            first["time"].values,
            f,
            y,
            jax.tree.map(lambda v: jnp.full(f.shape[:1], v), SolveStatus.successful),
            np.arange(f.shape[0]),
            interval,
            seed,
        )
        medians = np.stack([ds["median"].values for _, ds in parts])
        pooled["model_median"] = (("model_", "output", "time"), medians)
        pooled = pooled.assign_coords(model=("draw", labels), model_=[lab for lab, _ in parts])
        trust = {label: str(t.status) for label, t in self.trust().items()}
        pooled.attrs.update(
            {
                "model_name": "average(" + ", ".join(self.twins) + ")",
                "approximate": int(self.approximate),
                "n_failed_draws": int(sum(ds.attrs["n_failed_draws"] for _, ds in parts)),
                "solver_failures": " ".join(
                    ds.attrs["solver_failures"] for _, ds in parts if ds.attrs["solver_failures"]
                ),
                "model_weights": json.dumps(self.weights),
                "model_draws": json.dumps(self.draws),
                "description": self.describe(),
                "trust": json.dumps(trust),
            }
        )
        return pooled


@dataclass(frozen=True, eq=False)
class ModelAverage:
    """Several fits of one cohort with weights; ``.twin(patient_id)`` averages their twins.

    Attributes
    ----------
    posteriors
        Model label -> fit.
    weights
        Model label -> weight (non-negative, summing to 1).
    weight_source
        Where the weights come from (stacking on leave-one-patient-out, or given).
    comparison
        The :func:`compare` table the stacking weights come from (None for given weights).
    n_draws
        Draws of an averaged twin (split among the models by weight).
    seed
        Seeds which of each model's draws are used.
    """

    posteriors: dict[str, CohortPosterior]
    weights: dict[str, float]
    weight_source: str
    comparison: pd.DataFrame | None = field(default=None, repr=False)
    n_draws: int = 1000
    seed: int = 0

    def draws_per_model(self) -> dict[str, int]:
        """Model label -> draws it contributes to each averaged twin."""
        counts = allocate_draws(np.array(list(self.weights.values())), self.n_draws)
        return dict(zip(self.weights, (int(c) for c in counts), strict=True))

    def twin(self, patient_id: object) -> AveragedTwin:
        """The model-averaged twin of a fitted patient."""
        counts = self.draws_per_model()
        twins: dict[str, PosteriorTwin] = {}
        pid = None
        for k, (label, post) in enumerate(self.posteriors.items()):
            view = post.patient(patient_id)
            pid = view.patient_id
            n = counts[label]
            if n == 0:
                continue
            rng = np.random.default_rng([self.seed, k])
            idx = np.sort(rng.choice(view.n_draws, size=n, replace=n > view.n_draws))
            sub = dataclasses.replace(
                view, theta=view.theta[idx], add=view.add[idx], prop=view.prop[idx],
                nu=view.nu[idx],
            )  # fmt: skip
            twins[label] = PosteriorTwin(sub)
        return AveragedTwin(
            patient_id=str(pid),
            twins=twins,
            weights=dict(self.weights),
            draws={label: counts[label] for label in twins},
            weight_source=self.weight_source,
            _posteriors=dict(self.posteriors),
        )

    def describe(self) -> str:
        """The models and their weights in one sentence."""
        parts = ", ".join(f"{k} {100 * w:.0f}%" for k, w in self.weights.items())
        return f"Model average of {parts} (weights from {self.weight_source})."


def average(
    posteriors: Mapping[str, CohortPosterior],
    weights: Mapping[str, float] | Sequence[float] | None = None,
    *,
    n_draws: int = 1000,
    seed: int = 0,
    n_inner: int = 512,
) -> ModelAverage:
    """Average several fits of the same cohort.

    Parameters
    ----------
    posteriors
        Model label -> fit (the same patients and observations).
    weights
        Model label -> weight (or a sequence in the order of ``posteriors``); normalised
        to sum to 1. Default: stacking weights from leave-one-patient-out
        (:func:`twin_uq.compare.compare` with ``by="patient"``).
    n_draws
        Draws of each averaged twin, split among the models in proportion to the weights.
    seed
        Seeds which draws of each model are used (and the leave-one-out Monte Carlo).
    """
    posteriors = dict(posteriors)
    if len(posteriors) < 1:
        raise InputError("average() needs at least one fit.")
    if len(posteriors) > 1:
        check_same_cohort(posteriors)
    if int(n_draws) < 1:
        raise InputError(f"n_draws must be >= 1, got {n_draws}.")
    table = None
    if weights is None:
        if len(posteriors) == 1:
            w = {next(iter(posteriors)): 1.0}
        else:
            table = compare(posteriors, by="patient", n_inner=n_inner, seed=seed)
            w = {k: float(table.loc[k, "weight"]) for k in posteriors}
        source = "stacking on leave-one-patient-out"
    else:
        if not isinstance(weights, Mapping):
            weights = dict(zip(posteriors, weights, strict=True))
        unknown = sorted(set(weights) - set(posteriors))
        missing = sorted(set(posteriors) - set(weights))
        if unknown or missing:
            raise InputError(
                f"weights must name the fits {sorted(posteriors)}; unknown {unknown}, "
                f"missing {missing}."
            )
        w = {k: float(weights[k]) for k in posteriors}
        if any(not np.isfinite(v) or v < 0 for v in w.values()) or sum(w.values()) <= 0:
            raise InputError(f"weights must be non-negative and not all 0, got {w}.")
        source = "given weights"
    total = sum(w.values())
    w = {k: v / total for k, v in w.items()}
    return ModelAverage(posteriors, w, source, table, int(n_draws), int(seed))
