"""The declaration a model author writes: states, parameters, outputs, dynamics, model card.

A physiological model is a subclass of :class:`Model` that sets a few class attributes,
implements ``observe`` and ``rhs`` (or, for a linear model, ``linear_system`` instead of
``rhs``), and may override the optional hooks ``y0`` and ``transition``. Everything is
written for **one patient**; the engine ``vmap``s over patients and posterior draws.
A class that leaves out something a model must say cannot be instantiated, and the error
says what to write; :func:`twin_uq.testing.check_model` checks the rest (shapes, names,
units, priors, finite values at the typical parameters), and ``tq.fit`` / ``tq.simulate``
run those checks on every model they are given.

Conventions
-----------
* ``theta`` is a ``dict[str, scalar]`` of *individual* parameters on the natural scale,
  keyed by :attr:`Parameter.name` (covariate effects already applied).
* ``covariates`` is a ``dict[str, scalar]`` of the patient's baseline covariates, keyed by
  the names in :attr:`Model.covariates`; ``rhs`` and ``y0`` receive it.
* ``inputs`` is a ``dict[str, scalar]`` of measured signals at time ``t`` (linearly
  interpolated), keyed by the names in :attr:`Model.signals`. Infusion rates are added to
  ``dy/dt`` by the engine: ``rhs`` never sees doses.
* States are numbered like NONMEM compartments: ``cmt = k`` is ``states[k - 1]``.
"""

from __future__ import annotations

import abc
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import jax.numpy as jnp
from jaxtyping import Array, Float

from twin_uq.errors import InputError
from twin_uq.model.solver_settings import SolverSettings

