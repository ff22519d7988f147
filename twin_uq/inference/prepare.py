"""Assemble the arrays of a fit from a cohort and a population model.

Shared by every backend and by reloading a saved fit.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from twin_uq.data import Cohort, CohortWarning
from twin_uq.errors import InputError
from twin_uq.inference.buckets import Padding, pad_fit_data, take_centering, take_fit_data
from twin_uq.inference.centering import (
    AutoCentering,
    Centering,
    centering_point,
    shrinkage_weights,
)
from twin_uq.inference.likelihood import FitData
from twin_uq.inference.numpyro_model import PriorArrays, ProgramStructure
from twin_uq.inference.population import (
    CovariateDesign,
    PopulationModel,
    build_covariate_design,
    build_occasions,
)
from twin_uq.inference.random_effects import embed_omega, random_columns
from twin_uq.model.base import SolverSettings
from twin_uq.model.scales import random_index
from twin_uq.simulate.fixed_step import cohort_grids

__all__ = ["PreparedFit", "centering_weights", "prepare_fit", "with_centering"]


@dataclass(frozen=True)
class PreparedFit:
    """A population model bound to a cohort: structure, data and priors for a backend.

    ``centering`` is how the random effects are parameterised (chosen here, kept out of
    the data); :meth:`program_args` are the arguments of the NumPyro program after its
    structure.
    """

    spec: PopulationModel
    cohort: Cohort
    design: CovariateDesign
    structure: ProgramStructure
    data: FitData
    priors: PriorArrays
    centering: Centering
    prior_review: object | None = None
    """The :class:`~twin_uq.inference.prefit.PriorReview` of the pre-fit check of typical
    values (``None``: not run). Typed loosely because prefit sits above this module."""
    padding: Padding | None = None
    """Shape buckets (``prepare_fit(..., shape_buckets=True)``): ``data`` and ``centering``
    hold ghost patients and padded observation columns after the real ones; ``None``: the
    cohort's own shapes. :meth:`unpadded` gives the real problem."""

    @property
    def n_real_patients(self) -> int:
        """Patients of the cohort (ghost patients of a bucketed fit not counted)."""
        return self.data.n_patients if self.padding is None else self.padding.n_patients

    def unpadded(self) -> PreparedFit:
        """The problem for the real patients and observations only (itself if not padded).

        What a posterior keeps: the arrays and the centring of the cohort, as a fit of its
        own shapes (or a reloaded fit) has them.
        """
        if self.padding is None:
            return self
        return dataclasses.replace(
            self,
            data=take_fit_data(self.data, self.padding),
            centering=take_centering(self.centering, self.padding),
            padding=None,
        )

    def program_args(self) -> tuple[FitData, PriorArrays, Centering]:
        """``(data, priors, centering)``: the NumPyro program's arguments after its structure."""
        return self.data, self.priors, self.centering

    def init_values(self) -> dict[str, np.ndarray]:
        """Starting point of every latent site.

        Random initial values sent ODE solvers into their step limit during warm-up, so
        the population parameters start at the priors' medians (between-patient SD
        ``min(scale / 2, 0.3)``). With ``centering="auto"`` each patient starts at its
        approximate mode under that population prior and the residual SDs at their
        estimates from the data (the centring point, where every solve succeeded: whitened
        latents started at the population median sat many posterior SDs away for
        well-observed patients); otherwise every patient starts at the population median
        and the residual SDs at half their prior scale.
        """
        s = self.structure
        model = s.model
        P, R = self.data.n_patients, len(random_index(model))
        auto = self.centering.auto
        mu = np.asarray(self.priors.mu_loc)
        omega = _initial_omega(self.priors)
        values: dict[str, np.ndarray] = {"mu": mu}
        if R:
            values["omega"] = omega
        mean = np.asarray(self.data.allometric) + mu
        if s.n_effects:
            values["beta"] = np.zeros(s.n_effects)
        if s.correlated and R:
            values["corr_chol"] = np.eye(R)
            values["z"] = np.zeros((P, R))
        add = np.asarray(auto.add) if auto is not None else None
        prop = np.asarray(auto.prop) if auto is not None else None
        if s.add_outputs:
            start = _initial_sigma(self.priors.add_scale)
            values["sigma_add"] = start if add is None else add[list(s.add_outputs)]
        if s.prop_outputs:
            start = _initial_sigma(self.priors.prop_scale)
            values["sigma_prop"] = start if prop is None else prop[list(s.prop_outputs)]
        if s.student_t:
            values["nu"] = np.asarray(10.0)
        if s.iov:  # every occasion at its patient's value
            values["omega_occ"] = _initial_omega_of(self.priors.omega_occ_scale)
            values["kappa"] = np.zeros((P, s.n_occasions, len(s.iov)))
        if s.ou_outputs:  # correlation times at their prior medians
            values["tau"] = np.exp(np.asarray(self.priors.tau_loc))
        if s.correlated or not R:
            return values
        if auto is None:
            values["z"] = random_columns(model, np.asarray(self.centering.weights) * mean)
        else:
            numpy_auto = auto.as_numpy()
            full = embed_omega(model, omega, xp=np)
            loc, upper = numpy_auto.latent_prior(mean, full, add, prop, xp=np)
            # the inverse of log theta = mean + Ω U⁻ᵀ (z - loc), at the modes (a fixed
            # effect's mode is its mean: no shift)
            shift = (numpy_auto.point - mean) / np.where(full > 0, full, 1.0)
            z = loc + np.einsum("pkl,pk->pl", upper, shift)
            values["z"] = random_columns(model, z)
        return values

    def posterior_variance_guess(self) -> dict[str, np.ndarray]:
        """Rough posterior variances of the unconstrained sites.

        NUTS's diagonal mass-matrix adaptation starts there instead of at the identity.

        Whitened latents have posterior variance about 1; a population mean about
        ``ω² / P``; ``log ω`` about ``1 / (2P)``; a log residual SD about ``1 / (2 n)``
        with ``n`` the output's usable observations. Starting from the identity, the
        first adaptation windows ran trees of hundreds of leapfrog steps to cover these
        scales, 100 times apart at 100 patients.
        """
        s = self.structure
        P = self.n_real_patients  # ghost patients inform nothing
        omega = _initial_omega(self.priors)
        arr = self.data.arrays
        usable = np.asarray(arr.obs_mask) & ~np.asarray(arr.obs_censored)
        per_output = np.bincount(
            np.asarray(arr.obs_output)[usable], minlength=self.data.error_code.shape[0]
        )
        # A fixed effect varies by its prior scale's worth less than a random one: its
        # posterior variance is guessed as that of a random one at the starting SD.
        full = embed_omega(s.model, omega, xp=np)
        full = np.where(full > 0, full, _initial_omega_of(self.spec.omega_prior()))
        guess: dict[str, np.ndarray] = {"mu": full**2 / P}
        if omega.size:
            guess["omega"] = np.full(omega.size, 1.0 / (2 * P))
        if s.n_effects:
            guess["beta"] = np.full(s.n_effects, float(np.mean(full**2)) / P)
        if s.add_outputs:
            guess["sigma_add"] = 1.0 / (2 * np.maximum(per_output[list(s.add_outputs)], 1))
        if s.prop_outputs:
            guess["sigma_prop"] = 1.0 / (2 * np.maximum(per_output[list(s.prop_outputs)], 1))
        if s.iov:  # like omega: about one occasion effect per patient informs it
            guess["omega_occ"] = np.full(len(s.iov), 1.0 / (2 * P))
        return guess


