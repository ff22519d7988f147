"""Shape buckets: a fit padded to bucket sizes, so that a new cohort reuses compiled code.

Every compiled program of a fit is specialised to the cohort's array shapes: patients
``P`` and observations per patient ``N``. With ``shape_buckets=True`` the fit's arrays are
padded up to :func:`~twin_uq.data.arrays.bucket_size` of each (at most 25 % more), so
that every cohort of the same bucket runs the same programs (in one process, and from the
persistent compilation cache in a new one). Why this leaves the posterior of the real
patients alone (docs/performance.md, "Shape buckets"):

- A padded observation is masked (``obs_mask`` False): it adds exactly 0 to every
  log-likelihood and is unused by the centring point (zero sensitivity, ``unused``).
- A ghost patient has no observation; its centring weight is set to 0 and its
  linearisation is empty (no used observation), so its latents are standard normals
  that enter nothing else: the padded log density is the real one plus each ghost's
  ``log N(z; 0, 1)`` at every value of every other parameter. The population, residual
  and real patients' posterior is exactly the real model's.
- Ghosts and padded columns are cut off (:func:`take_prepared`, :func:`take_samples`,
  :func:`take_derived`) before anything reads the draws: diagnostics, the solver check,
  the InferenceData, summaries, twins and LOO see only real patients and observations.

NUTS then moves in more dimensions (the ghosts' latents), so the draws of a bucketed fit
differ from an unbucketed one for the same seed; they sample the same posterior.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from twin_uq.data.arrays import bucket_size, host_slice, pad_cohort_arrays, take_cohort_arrays
from twin_uq.inference.likelihood import FitData

if TYPE_CHECKING:
    from twin_uq.inference.backends import BackendResult
    from twin_uq.inference.postprocess import DrawQuantities
    from twin_uq.inference.reparam import Centering

__all__ = [
    "Padding",
    "ghost_log_density",
    "pad_fit_data",
    "take_centering",
    "take_derived",
    "take_fit_data",
    "take_result",
    "take_samples",
]

# Latent sites with a patient axis (after the leading chain and draw axes).
PATIENT_SITES = ("z", "kappa")
# FitData fields with a leading patient axis besides the arrays (and the grids).
_PATIENT_FIELDS = ("design", "allometric", "segment_design", "segment_allometric",
                   "segment_occasion")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Padding:
    """Real and padded sizes of a bucketed fit: patients and observations per patient."""

    n_patients: int
    n_obs: int
    to_patients: int
    to_obs: int

    @classmethod
    def of(cls, data: FitData) -> Padding:
        """The buckets of ``data``'s patients and observation columns."""
        P, N = data.arrays.obs_time.shape
        return cls(P, N, bucket_size(P, smallest=8), bucket_size(N, smallest=4))

    @property
    def n_ghosts(self) -> int:
        """Ghost patients appended."""
        return self.to_patients - self.n_patients


def pad_fit_data(data: FitData, padding: Padding) -> FitData:
    """``data`` padded to ``padding``'s sizes (build the fixed grids after this, if any).

    Ghost patients copy patient 0's covariate design and allometric offsets (finite
    values that enter nothing: a ghost has no observation).
    """
    if data.grids is not None:
        raise ValueError("pad the fit data before building its fixed-step grids.")
    ghosts = np.zeros(padding.n_ghosts, dtype=int)
    changes = {
        k: jnp.asarray(np.concatenate([np.asarray(getattr(data, k))[i] for i in (..., ghosts)]))
        for k in _PATIENT_FIELDS
        if getattr(data, k) is not None
    }
    arrays = pad_cohort_arrays(data.arrays, padding.to_patients, padding.to_obs)
    return dataclasses.replace(data, arrays=arrays, **changes)


def take_fit_data(data: FitData, padding: Padding) -> FitData:
    """The real patients and observation columns of padded ``data``."""
    P, N = padding.n_patients, padding.n_obs
    changes = {
        k: host_slice(getattr(data, k), np.s_[:P])
        for k in _PATIENT_FIELDS
        if getattr(data, k) is not None
    }
    grids = data.grids
    if grids is not None:
        grids = jax.tree.map(lambda x: host_slice(x, np.s_[:P]), grids)
        # the requested times are the observation columns
        timed = tuple(k for k in ("read", "times") if getattr(grids, k) is not None)
        grids = eqx.tree_at(
            lambda g: tuple(getattr(g, k) for k in timed),
            grids,
            tuple(host_slice(getattr(grids, k), np.s_[:, :N]) for k in timed),
        )
    arrays = take_cohort_arrays(data.arrays, P, N)
    return dataclasses.replace(data, arrays=arrays, grids=grids, **changes)


def take_centering(centering: Centering, padding: Padding) -> Centering:
    """The real patients' centring weights and linearisation (observation columns cut)."""
    P, N = padding.n_patients, padding.n_obs
    auto = centering.auto
    if auto is not None:
        per_obs = ("residual", "var_add", "var_prop", "unused", "output")
        per_patient = ("point", "unit_information", "unit_vector")
        changes = {k: host_slice(getattr(auto, k), np.s_[:P, :N]) for k in per_obs}
        changes["sensitivity"] = host_slice(auto.sensitivity, np.s_[:P, :, :N])
        changes.update(
            {
                k: host_slice(getattr(auto, k), np.s_[:P])
                for k in per_patient
                if getattr(auto, k) is not None
            }
        )
        auto = dataclasses.replace(auto, **changes)
    weights = host_slice(centering.weights, np.s_[:P])
    return dataclasses.replace(centering, weights=weights, auto=auto)


def take_samples(samples: dict[str, np.ndarray], padding: Padding) -> dict[str, np.ndarray]:
    """Draws ``(chain, draw, ...)`` without the ghosts' latents."""
    P = padding.n_patients
    return {k: (np.asarray(v)[:, :, :P] if k in PATIENT_SITES else v) for k, v in samples.items()}


def ghost_log_density(samples: dict[str, np.ndarray], padding: Padding) -> np.ndarray:
    """``(chain, draw)`` the ghosts' standard normal log densities (what padding adds).

    The padded log density is the real one plus this, at every draw.
    """
    P = padding.n_patients
    total = 0.0
    for k in PATIENT_SITES:
        if k in samples:
            g = np.asarray(samples[k])[:, :, P:]
            g = g.reshape(*g.shape[:2], -1)
            total = total - 0.5 * np.sum(g**2, axis=-1) - 0.5 * g.shape[-1] * np.log(2 * np.pi)
    return np.asarray(total)


def take_result(result: BackendResult, padding: Padding) -> BackendResult:
    """A method's result for the real patients only.

    The latents of the ghosts are dropped, and the sampler's ``lp`` (log density of each
    draw) becomes the real model's by removing the ghosts' terms. ``energy`` (and the
    BFMI computed from it) stays that of the run, which moved the ghosts too.
    """
    stats = dict(result.sample_stats)
    if "lp" in stats:
        stats["lp"] = np.asarray(stats["lp"]) - ghost_log_density(result.samples, padding)
    return dataclasses.replace(
        result, samples=take_samples(result.samples, padding), sample_stats=stats
    )


def take_derived(derived: DrawQuantities, padding: Padding) -> DrawQuantities:
    """Post-processed draws ``(chain, draw, P, ...)`` of the real patients and observations."""
    P, N = padding.n_patients, padding.n_obs
    out = type(derived)()
    for k, v in derived.items():
        v = np.asarray(v)[:, :, :P]
        out[k] = v[..., :N] if k in ("loglik_obs", "y_rep", "f") else v
    return out