__all__ = [
    "Allometric",
    "DoseParameters",
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
        Typical (population median) value on the natural scale: > 0, and < 1 when
        ``scale="logit"``.
    description
        Meaning in plain words.
    prior_sd
        SD of the Normal prior on the typical value on the parameter's ``scale``
        (``log(typical)`` or ``logit(typical)``), centred on the declared ``typical``.
    bsv_prior_scale
        Scale of the HalfNormal prior on the between-patient SD on the parameter's
        ``scale`` (unused when ``bsv=False``).
    valid_range
        Physiologically plausible range (natural scale); used in model cards and checks.
        For ``scale="logit"`` the default ``(0, inf)`` becomes ``(0, 1)``.
    scale
        ``"log"`` (default): log-normal, ``theta = exp(z)``. ``"logit"``: logit-normal for a
        fraction in (0, 1) such as a bioavailability, ``theta = 1 / (1 + exp(-z))``; the
        between-patient SD and estimated covariate effects then act on the logit scale,
        and fixed allometric scaling (a power law of the natural value) is refused.
    bsv
        ``True`` (default): each patient has its own value (between-patient variability
        ``omega``). ``False``: a fixed effect shared by all patients (no ``omega``, no
        random effect); covariate effects still apply.
    """

    name: str
    unit: str
    typical: float
    description: str = ""
    prior_sd: float = 1.0
    bsv_prior_scale: float = 0.5
    valid_range: tuple[float, float] = (0.0, math.inf)
    scale: Literal["log", "logit"] = "log"
    bsv: bool = True

    def __post_init__(self) -> None:
        if self.scale not in ("log", "logit"):
            raise InputError(
                f"Parameter {self.name!r}: scale must be 'log' (log-normal, values > 0) or "
                f"'logit' (logit-normal, fractions in (0, 1)); got {self.scale!r}."
            )
        if not isinstance(self.bsv, bool):
            raise InputError(
                f"Parameter {self.name!r}: bsv must be True (between-patient variability) or "
                f"False (one value shared by all patients); got {self.bsv!r}."
            )
        if self.scale == "logit":
            if not (0 < self.typical < 1):
                raise InputError(
                    f"Parameter {self.name!r}: typical value must lie strictly between 0 and 1 "
                    f"(logit-normal parameter, a fraction), got {self.typical}."
                )
            if self.valid_range == (0.0, math.inf):
                # frozen dataclass: the default range of a fraction is (0, 1), not (0, inf).
                object.__setattr__(self, "valid_range", (0.0, 1.0))
            lo, hi = self.valid_range
            if not (0.0 <= lo < hi <= 1.0):
                raise InputError(
                    f"Parameter {self.name!r}: valid_range of a logit-normal parameter must lie "
                    f"within [0, 1]; got {self.valid_range}."
                )
        elif not (self.typical > 0 and math.isfinite(self.typical)):
            raise InputError(
                f"Parameter {self.name!r}: typical value must be finite and > 0 (log-normal "
                f"parameters), got {self.typical}."
            )
        if not self.prior_sd > 0 or not self.bsv_prior_scale > 0:
            raise InputError(f"Parameter {self.name!r}: prior scales must be > 0.")


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
class DoseParameters:
    """Which model parameters act on doses into one compartment (names from ``parameters``).

    Declared per 1-based compartment in :attr:`Model.dose_parameters`, usually through
    :func:`twin_uq.with_dose_parameters`. Their meaning is NONMEM's: a dose record
    ``(AMT, RATE)`` into the compartment enters at ``time + ALAG`` with amount ``F·AMT``;
    ``RATE > 0`` infuses it at ``RATE`` over ``F·AMT / RATE``; ``RATE = -1``
    (:class:`twin_uq.simulate.records.ModelledInfusion` ``by="rate"``) at ``R`` over
    ``F·AMT / R``; ``RATE = -2`` (``by="duration"``) over ``D`` at ``F·AMT / D``. Without a
    declaration ``ALAG = 0`` and ``F = 1``, and ``RATE = -1/-2`` records are refused.

    Parameters
    ----------
    lag
        Absorption lag time ``ALAG`` (model time unit, >= 0).
    bioavailability
        Fraction ``F`` of the amount that enters (typical value in ``(0, 1]``).
    rate
        Infusion rate ``R`` for ``RATE = -1`` records (amount / time, > 0).
    duration
        Infusion duration ``D`` for ``RATE = -2`` records (time, > 0).
    """

    lag: str | None = None
    bioavailability: str | None = None
    rate: str | None = None
    duration: str | None = None

    def names(self) -> dict[str, str]:
        """The declared roles and their parameter names, e.g. ``{"lag": "ALAG"}``."""
        roles = ("lag", "bioavailability", "rate", "duration")
        return {r: getattr(self, r) for r in roles if getattr(self, r) is not None}


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


_REQUIRED_ATTRIBUTES = ("name", "states", "parameters", "outputs", "card")

_RHS_ARGUMENTS = ("t", "y", "theta", "inputs", "covariates")


class Model(abc.ABC):
    """Base class of every physiological model; subclass it and set the class attributes.

    Subclasses are stateless declarations: instances carry no data, so one instance can be
    shared, hashed by name, and used as a static argument of compiled functions.

    A model **must** declare ``name``, ``states``, ``parameters``, ``outputs`` and ``card``
    and implement :meth:`observe` and either :meth:`rhs` or :meth:`linear_system`; a class
    that leaves one out raises ``TypeError`` when instantiated, naming what to write.
    :meth:`y0` and :meth:`transition` are optional hooks whose base-class defaults say
    "zeros" and "not provided".
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
    dose_parameters: ClassVar[Mapping[int, DoseParameters]] = {}
    """Dose parameters (lag, bioavailability, modelled rate/duration) by 1-based compartment."""
    infusion_compartments: ClassVar[tuple[int, ...]] = ()
    """1-based compartments that receive zero-order inputs by design although no output
    observes them (e.g. an insulin pump's basal rate into the subcutaneous depot); the data
    check does not question ``RATE > 0`` records into them as misrouted intravenous doses."""
    solver: ClassVar[SolverSettings] = SolverSettings()
    _source_path: str | None = None
    """The file a model was loaded from (set by :func:`twin_uq.load_model`); ``None`` else."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("rhs")
        if inspect.isfunction(own):
            cls.rhs = _rhs_with_covariates(cls, own)  # type: ignore[method-assign]

    def __new__(cls, *args: object, **kwargs: object) -> Model:
        missing = _missing_declarations(cls)
        if missing:
            raise TypeError(
                f"Model class {cls.__name__!r} cannot be used: " + "; ".join(missing) + "."
            )
        return super().__new__(cls)

    # ---- to implement ---------------------------------------------------------------
    @abc.abstractmethod
    def observe(
        self, y: Float[Array, " n_states"], theta: Mapping[str, Float[Array, ""]]
    ) -> Float[Array, " n_outputs"]:
        """Noise-free value of each output given the state: shape ``(len(outputs),)``.

        Required: there is no default, because no choice of state is right for every model
        (for an oral model the first state is the gut depot, not the plasma level).
        """

    def rhs(
        self,
        t: Float[Array, ""],
        y: Float[Array, " n_states"],
        theta: Mapping[str, Float[Array, ""]],
        inputs: Mapping[str, Float[Array, ""]],
        covariates: Mapping[str, Float[Array, ""]],
    ) -> Float[Array, " n_states"]:
        """Time derivative ``dy/dt`` without doses (the engine adds infusion rates).

        The default, for models that declare :meth:`linear_system`, is ``A @ y``. A model
        written with the earlier four-argument ``rhs(t, y, theta, inputs)`` still works
        (it is wrapped once, when the class is created, with a ``FutureWarning``).

        Parameters
        ----------
        t
            Time (model time unit), scalar.
        y
            State, shape ``(n_states,)``.
        theta
            Individual parameters (natural scale, covariate effects already applied).
        inputs
            Measured signals at ``t`` (linearly interpolated), keyed by :attr:`signals`.
        covariates
            The patient's baseline covariates, keyed by :attr:`covariates` (constant over
            time, e.g. basal insulin or body weight).
        """
        if self.is_linear:
            return self.linear_system(theta) @ y
        raise NotImplementedError(f"Model {self.name!r} must implement rhs().")

    def y0(
        self, theta: Mapping[str, Float[Array, ""]], covariates: Mapping[str, Float[Array, ""]]
    ) -> Float[Array, " n_states"]:
        """State at time 0 before any dose (default: all zeros)."""
        return jnp.zeros(len(self.states))

    def linear_system(self, theta: Mapping[str, Float[Array, ""]]) -> Float[Array, "n n"]:
        """For linear models, the matrix ``A`` with ``dy/dt = A y`` (enables exact solution).

        Optional; the default means "not linear" (:attr:`is_linear` is ``False``).
        """
        raise NotImplementedError(f"Model {self.name!r} declares no linear_system().")

    def transition(
        self, theta: Mapping[str, Float[Array, ""]], dt: Float[Array, ""]
    ) -> tuple[Float[Array, "n n"], Float[Array, "n n"]]:
        """Closed form of ``Φ(dt) = exp(A dt)`` and ``Ψ(dt) = ∫_0^dt exp(A s) ds``.

        Optional, for linear models only: when a model overrides it
        (:attr:`has_transition`), the exact solver uses it in place of the generic matrix
        exponential of :meth:`linear_system`. The default means "not provided".
        """
        raise NotImplementedError(f"Model {self.name!r} declares no closed-form transition().")

    # ---- derived, do not override -----------------------------------------------------
    @property
    def is_linear(self) -> bool:
        """Whether the model declares a linear system (exact solution available)."""
        return type(self).linear_system is not Model.linear_system

    @property
    def has_transition(self) -> bool:
        """Whether the model provides a closed-form :meth:`transition`."""
        return type(self).transition is not Model.transition

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


def _missing_declarations(cls: type[Model]) -> list[str]:
    """What ``cls`` must still declare to be a model, each item saying what to write."""
    missing = []
    absent = [a for a in _REQUIRED_ATTRIBUTES if not hasattr(cls, a)]
    if absent:
        missing.append(
            f"it lacks required attribute(s) {', '.join(absent)} (set them as class "
            "attributes: name = '...', states = ('...',), parameters = (tq.Parameter(...),), "
            "outputs = (tq.Output(...),), card = tq.ModelCard(...))"
        )
    if getattr(cls.observe, "__isabstractmethod__", False):
        outputs = getattr(cls, "outputs", ())
        names = tuple(o.name for o in outputs) if isinstance(outputs, tuple) else ()
        missing.append(
            "it does not define observe(self, y, theta), which returns the noise-free "
            f"outputs {names or '(one value per output)'} from the state vector y, e.g. "
            "'return y[1:2] / theta[\"V\"]' for a concentration in the second state "
            "(there is no default: the first state is the gut depot of an oral model)"
        )
    if cls.rhs is Model.rhs and cls.linear_system is Model.linear_system:
        missing.append(
            "it defines neither rhs(self, t, y, theta, inputs, covariates), which returns "
            "dy/dt, nor linear_system(self, theta), which returns the matrix A of dy/dt = A y"
        )
    return missing


def _rhs_with_covariates(cls: type, rhs: Callable) -> Callable:
    """``rhs`` itself, or a wrapper taking ``covariates`` for an old four-argument ``rhs``.

    Models written before ``rhs`` received the covariates take ``(t, y, theta, inputs)``;
    they are wrapped here, once per class, so that every solver can call one signature.
    """
    params = list(inspect.signature(rhs).parameters.values())[1:]  # without self
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return rhs
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= len(_RHS_ARGUMENTS):
        return rhs
    if len(positional) != len(_RHS_ARGUMENTS) - 1:
        raise TypeError(
            f"{cls.__name__}.rhs takes {len(positional)} argument(s) after self; write "
            f"rhs(self, {', '.join(_RHS_ARGUMENTS)})."
        )
    warnings.warn(
        f"{cls.__name__}.rhs(self, t, y, theta, inputs) is the old signature; rhs now also "
        "receives the patient's covariates: write rhs(self, t, y, theta, inputs, covariates). "
        "The old form is wrapped for now and will stop working in a later release.",
        FutureWarning,  # shown by default: model authors are end users
        stacklevel=4,
    )

    def rhs_taking_covariates(self, t, y, theta, inputs, covariates=None):
        return rhs(self, t, y, theta, inputs)

    rhs_taking_covariates.__name__ = rhs.__name__
    rhs_taking_covariates.__qualname__ = rhs.__qualname__
    rhs_taking_covariates.__doc__ = rhs.__doc__
    rhs_taking_covariates.__module__ = rhs.__module__
    return rhs_taking_covariates