def _initial_omega(priors: PriorArrays) -> np.ndarray:
    """Starting between-patient SD per parameter with variability (latent scale), ``(R,)``."""
    return _initial_omega_of(priors.omega_scale)


def _initial_omega_of(scale) -> np.ndarray:
    return np.minimum(0.5 * np.asarray(scale), 0.3)


def _initial_sigma(scale: jnp.ndarray) -> np.ndarray:
    """Starting residual SDs: half their HalfNormal prior scale."""
    return 0.5 * np.asarray(scale)


def centering_weights(
    spec: PopulationModel,
    structure: ProgramStructure,
    data: FitData,
    priors: PriorArrays,
    patients: int | None = None,
) -> tuple[np.ndarray, AutoCentering | None]:
    """Partial-centring weights ``(P, K)`` and, for ``"auto"``, what they follow.

    ``"auto"`` (see :class:`PopulationModel`) gives each patient and parameter the
    shrinkage weight of :mod:`twin_uq.inference.centering`, with the information
    evaluated at the patient's approximate mode and a residual SD estimated from the data;
    the weights returned are those at the starting between-patient SD (what a fit
    reports), the :class:`AutoCentering` (the likelihood linearised at the modes) is what
    sampling whitens the random effects with. Fixed weights come with ``None``. Only the
    first ``patients`` rows are the cohort's (the rest: ghosts of shape buckets).
    """
    P, K = data.n_patients, structure.n_params
    if spec.centering != "auto":
        return np.full((P, K), float(spec.centering)), None
    if structure.correlated:
        return np.zeros((P, K)), None
    n_out = data.error_code.shape[0]
    add = np.zeros(n_out)
    prop = np.zeros(n_out)
    add[list(structure.add_outputs)] = _initial_sigma(priors.add_scale)
    prop[list(structure.prop_outputs)] = _initial_sigma(priors.prop_scale)
    mean = np.asarray(data.allometric) + np.asarray(priors.mu_loc)
    omega = embed_omega(structure.model, _initial_omega(priors), xp=np)  # 0: fixed effects
    point = centering_point(
        structure.model, structure.settings, mean, omega, data.arrays, data.error_code, add,
        prop, grids=data.grids, patients=patients,
    )  # fmt: skip
    auto = point.linearisation
    return shrinkage_weights(point.information, omega), auto


