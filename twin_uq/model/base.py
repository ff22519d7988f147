"""The declaration a model author writes: states, parameters, outputs, dynamics, model card.

A physiological model is a subclass of :class:`Model` that sets a few class attributes and
implements ``rhs`` (and optionally ``y0``, ``observe``, ``linear_system``). Everything is
written for **one patient**; the engine ``vmap``s over patients and posterior draws.

Conventions
-----------
* ``theta`` is a ``dict[str, scalar]`` of *individual* parameters on the natural scale,
  keyed by :attr:`Parameter.name` (covariate effects already applied).
* ``covariates`` is a ``dict[str, scalar]`` of the patient's baseline covariates.
* ``inputs`` is a ``dict[str, scalar]`` of measured signals at time ``t`` (linearly
  interpolated), keyed by the names in :attr:`Model.signals`. Infusion rates are added to
  ``dy/dt`` by the engine: ``rhs`` never sees doses.
* States are numbered like NONMEM compartments: ``cmt = k`` is ``states[k - 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = [
    "Allometric",
    "Model",
    "ModelCard",
    "Output",
    "Parameter",
    "SolverSettings",
]


@dataclass(frozen=True)
class Parameter:
    """One individual parameter of a model.

    Parameters
    ----------
    name
        Identifier used in ``theta`` (e.g. ``"CL"``).
    unit
        Physical unit (e.g. ``"L/h"``).
    typical
        Typical (population median) value on the natural scale, > 0.
    description
        Meaning in plain words.
    prior_sd
        SD of the Normal prior on ``log(typical value)``, centred on ``log(typical)``.
    bsv_prior_scale
        Scale of the HalfNormal prior on the between-patient SD of ``log(theta)``.
    valid_range
        Physiologically plausible range (natural scale); used in model cards and checks.
    """

    name: str
    unit: str
    typical: float
    description: str = ""
    prior_sd: float = 1.0
    bsv_prior_scale: float = 0.5
    valid_range: tuple[float, float] = (0.0, math.inf)

    def __post_init__(self) -> None:
        if not (self.typical > 0 and math.isfinite(self.typical)):
            raise ValueError(
                f"Parameter {self.name!r}: typical value must be finite and > 0 (log-normal "
                f"parameters), got {self.typical}."
            )
        if not self.prior_sd > 0 or not self.bsv_prior_scale > 0:
            raise ValueError(f"Parameter {self.name!r}: prior scales must be > 0.")


@dataclass(frozen=True)
class Output:
    """An observable of the model.

    Parameters
    ----------
    name
        Output name as it appears in the data's ``output`` column (e.g. ``"glucose"``).
    unit
        Unit of the observations.
    description
        Meaning in plain words.
    error
        Default residual error model: ``"additive"``, ``"proportional"``, ``"combined"``,
        ``"lognormal"`` or ``"student_t"``.
    clinical_range
        A clinically meaningful range ``(low, high)`` of the output; predictive intervals are
        judged against its width by the trust assessment.
    sigma_prior_scale
        Scale of the HalfNormal prior(s) of the residual error parameter(s): additive SD in
        output units, proportional SD as a fraction.
    """

    name: str
    unit: str
    description: str = ""
    error: Literal["additive", "proportional", "combined", "lognormal", "student_t"] = "combined"
    clinical_range: tuple[float, float] | None = None
    sigma_prior_scale: tuple[float, float] = (1.0, 0.2)


@dataclass(frozen=True)
class Allometric:
    """Fixed allometric scaling ``theta = theta_typ * (covariate / reference) ** exponent``.

    Parameters
    ----------
    parameter, covariate
        Names of the scaled parameter and the covariate (e.g. ``"CL"``, ``"WT"``).
    exponent
        Fixed exponent (0.75 for clearances, 1.0 for volumes by convention).
    reference
        Reference covariate value (70 kg by convention).
    """

    parameter: str
    covariate: str
    exponent: float
    reference: float


@dataclass(frozen=True)
class SolverSettings:
    """How the engine integrates the model.

    Parameters
    ----------
    method
        ``"tsit5"`` (explicit, non-stiff), ``"dopri5"``, ``"kvaerno5"`` (implicit, stiff)
        — adaptive diffrax solvers —, ``"rk4"`` (classical Runge–Kutta on a fixed grid, see
        :mod:`twin_uq.simulate.fixed_step`) or ``"exact"`` (linear models:
        matrix-exponential superposition, no ODE solver).
    rtol, atol
        Step-size controller tolerances (adaptive methods). For ``"rk4"`` they are the
        tolerances of the adaptive reference solve that checks a fit's fixed-step
        predictions afterwards.
    max_steps
        Step budget per integration segment; exceeding it flags the solve as failed.
    dt0
        Initial step (model time unit); ``None`` lets diffrax choose.
    fixed_step
        ``"rk4"`` only: the largest step of the grid (model time unit). The grid also has a
        point at every observation, dose and signal knot, so no step straddles one.
    horizon
        ``"rk4"`` only: the latest time the grid reaches (model time unit); it fixes the
        number of steps, which compiled code needs to know. twin_uq's entry points set it
        from the times they are asked for (:meth:`covering`); a solve asked for a later
        time fails with ``SolveStatus.beyond_horizon`` instead of stretching the steps.
    precision
        ``"rk4"`` only: the floating-point type of the solve, ``"float64"`` (default) or
        ``"float32"``. Parameters go in and states come out in the caller's type (float64
        in a fit), so the likelihood and its sums stay float64; only the integration runs
        in single precision (100-patient Bergman cohort on CPU: the solve's gradient 1.6x,
        the whole log density's 1.4x and a NUTS step 2.1x cheaper). Its rounding
        (relative ~1e-6 over a few hundred steps) is of the order of RK4's own error at a
        1-minute step, and a fit's check against the float64 adaptive reference measures
        both together. Not for stiff or badly scaled models, where float32 loses the
        small states.
    """

    method: Literal["tsit5", "dopri5", "kvaerno5", "rk4", "exact"] = "tsit5"
    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 4096
    dt0: float | None = None
    fixed_step: float | None = None
    horizon: float | None = None
    precision: Literal["float64", "float32"] = "float64"

    def __post_init__(self) -> None:
        if self.precision not in ("float64", "float32"):
            raise ValueError(
                f"SolverSettings.precision must be 'float64' or 'float32'; got {self.precision!r}."
            )
        if self.precision == "float32" and self.method != "rk4":
            raise ValueError(
                f"precision='float32' applies to method='rk4' only; method={self.method!r} "
                "solves in float64 (adaptive step control and sensitivities need it)."
            )
        if self.method == "rk4":
            if self.fixed_step is None or not self.fixed_step > 0:
                raise ValueError(
                    f"SolverSettings(method='rk4') needs fixed_step > 0 (the largest step, "
                    f"model time unit); got fixed_step={self.fixed_step!r}."
                )
            if self.horizon is not None and not self.horizon >= 0:
                raise ValueError(f"SolverSettings.horizon must be >= 0; got {self.horizon!r}.")
        elif self.fixed_step is not None or self.horizon is not None:
            raise ValueError(
                f"fixed_step and horizon apply to method='rk4' only; method={self.method!r} "
                "chooses its own steps."
            )

    @property
    def is_fixed_step(self) -> bool:
        """Whether the solve runs on a fixed grid (``"rk4"``)."""
        return self.method == "rk4"

    def adaptive_reference(self) -> SolverSettings:
        """An adaptive solver at these tolerances: Tsit5 in place of ``"rk4"``, else self.

        What a fixed-step fit is checked against afterwards and what synthetic cohorts are
        simulated with, so that known-truth data do not share the fit's discretisation.
        """
        if not self.is_fixed_step:
            return self
        return SolverSettings(
            method="tsit5", rtol=self.rtol, atol=self.atol, max_steps=self.max_steps
        )

    def covering(self, *times: object) -> SolverSettings:
        """These settings with a fixed-step horizon reaching the latest of ``times``.

        ``times`` are concrete arrays (numpy, lists, scalars; NaN ignored). The horizon is
        rounded up to a whole number of ``fixed_step`` so that nearby requests share one
        compiled solve, and never shrinks. Adaptive and exact settings are returned as
        they are.
        """
        if not self.is_fixed_step:
            return self
        latest = max(
            (float(np.nanmax(np.asarray(t, dtype=float))) for t in times if np.size(t)),
            default=0.0,
        )
        needed = math.ceil(latest / self.fixed_step - 1e-9) * self.fixed_step
        if self.horizon is not None and self.horizon >= needed:
            return self
        return replace(self, horizon=float(needed))


@dataclass(frozen=True)
class ModelCard:
    """What a user must know before trusting a model.

    Parameters
    ----------
    summary
        One-line description (shown by ``twin-uq models``).
    equations
        The equations in plain text or LaTeX.
    time_unit
        Unit of time (e.g. ``"h"``, ``"min"``).
    assumptions
        Modelling assumptions.
    limitations
        What the model cannot represent (shown in clinician reports).
    references
        Literature sources.
    """

    summary: str
    equations: str
    time_unit: str
    assumptions: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)


class Model:
    """Base class of every physiological model; subclass it and set the class attributes.

    Subclasses are stateless declarations: instances carry no data, so one instance can be
    shared, hashed by name, and used as a static argument of compiled functions.
    """

    name: ClassVar[str]
    states: ClassVar[tuple[str, ...]]
    parameters: ClassVar[tuple[Parameter, ...]]
    outputs: ClassVar[tuple[Output, ...]]
    card: ClassVar[ModelCard]
    default_dose_cmt: ClassVar[int] = 1
    signals: ClassVar[tuple[str, ...]] = ()
    covariates: ClassVar[tuple[str, ...]] = ()
    covariate_defaults: ClassVar[Mapping[str, float]] = {}
    allometric: ClassVar[tuple[Allometric, ...]] = ()
    solver: ClassVar[SolverSettings] = SolverSettings()

    # ---- to implement ---------------------------------------------------------------
    def rhs(
        self,
        t: Float[Array, ""],
        y: Float[Array, " n_states"],
        theta: Mapping[str, Float[Array, ""]],
        inputs: Mapping[str, Float[Array, ""]],
    ) -> Float[Array, " n_states"]:
        """Time derivative ``dy/dt`` without doses (the engine adds infusion rates)."""
        if self.linear_system is not Model.linear_system:
            return self.linear_system(theta) @ y
        raise NotImplementedError(f"Model {self.name!r} must implement rhs().")

    def y0(
        self, theta: Mapping[str, Float[Array, ""]], covariates: Mapping[str, Float[Array, ""]]
    ) -> Float[Array, " n_states"]:
        """State at time 0 before any dose (default: all zeros)."""
        return jnp.zeros(len(self.states))

    def observe(
        self, y: Float[Array, " n_states"], theta: Mapping[str, Float[Array, ""]]
    ) -> Float[Array, " n_outputs"]:
        """Noise-free value of each output given the state (default: the first state)."""
        return y[:1]

    def linear_system(self, theta: Mapping[str, Float[Array, ""]]) -> Float[Array, "n n"]:
        """For linear models, the matrix ``A`` with ``dy/dt = A y`` (enables exact solution)."""
        raise NotImplementedError

    # ---- derived, do not override -----------------------------------------------------
    @property
    def is_linear(self) -> bool:
        """Whether the model declares a linear system (exact solution available)."""
        return type(self).linear_system is not Model.linear_system

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the individual parameters, in declaration order."""
        return tuple(p.name for p in self.parameters)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs, in declaration order."""
        return tuple(o.name for o in self.outputs)

    def parameter(self, name: str) -> Parameter:
        """The :class:`Parameter` called ``name``."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(
            f"Model {self.name!r} has no parameter {name!r}; it has {self.parameter_names}."
        )

    def output_index(self, name: str) -> int:
        """Position of output ``name``."""
        try:
            return self.output_names.index(name)
        except ValueError:
            raise KeyError(
                f"Model {self.name!r} has no output {name!r}; it has {self.output_names}."
            ) from None

    def theta_dict(self, theta_vec: Float[Array, " n_params"]) -> dict[str, Float[Array, ""]]:
        """Map a parameter vector (declaration order) to the ``theta`` dict."""
        return {n: theta_vec[..., k] for k, n in enumerate(self.parameter_names)}

    def __repr__(self) -> str:
        return f"<Model {self.name}: {', '.join(self.parameter_names)} -> {', '.join(self.output_names)}>"

    def __hash__(self) -> int:
        return hash((type(self).__module__, type(self).__qualname__))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)
