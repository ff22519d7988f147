"""Fit methods as objects: ``tq.fit(model, cohort, method=NUTS(draws=2000))``.

Each method is a small frozen dataclass holding its own settings. It validates them when
built, runs on a prepared fit problem (:meth:`FitMethod.run`), and is stored with the
result as the record of how the posterior was made (:meth:`FitMethod.record`), in the
manner of diffrax's solver objects and NumPyro's ``MCMC(NUTS(...))``.

Methods that do not follow the one-machine pipeline (two-stage fits on a cluster,
:class:`twin_uq.distributed.TwoStage`) override :meth:`FitMethod.fit_cohort` instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import numpy as np

from twin_uq.errors import InputError, UnavailableError
from twin_uq.inference.backends import BackendResult, run_laplace, run_nuts, run_svi
from twin_uq.inference.nuts_kernel import CHAIN_METHODS
from twin_uq.inference.pipeline import fit_prepared, prepare_problem
from twin_uq.inference.prepare import PreparedFit
from twin_uq.inference.pymc_backend import PYMC_SAMPLERS, run_pymc

if TYPE_CHECKING:
    from twin_uq.data import Cohort
    from twin_uq.inference.population import PopulationModel
    from twin_uq.model.base import SolverSettings
    from twin_uq.posterior import CohortPosterior

__all__ = [
    "NUTS",
    "SVI",
    "FitMethod",
    "FitOptions",
    "FitSettings",
    "FitSettingsError",
    "Laplace",
    "PyMC",
    "check_counts",
]


class FitSettingsError(InputError):
    """A fit method's setting is out of range (the message names it and what is allowed)."""


def _whole(value: object, low: int) -> bool:
    """Whether ``value`` is a whole number >= ``low`` (``3`` and ``3.0``; not ``2.5``, ``True``)."""
    if isinstance(value, bool):
        return False
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return number.is_integer() and number >= low


def check_counts(
    method: object, positive: tuple[str, ...], non_negative: tuple[str, ...] = ()
) -> None:
    """Refuse a fit method whose count settings are not whole numbers in range.

    ``positive`` names attributes that must be whole numbers >= 1, ``non_negative`` those
    that may also be 0; the :class:`FitSettingsError` names the setting and its value.
    """
    for name in positive:
        if not _whole(getattr(method, name), 1):
            raise FitSettingsError(
                f"{name} must be a positive integer, got {getattr(method, name)!r}."
            )
    for name in non_negative:
        if not _whole(getattr(method, name), 0):
            raise FitSettingsError(
                f"{name} must be an integer >= 0, got {getattr(method, name)!r}."
            )


def _check_target_accept(value: float) -> None:
    if not 0.0 < value < 1.0:
        raise FitSettingsError(f"target_accept must lie in (0, 1), got {value}.")


@dataclass(frozen=True)
class FitSettings:
    """The ``settings`` record of a fit file (one flat layout for every method).

    Kept so that files written before fit methods were objects and files written now read
    the same way; the method object itself is stored as ``attrs["fit_method"]``.
    """

    method: str = "nuts"
    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    seed: int = 0
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = False
    svi_steps: int = 3000
    learning_rate: float = 0.01
    guide: str = "lowrank"
    chain_method: str = "auto"


@dataclass(frozen=True)
class FitOptions:
    """What a fit is asked besides the model, the cohort and the method's own settings.

    Attributes
    ----------
    solver
        ODE solver settings (``None``: the model's defaults).
    seed
        Random seed of the fit.
    progress
        Whether to show a progress bar.
    shape_buckets
        Pad the cohort to shape buckets (:mod:`twin_uq.inference.buckets`) so that a cohort
        of another size in the same bucket reuses the compiled programs; methods that
        cannot (``PyMC``) ignore it.
    """

    solver: SolverSettings | None = None
    seed: int = 0
    progress: bool = False
    shape_buckets: bool = False