def prepare_fit(
    spec: PopulationModel,
    cohort: Cohort,
    settings: SolverSettings | None = None,
    centering: np.ndarray | None = None,
    auto: AutoCentering | None = None,
    *,
    shape_buckets: bool = False,
    defer_centering: bool = False,
) -> PreparedFit:
    """Validate the cohort against the model and build every array the backends need.

    ``centering`` gives the ``(P, K)`` centring weights directly and ``auto`` what makes
    them follow the sampled between-patient SD (a reloaded fit passes the ones it was
    fitted with; without ``auto`` the weights are fixed); by default both follow
    ``spec.centering``.

    ``shape_buckets``: pad patients and observations per patient up to their buckets
    (:mod:`twin_uq.inference.buckets`), so that the compiled programs of any cohort of the
    same buckets serve this one; the ghost patients are non-centred (weight 0) and have
    no linearisation (no observation). Not with ``centering`` given.

    ``defer_centering``: all weights 0 for now (no centring search); :func:`with_centering`
    chooses them once the priors are final (the pooled prior check may adapt them).
    """
    model = spec.model
    arrays = cohort.for_model(model)
    settings = (settings or model.solver).covering(np.asarray(arrays.obs_time))
    design = build_covariate_design(spec, cohort)
    covariate_arrays = design.as_arrays(model.parameter_names)
    # Time-varying design covariates: parameters piecewise constant between change times.
    arrays = arrays.with_change_times(design.change_time)
    # Inter-occasion variability: parameters piecewise constant between occasion starts.
    occasions = build_occasions(spec, cohort, design)
    if occasions is not None:
        arrays = arrays.with_change_times(occasions.time)
    _warn_baseline_only(spec, cohort, design)
    segment_design, segment_allometric = design.segment_shifts()
    data = FitData(
        arrays=arrays,
        design=covariate_arrays.design,
        effect_param=covariate_arrays.effect_param,
        effect_term=covariate_arrays.effect_term,
        allometric=covariate_arrays.allometric,
        error_code=jnp.asarray(spec.error_codes()),
        **_as_jax(segment_design=segment_design, segment_allometric=segment_allometric),
        segment_occasion=None if occasions is None else jnp.asarray(occasions.index),
    )
    structure = ProgramStructure.from_spec(
        spec, len(design.effects), settings, 0 if occasions is None else occasions.n_occasions
    )
    if structure.ou_outputs:
        check_correlated_residuals(model, cohort.ids, arrays, structure.ou_outputs)
    padding = None
    if shape_buckets:
        if centering is not None:
            raise ValueError("shape_buckets=True computes the centring itself; got weights.")
        padding = Padding.of(data)
        data = pad_fit_data(data, padding)
    # Padded columns and ghosts are masked: the priors and grids see what they saw before.
    priors = PriorArrays.from_spec(spec, structure, design.effects, data.arrays)
    if settings.is_fixed_step:  # before the centring point, which solves on them too
        data = dataclasses.replace(data, grids=cohort_grids(model, settings, data.arrays))
    if defer_centering:  # chosen later by with_centering, once the priors are settled  # chosen later by with_centering, once the priors are settled
        centering = np.zeros((data.n_patients, structure.n_params))
    if centering is None:
        centering, auto = centering_weights(
            spec, structure, data, priors, None if padding is None else padding.n_patients
        )
    chosen = _centering(centering, auto, data, structure, padding)
    return PreparedFit(
        spec=spec,
        cohort=cohort,
        design=design,
        structure=structure,
        data=data,
        priors=priors,
        centering=chosen,
        padding=padding,
    )


