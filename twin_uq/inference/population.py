"""The statistical specification of a cohort fit, independent of any inference backend.

``PopulationModel`` describes *what* is assumed: log-normal individual parameters
(logit-normal for fractions declared ``scale="logit"``; see :mod:`twin_uq.model.scales`), the
population typical values and their covariate effects, between-patient variability
(diagonal or correlated), the parameterisation of the random effects, the residual error
model of each output and the priors. Backends (NumPyro, PyMC) compile the same description.

Individual parameters, for patient i and parameter k::

    log theta_ik = mu_k + sum_j beta_kj x_ij + allometric_ik + omega_k * eta_ik
                   [+ omega_occ_k * kappa_ik,o on occasion o, for parameters in ``iov``]

with ``x_ij`` the patient's covariates (continuous ones centred on the cohort median and
scaled by their SD; categorical ones as indicators against the most frequent level),
``allometric_ik`` the model's fixed allometric terms, and ``eta ~ Normal(0, R)`` with
``R`` the identity or an LKJ-distributed correlation matrix. A logit-normal parameter has
``logit theta_ik`` on the left and no allometric term; a parameter declared ``bsv=False``
has no ``omega_k * eta_ik`` (one value for all patients with the same covariates).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twin_uq.data import Cohort
from twin_uq.data.covariate_path import check_interpolation
from twin_uq.data.occasions import OccasionSegments, occasion_segments
from twin_uq.errors import InputError
from twin_uq.inference.centering import (
    CENTERING_DEFAULT_MESSAGE,
    CenteringDefaultWarning,
    default_centering,
)
from twin_uq.inference.covariate_design import (
    CovariateArrays,
    CovariateDesign,
    allometric_offsets,
    covariate_column,
)
from twin_uq.inference.residual import ERROR_CODES, ERROR_KINDS, RESIDUAL_CORRELATIONS
from twin_uq.model.base import Model
from twin_uq.model.scales import latent_typical

__all__ = [
    "PRIOR_CHECKS",
    "CovariateArrays",  # re-exported: the covariate design lives in inference.covariate_design
    "CovariateDesign",
    "PopulationModel",
    "build_covariate_design",
    "build_occasions",
]

#: What a fit may do about typical values far from the data (see ``PopulationModel``).
PRIOR_CHECKS = ("adapt", "warn", "off")


@dataclass(frozen=True)
class PopulationModel:
    """What a cohort fit assumes.

    Parameters
    ----------
    model
        The physiological model.
    covariate_effects
        Estimated covariate effects on log parameters: ``{"CL": ["AGE", "SEX"]}``.
        Continuous covariates are standardised; categorical ones get one coefficient per
        non-reference level.
    correlation
        ``"diagonal"`` (independent random effects) or ``"lkj"`` (correlated, LKJ(eta=2)
        prior on the correlation matrix).
    centering
        Parameterisation of the random effects. Default ``"auto"`` (0 with ``iov``,
        which ``"auto"`` does not handle), as :func:`twin_uq.fit`'s flat keywords, so
        ``population=PopulationModel(model)`` and no ``population`` give the same draws;
        earlier releases defaulted to 0 here, and a
        :class:`~twin_uq.inference.centering.CenteringDefaultWarning` says so where the
        default is taken and gives other draws than before. 0 is non-centred, 1 centred,
        values in between partially centred (Papaspiliopoulos et al. 2007). ``"auto"`` whitens each
        patient's random effects against a Gaussian approximation of its likelihood
        (Fisher information ``F`` at the patient's approximate mode, a residual SD
        estimated from the data, and the likelihood's centre ``h = F θ̂``;
        :mod:`twin_uq.inference.centering`): data-poor patients are non-centred,
        well-observed ones centred on their data, parameters that trade off are
        decorrelated, and a small sampled ``ω`` makes everyone non-centred. The reported
        weights are the shrinkage ``1 - V_kk / ω_k²``, ``V = (F + diag(1/ω²))⁻¹``. With
        ``correlation="lkj"`` the random effects are non-centred: ``0`` or ``"auto"``
        (which then means 0).
    error
        Residual error model per output name (defaults to each ``Output.error``).
    priors
        Overrides: ``{"mu.CL": (mean_log, sd_log), "omega.CL": scale, "sigma_add.conc":
        scale, "sigma_prop.conc": scale, "beta.CL.AGE": sd, "nu": (shape, rate)}``.
    prior_check
        What a fit does when a quick pooled fit (:mod:`twin_uq.inference.prefit`) puts a
        typical value more than 3 prior SDs from its prior median (a real drug clearing
        40 times faster than the model's default): ``"adapt"`` (default) re-centres that
        parameter's prior on the pooled estimate, widened to keep the default within two
        SDs, starts there, warns and records it in the fit; ``"warn"`` only warns;
        ``"off"`` skips the check. Parameters with a ``priors`` override are never adapted.
    residual_correlation
        Correlation of the residuals of one patient's output in time: ``"none"`` (default:
        independent) or ``"ou"`` (a continuous-time Ornstein-Uhlenbeck process,
        ``corr = exp(-|dt| / tau)`` on the error model's standardised scale, so each
        observation's marginal stays the error model's; AR(1) on equally spaced times), for
        every output or per output name (``{"glucose": "ou"}``). Each correlated output gets
        a correlation time ``tau`` (time units of the data) with a log-normal prior: by
        default centred on the geometric mean of the output's median sampling interval and
        median record length, SD 1.5 on the log scale; override with
        ``priors={"tau.glucose": (median, sd_log)}``. Gaussian error models only (not
        ``student_t``), no censored observations of a correlated output, NumPyro methods
        only (NUTS, SVI, Laplace).
    covariate_interpolation
        How a covariate that changes within a patient (a growing neonate's weight) acts on
        the parameters between its rows: ``"locf"`` (default; a value recorded at ``t``
        applies from ``t`` on until the next row) or ``"nocb"`` (NONMEM's default for
        covariates read at each record: it applies back to the previous row). Parameters
        are then piecewise constant in time (:mod:`twin_uq.data.covariate_path`).
    iov
        Parameters with inter-occasion variability (``["CL"]``; needs an ``OCC`` column):
        on occasion ``k`` of patient ``i`` the latent parameter moves by
        ``omega_occ * kappa_ik`` with ``kappa_ik ~ Normal(0, 1)`` (non-centred), so the
        parameters are piecewise constant between occasion starts
        (:mod:`twin_uq.data.occasions`). ``omega_occ`` has a HalfNormal prior whose scale
        is the parameter's between-patient prior scale unless ``priors["omega_occ.CL"]``
        says otherwise. Fitted by the NumPyro methods (NUTS; SVI; Laplace, whose MAP
        is often singular here: omega_occ at 0 leaves kappa flat); not with time-varying
        covariates of the design (yet).
    """

    model: Model
    covariate_effects: Mapping[str, Sequence[str]] = field(default_factory=dict)
    correlation: str = "diagonal"
    # None: the default, resolved in __post_init__ (always a number or "auto" afterwards)
    centering: float | str | None = None
    error: Mapping[str, str] = field(default_factory=dict)
    priors: Mapping[str, object] = field(default_factory=dict)
    prior_check: str = "adapt"
    covariate_interpolation: str = "locf"
    iov: Sequence[str] = ()
    residual_correlation: str | Mapping[str, str] = "none"

    def __post_init__(self) -> None:
        if self.centering is None:
            object.__setattr__(self, "centering", default_centering(self.iov))
            if self.centering == "auto" and self.correlation == "diagonal":
                warnings.warn(CENTERING_DEFAULT_MESSAGE, CenteringDefaultWarning, stacklevel=3)
        check_interpolation(self.covariate_interpolation)
        self._check_iov()
        self._check_residual_correlation()
        if self.prior_check not in PRIOR_CHECKS:
            raise InputError(
                f"prior_check must be one of {PRIOR_CHECKS}, got {self.prior_check!r}."
            )
        names = self.model.parameter_names
        _check_parameters(self.model, self.covariate_effects, "covariate_effects")
        if self.correlation not in ("diagonal", "lkj"):
            raise InputError(f"correlation must be 'diagonal' or 'lkj', got {self.correlation!r}.")
        if isinstance(self.centering, str):
            if self.centering != "auto":
                raise InputError(
                    f"centering must be a number in [0, 1] or 'auto', got {self.centering!r}."
                )
        elif not 0.0 <= float(self.centering) <= 1.0:
            raise InputError(f"centering must lie in [0, 1], got {self.centering}.")
        if self.correlation == "lkj" and self.centering not in (0, 0.0, "auto"):
            # "auto" means non-centred there: the weights need independent random effects.
            raise InputError(
                "Correlated random effects (lkj) use the non-centred form: centering=0 "
                f"(or 'auto'), got {self.centering}."
            )
        for out, kind in self.error.items():
            if out not in self.model.output_names:
                raise InputError(
                    f"error model given for unknown output {out!r}; outputs are {self.model.output_names}."
                )
            if kind not in ERROR_KINDS:
                raise InputError(
                    f"Unknown error model {kind!r} for output {out!r}; choose from {ERROR_KINDS}."
                )
        known_prefixes = (
            "mu.", "omega.", "omega_occ.", "sigma_add.", "sigma_prop.", "beta.", "nu", "tau.",
        )  # fmt: skip
        for key in self.priors:
            if not key.startswith(known_prefixes):
                raise InputError(
                    f"Unknown prior override {key!r}; keys start with {known_prefixes}."
                )
            if (
                key.startswith("omega.")
                and key[6:] in names
                and not self.model.parameter(key[6:]).bsv
            ):
                raise InputError(
                    f"Prior override {key!r}: parameter {key[6:]!r} is a fixed effect "
                    "(bsv=False) and has no between-patient SD omega."
                )

    def _check_iov(self) -> None:
        """Refuse unknown or repeated parameters in ``iov``, and ``iov`` with ``"auto"``."""
        if isinstance(self.iov, str):
            raise InputError(f"iov takes a list of parameter names, e.g. iov=[{self.iov!r}].")
        _check_parameters(self.model, self.iov, "iov")
        if len(set(self.iov)) != len(tuple(self.iov)):
            raise InputError(f"iov names a parameter twice: {list(self.iov)}.")
        if self.iov and self.centering == "auto":
            # The whitening linearises each patient's likelihood at one parameter vector.
            raise InputError(
                "centering='auto' does not handle inter-occasion variability (iov); use "
                "centering=0 (the default, non-centred) or a fixed value in [0, 1]."
            )
        for key in self.priors:
            if key.startswith("omega_occ.") and key[10:] not in self.iov:
                raise InputError(
                    f"Prior override {key!r}: parameter {key[10:]!r} has no inter-occasion "
                    f"variability (iov={list(self.iov)})."
                )

    # ---- derived settings ------------------------------------------------------------
    def iov_index(self) -> tuple[int, ...]:
        """Model indices of the parameters with inter-occasion variability, ``(J,)``."""
        names = self.model.parameter_names
        return tuple(names.index(p) for p in self.iov)

    def omega_occ_prior(self) -> np.ndarray:
        """Scales of the HalfNormal priors on the between-occasion SDs, ``(J,)``."""
        return np.array(
            [
                float(self.priors.get(f"omega_occ.{p}", self.model.parameter(p).bsv_prior_scale))
                for p in self.iov
            ]
        )

    def _check_residual_correlation(self) -> None:
        rc = self.residual_correlation
        kinds = rc.values() if isinstance(rc, Mapping) else [rc]
        for kind in kinds:
            if kind not in RESIDUAL_CORRELATIONS:
                raise InputError(
                    f"residual_correlation must be one of {RESIDUAL_CORRELATIONS} (or a mapping "
                    f"output -> one of them), got {kind!r}."
                )
        if isinstance(rc, Mapping):
            for out in rc:
                if out not in self.model.output_names:
                    raise InputError(
                        f"residual_correlation given for unknown output {out!r}; outputs are "
                        f"{self.model.output_names}."
                    )
        kinds_of = dict(zip(self.model.output_names, self.error_kinds(), strict=True))
        for k in self.correlated_outputs():
            name = self.model.output_names[k]
            if kinds_of[name] == "student_t":
                raise InputError(
                    f"Output {name!r}: an Ornstein-Uhlenbeck residual needs a Gaussian error "
                    "model (additive, proportional, combined or lognormal), not student_t."
                )

    # ---- derived settings ------------------------------------------------------------
    def correlated_outputs(self) -> tuple[int, ...]:
        """Indices of the outputs with an Ornstein-Uhlenbeck residual (``"ou"``)."""
        rc = self.residual_correlation
        return tuple(
            k
            for k, name in enumerate(self.model.output_names)
            if (rc.get(name, "none") if isinstance(rc, Mapping) else rc) == "ou"
        )

    def error_kinds(self) -> tuple[str, ...]:
        """Error model per model output, in output order."""
        return tuple(self.error.get(o.name, o.error) for o in self.model.outputs)

    def error_codes(self) -> np.ndarray:
        """Integer error-model code per model output."""
        return np.array([ERROR_CODES[k] for k in self.error_kinds()], dtype=np.int32)

    def mu_prior(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and SD of the Normal priors on ``mu``, typical values on the latent scale.

        The latent scale is each parameter's ``log``, or ``logit`` for a logit-normal one.
        """
        loc, scale = [], []
        for p in self.model.parameters:
            m, s = self.priors.get(f"mu.{p.name}", (latent_typical(p), p.prior_sd))
            loc.append(float(m))
            scale.append(float(s))
        return np.array(loc), np.array(scale)

    def omega_prior(self) -> np.ndarray:
        """Scales of the HalfNormal priors on the between-patient SDs ``omega``, ``(K,)``.

        A fixed-effect parameter's scale is unused: it has no ``omega``.
        """
        return np.array(
            [
                float(self.priors.get(f"omega.{p.name}", p.bsv_prior_scale))
                for p in self.model.parameters
            ]
        )

    def sigma_prior(self) -> tuple[np.ndarray, np.ndarray]:
        """HalfNormal scales of the additive and proportional residual SDs per output."""
        add, prop = [], []
        for o in self.model.outputs:
            add.append(float(self.priors.get(f"sigma_add.{o.name}", o.sigma_prior_scale[0])))
            prop.append(float(self.priors.get(f"sigma_prop.{o.name}", o.sigma_prior_scale[1])))
        return np.array(add), np.array(prop)

    def uses_student_t(self) -> bool:
        """Whether any output uses the Student-t error model."""
        return "student_t" in self.error_kinds()


def _check_parameters(model: Model, given: Sequence[str], what: str) -> None:
    """An ``InputError`` for the first name in ``given`` that is not a parameter of ``model``."""
    names = model.parameter_names
    for p in given:
        if p not in names:
            raise InputError(
                f"{what} names parameter {p!r}, which model {model.name!r} does not have; "
                f"its parameters are {names}."
            )


def build_covariate_design(spec: PopulationModel, cohort: Cohort) -> CovariateDesign:
    """Standardise the cohort's baseline covariates into the fit's design matrix.

    Raises
    ------
    ValueError
        A named covariate is absent from the cohort, or a patient lacks its value.
    """
    model = spec.model
    cov = cohort.covariates
    columns: list[np.ndarray] = []
    terms: list[str] = []
    centres: list[float] = []
    scales: list[float] = []
    term_of: dict[str, list[str]] = {}
    # How each term is computed from a covariate column, to evaluate it on every segment.
    transforms: list[tuple[str, str | None]] = []  # (column, level or None: continuous)
    for name in dict.fromkeys(c for cs in spec.covariate_effects.values() for c in cs):
        found = covariate_column(cov, name)
        if found is None:
            raise InputError(
                f"Covariate {name!r} requested in covariate_effects is not in the cohort "
                f"(covariates: {list(cov.columns)})."
            )
        col = cov[found]
        if col.isna().any():
            missing = list(col.index[col.isna()])[:5]
            raise InputError(f"Covariate {name!r} is missing for patient(s) {missing}.")
        if pd.api.types.is_numeric_dtype(col) and col.nunique() > 2:
            x = col.to_numpy(dtype=float)
            c, s = float(np.median(x)), float(np.std(x)) or 1.0
            columns.append((x - c) / s)
            transforms.append((found, None))
            terms.append(name)
            centres.append(c)
            scales.append(s)
            term_of[name] = [name]
        else:
            levels = col.astype(str)
            reference = levels.value_counts().index[0]
            term_of[name] = []
            for level in sorted(set(levels) - {reference}):
                columns.append((levels == level).to_numpy(dtype=float))
                transforms.append((found, level))
                label = f"{name}[{level}]"
                terms.append(label)
                centres.append(0.0)
                scales.append(1.0)
                term_of[name].append(label)
    P, K = cohort.n_patients, len(model.parameters)
    matrix = np.stack(columns, axis=1) if columns else np.zeros((P, 0))
    mask = np.zeros((K, len(terms)))
    effects: list[tuple[str, str]] = []
    for k, p in enumerate(model.parameter_names):
        for c in spec.covariate_effects.get(p, ()):
            for t in term_of[c]:
                mask[k, terms.index(t)] = 1.0
                effects.append((p, t))
    allometric = allometric_offsets(model, cov)
    design = CovariateDesign(
        matrix=matrix,
        terms=tuple(terms),
        effects=tuple(effects),
        mask=mask,
        allometric=allometric,
        centre=np.array(centres),
        scale=np.array(scales),
    )
    return _with_segments(spec, cohort, design, transforms)


def build_occasions(
    spec: PopulationModel, cohort: Cohort, design: CovariateDesign
) -> OccasionSegments | None:
    """The occasion segments of a fit with ``spec.iov`` (``None`` without).

    Raises
    ------
    InputError
        Without an ``OCC`` column, when no patient has two occasions (the occasion effect
        would be the patient's own), or with time-varying covariates of the design.
    """
    if not spec.iov:
        return None
    if design.segments is not None:
        raise InputError(
            f"Inter-occasion variability (iov={list(spec.iov)}) together with covariates "
            f"that change within a patient ({', '.join(design.segments.names)}) is not "
            "supported yet; fit without iov, or with those covariates' baseline values "
            "(one value per patient)."
        )
    occasions = occasion_segments(cohort.table, cohort.ids)
    if int(occasions.n_live.max(initial=1)) <= 1:
        raise InputError(
            f"iov={list(spec.iov)}: no patient in {cohort.source} has more than one "
            "occasion (OCC does not change within any patient), so an occasion effect "
            "cannot be told from the patient's own; fit without iov."
        )
    return occasions


def _with_segments(
    spec: PopulationModel,
    cohort: Cohort,
    design: CovariateDesign,
    transforms: Sequence[tuple[str, str | None]],
) -> CovariateDesign:
    """``design`` with its per-segment values when a covariate it uses changes in time.

    The covariates of the design are those of ``covariate_effects`` and of the model's
    allometric terms; each segment's design uses the baseline's centre, scale and
    reference level, so that segment values differ from baseline only by the covariates'
    change.
    """
    cov = cohort.covariates
    used = {c for c, _ in transforms}
    used |= {
        c for a in spec.model.allometric if (c := covariate_column(cov, a.covariate)) is not None
    }
    varying = [c for c in cov.columns if c in used and c in cohort.time_varying]
    if not varying:
        return design
    segments = cohort.covariate_segments(varying, spec.covariate_interpolation)
    if segments.n_segments == 1:
        return design
    S = segments.n_segments
    matrix = np.repeat(design.matrix[:, None, :], S, axis=1)
    allometric = np.empty((*design.allometric.shape[:1], S, design.allometric.shape[1]))
    for s in range(S):
        frame = cov.copy()
        for j, c in enumerate(segments.names):
            values = segments.values[:, s, j]
            # A patient without any value of a covariate keeps its baseline handling.
            frame[c] = np.where(pd.isna(values), frame[c].to_numpy(object), values)
            frame[c] = frame[c].astype(cov[c].dtype)
        for q, (c, level) in enumerate(transforms):
            if c not in segments.names:
                continue
            if level is None:
                x = frame[c].to_numpy(dtype=float)
                matrix[:, s, q] = (x - design.centre[q]) / design.scale[q]
            else:
                matrix[:, s, q] = (frame[c].astype(str) == level).to_numpy(dtype=float)
        allometric[:, s, :] = allometric_offsets(spec.model, frame)
    return dataclasses.replace(
        design, segments=segments, segment_matrix=matrix, segment_allometric=allometric
    )