class FitMethod(ABC):
    """How a cohort's posterior is computed. Subclasses are frozen dataclasses.

    Class attributes
    ----------------
    name
        The short name stored with a fit (``idata.attrs["method"]``) and used by the CLI.
    approximate
        Whether the posterior is an approximation (labelled so in every output).
    """

    name: ClassVar[str]
    approximate: ClassVar[bool] = False
    pads: ClassVar[bool] = True
    """Whether the method runs a padded problem (shape buckets) as it runs any other."""

    @abstractmethod
    def run(
        self, prepared: PreparedFit, key: jax.Array, *, seed: int, progress: bool
    ) -> BackendResult:
        """Draw the latent sites of the prepared problem."""

    def record(self) -> dict[str, Any]:
        """The method and its settings as JSON-ready provenance."""
        return {"method": self.name, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    def legacy_settings(self, seed: int) -> dict[str, Any]:
        """The ``settings`` attribute of fit files, in the layout readers already know."""
        fields = {f.name for f in dataclasses.fields(FitSettings)}
        values = {k: v for k, v in self.record().items() if k in fields}
        return dataclasses.asdict(FitSettings(**(values | {"seed": seed})))

    def fit_cohort(
        self, spec: PopulationModel, cohort: Cohort, options: FitOptions
    ) -> CohortPosterior:
        """Prepare the problem, run the method and post-process its draws into a posterior."""
        buckets = options.shape_buckets and self.pads
        prepared = prepare_problem(spec, cohort, options.solver, shape_buckets=buckets)
        return fit_prepared(self, prepared, seed=options.seed, progress=options.progress)


@dataclass(frozen=True)
class _Hamiltonian(FitMethod):
    """The NUTS settings and their checks, shared by :class:`NUTS` and :class:`PyMC`.

    ``chains``, ``warmup``, ``draws``, ``target_accept`` and ``max_tree_depth`` are
    documented with :class:`NUTS`.
    """

    name: ClassVar[str] = "nuts"

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    target_accept: float = 0.9
    max_tree_depth: int = 10

    def __post_init__(self) -> None:
        check_counts(self, ("chains", "draws", "max_tree_depth"), ("warmup",))
        _check_target_accept(self.target_accept)


@dataclass(frozen=True)
class NUTS(_Hamiltonian):
    """The No-U-Turn sampler (NumPyro): exact MCMC, the default.

    Parameters
    ----------
    chains, warmup, draws
        Chains run in parallel on CPU cores; ``chains x draws`` draws are kept.
    target_accept, max_tree_depth, dense_mass
        Step-size adaptation target, tree depth limit, dense mass matrix.
    chain_method
        ``"parallel"`` (one chain per device, the CPU default), ``"vectorized"`` (all
        chains batched on one device, the default on a single GPU) or ``"auto"``.
    """

    dense_mass: bool = False
    chain_method: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chain_method not in CHAIN_METHODS:
            raise FitSettingsError(
                f"chain_method must be one of {CHAIN_METHODS}, got {self.chain_method!r}."
            )

    def run(self, prepared, key, *, seed, progress):
        return run_nuts(
            prepared.structure, prepared.program_args(), prepared.init_values(), key=key,
            chains=self.chains, warmup=self.warmup, draws=self.draws,
            target_accept=self.target_accept, max_tree_depth=self.max_tree_depth,
            dense_mass=self.dense_mass, chain_method=self.chain_method,
            mass=prepared.posterior_variance_guess(), progress=progress,
        )  # fmt: skip


class _Optimisation(FitMethod):
    """SVI and Laplace: an optimisation started at every patient at the population median.

    Subclasses are frozen dataclasses with ``steps``, ``learning_rate`` and ``draws`` and
    name their backend function ``_optimiser`` (it reads those settings from the method
    object); a start where the log density is not finite is explained by
    :func:`explained_invalid_start`.
    """

    approximate: ClassVar[bool] = True
    _optimiser: ClassVar[Callable[..., BackendResult]]

    def record(self) -> dict[str, Any]:
        # The flat settings layout of fit files calls the optimisation steps svi_steps.
        return {**super().record(), "svi_steps": self.steps}  # type: ignore[attr-defined]

    def run(self, prepared, key, *, seed, progress):
        init = prepared.init_values()
        with explained_invalid_start(prepared, init, self.name):
            return self._optimiser(
                prepared.structure, prepared.program_args(), init, self, key=key,
                progress=progress,
            )  # fmt: skip


@dataclass(frozen=True)
class SVI(_Optimisation):
    """Stochastic variational inference with a Gaussian guide: fast, approximate.

    The guide on the unconstrained space cannot represent funnels or skewed posteriors;
    intervals are typically too narrow for weakly identified parameters.

    Parameters
    ----------
    steps, learning_rate
        Optimisation steps and Adam learning rate.
    guide
        ``"lowrank"`` or ``"mvn"`` (full-rank multivariate normal).
    draws
        Draws taken from the fitted guide (stored as one "chain").
    """

    name: ClassVar[str] = "svi"
    _optimiser = staticmethod(run_svi)

    steps: int = 3000
    learning_rate: float = 0.01
    guide: str = "lowrank"
    draws: int = 1000

    def __post_init__(self) -> None:
        check_counts(self, ("steps", "draws"))
        if self.guide not in ("lowrank", "mvn"):
            raise FitSettingsError(f"guide must be 'lowrank' or 'mvn', got {self.guide!r}.")


@dataclass(frozen=True)
class Laplace(_Optimisation):
    """MAP estimate and a Gaussian at it (Hessian on the unconstrained scale): approximate.

    Exact only for Gaussian posteriors; the Hessian is taken on the log scale of positive
    parameters, where posteriors are closer to normal.
    """

    name: ClassVar[str] = "laplace"
    _optimiser = staticmethod(run_laplace)

    steps: int = 3000
    learning_rate: float = 0.01
    draws: int = 1000

    def __post_init__(self) -> None:
        check_counts(self, ("steps", "draws"))


@dataclass(frozen=True)
class PyMC(_Hamiltonian):
    """The same population model compiled to PyMC (the second, independent backend).

    Needs ``twin-uq[pymc]``. ``sampler`` is what runs the PyMC model: ``"nutpie"`` (the
    default, as PyMC itself picks when nutpie is installed), ``"pymc"`` (PyMC's own NUTS),
    ``"numpyro"`` or ``"blackjax"`` (PyMC's JAX samplers). The other settings are those
    of :class:`NUTS` (pass them by keyword).
    """

    sampler: str = "nutpie"
    pads: ClassVar[bool] = False  # PyMC compiles its own model, of the cohort's shapes

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampler not in PYMC_SAMPLERS:
            raise FitSettingsError(f"sampler must be one of {PYMC_SAMPLERS}, got {self.sampler!r}.")

    def record(self) -> dict[str, Any]:
        return {"method": self.name, "backend": "pymc", **dataclasses.asdict(self)}

    def run(self, prepared, key, *, seed, progress):
        if prepared.structure.iov:
            raise InputError(
                "The PyMC backend does not handle inter-occasion variability (iov="
                f"{list(prepared.spec.iov)}); fit with the NumPyro methods (tq.NUTS, tq.SVI, "
                "tq.Laplace), which do."
            )
        if prepared.data.segment_design is not None:
            raise InputError(
                "The PyMC backend does not handle covariates that change within a patient "
                "(time-varying covariates in covariate_effects or allometric scaling); fit "
                "with the NumPyro methods (tq.NUTS, tq.SVI, tq.Laplace), which do."
            )
        if prepared.structure.ou_outputs:
            raise InputError(
                "The PyMC backend does not handle autocorrelated residuals "
                "(residual_correlation='ou'); fit with tq.NUTS, tq.SVI or tq.Laplace."
            )
        return run_pymc(prepared, self, seed=seed, progress=progress)


@contextlib.contextmanager
def explained_invalid_start(prepared: PreparedFit, init: Mapping[str, object], method: str):
    """Turn NumPyro's bare "Cannot find valid initial parameters" into a diagnosis.

    The optimisers start every patient at the population median; when the log density is
    not finite there, the patients whose solve fails or whose likelihood is not finite at
    that point are named (computed only on failure, so a good fit pays nothing).
    """
    try:
        yield
    except RuntimeError as err:
        if "Cannot find valid initial parameters" not in str(err):
            raise
        from twin_uq.inference.likelihood import cohort_loglik, likelihood_theta
        from twin_uq.inference.postprocess import residual_from_draw

        data, structure = prepared.data, prepared.structure
        latent = jax.numpy.asarray(np.asarray(data.allometric) + np.asarray(init["mu"]))
        no_beta = jax.numpy.zeros(data.effect_param.shape)
        theta = likelihood_theta(structure.model, latent, no_beta, data)
        residual = residual_from_draw(structure, dict(init), data.error_code.shape[0])
        ll, ok = cohort_loglik(structure.model, structure.settings, theta, data, residual)
        bad_mask = ~np.asarray(ok) | ~np.isfinite(np.asarray(ll).sum(axis=1))
        bad_mask = bad_mask[: prepared.n_real_patients]  # a ghost copies patient 0
        ids = [pid for pid, b in zip(prepared.cohort.ids, bad_mask, strict=True) if b]
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        who = (
            f"patients whose model solve fails or whose likelihood is not finite there: {shown} "
            f"(of {len(bad_mask)})"
            if ids
            else "every patient's likelihood is finite there, so a prior or residual term is not"
        )
        raise UnavailableError(
            f"method={method!r} could not start: the log density is not finite at the starting "
            f"point (every patient at the population median of the priors); {who}. Check the "
            "model's equations for NaN/inf (simulate one patient with tq.simulate) and the "
            "priors' medians."
        ) from err