def with_centering(prepared: PreparedFit) -> PreparedFit:
    """``prepared`` with the centring its ``spec`` asks for, chosen afresh.

    For a fit prepared with ``defer_centering=True`` while the priors may still change:
    the ``"auto"`` centring point is a search over the cohort, run once for the priors
    the fit uses.
    """
    centering, auto = centering_weights(
        prepared.spec,
        prepared.structure,
        prepared.data,
        prepared.priors,
        prepared.n_real_patients,
    )
    chosen = _centering(centering, auto, prepared.data, prepared.structure, prepared.padding)
    return dataclasses.replace(prepared, centering=chosen)


def _centering(
    centering: np.ndarray,
    auto: AutoCentering | None,
    data: FitData,
    structure: ProgramStructure,
    padding: Padding | None,
) -> Centering:
    """Check the weights' and linearisation's shapes and bundle them as a :class:`Centering`.

    Ghost patients of shape buckets are non-centred: a centred effect without data is
    coupled to the population (a funnel).
    """
    if padding is not None:
        centering = np.array(centering)
        centering[padding.n_patients :] = 0.0
    expected = (data.n_patients, structure.n_params)
    if np.shape(centering) != expected:
        raise ValueError(
            f"centering weights have shape {np.shape(centering)}, expected {expected} (patients, parameters)."
        )
    if auto is not None and (
        np.shape(auto.point) != expected
        or np.shape(auto.sensitivity) != (*expected, data.arrays.obs_time.shape[1])
    ):
        raise ValueError(
            f"auto centring is linearised at {np.shape(auto.point)} log parameters with "
            f"sensitivities {np.shape(auto.sensitivity)}, expected {expected} and "
            f"{(*expected, data.arrays.obs_time.shape[1])} (patients, parameters, observations)."
        )
    return Centering(
        weights=jnp.asarray(centering, dtype=float),
        auto=None if auto is None else auto.with_unit_scale(),
    )


def check_correlated_residuals(model, ids, arrays, outputs: tuple[int, ...]) -> None:
    """Refuse data that an Ornstein-Uhlenbeck residual cannot score, naming patient and time.

    Censored observations of a correlated output would need a multivariate Normal
    probability (not implemented; treating them as independent would be silently wrong),
    and two observations of one output at the same time are perfectly correlated under a
    pure OU process (a white-noise part, not implemented, would allow them).
    """
    cens = np.asarray(arrays.obs_censored)
    if arrays.obs_cens is not None:
        cens = cens | (np.asarray(arrays.obs_cens) != 0)
    mask = np.asarray(arrays.obs_mask)
    times, outs = np.asarray(arrays.obs_time), np.asarray(arrays.obs_output)
    for k in outputs:
        name = model.output_names[k]
        for i in range(mask.shape[0]):
            here = mask[i] & (outs[i] == k)
            if np.any(cens[i] & here):
                t = times[i][cens[i] & here][0]
                raise InputError(
                    f"Patient {ids[i]!r}, output {name!r}: censored observation at time {t:g} "
                    "with residual_correlation='ou'. Censored points under a correlated "
                    "residual are not supported; drop them or fit this output without "
                    "residual_correlation."
                )
            t = np.sort(times[i][here])
            if t.size > 1 and np.any(np.diff(t) <= 0):
                tie = t[1:][np.diff(t) <= 0][0]
                raise InputError(
                    f"Patient {ids[i]!r}, output {name!r}: two observations at time {tie:g}. An "
                    "Ornstein-Uhlenbeck residual needs distinct times per output (average "
                    "replicates first)."
                )


def _as_jax(**arrays: np.ndarray | None) -> dict[str, jnp.ndarray | None]:
    """NumPy arrays as float64 JAX arrays, ``None`` left as it is."""
    return {k: None if v is None else jnp.asarray(v, dtype=jnp.float64) for k, v in arrays.items()}


def _warn_baseline_only(spec: PopulationModel, cohort: Cohort, design: CovariateDesign) -> None:
    """Say so when a model covariate changes within patients but enters through its first value.

    A model's own covariates (``model.covariates``, read by its ``y0``/``rhs``) are one value
    per patient; only covariates of the design (effects, allometry) follow their path.
    """
    in_design = set(design.segments.names) if design.segments is not None else set()
    lower = {c.lower(): c for c in cohort.time_varying}
    missed = [
        lower[n.lower()]
        for n in spec.model.covariates
        if n.lower() in lower and lower[n.lower()] not in in_design
    ]
    if missed:
        warnings.warn(
            f"{cohort.source}: covariate(s) {missed} change within patients, but model "
            f"{spec.model.name!r} reads them as one value per patient (its first): they act "
            "through their whole path only in covariate_effects or allometric scaling.",
            CohortWarning,
            stacklevel=3,
        )
