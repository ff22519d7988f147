"""The checks every model passes before twin_uq uses it: declaration and functions.

:func:`check_model` is public as :func:`twin_uq.testing.check_model`, so that a model's
author, the library's own tests (``tests/models/``) and the package itself run the same
checks. :func:`twin_uq.load_model` runs them on every model it returns — a file, a
built-in name, a class or an instance — once per model instance, and ``tq.fit``,
``tq.simulate`` and the other entry points go through it, so a model that fails them is
refused before anything is compiled, with the model and the problem named.

What is checked
---------------
Declaration: a non-empty ``name``; unique, non-empty state, parameter, output, covariate
and signal names; at least one parameter and one output; units for every parameter and
output and a time unit in the card; finite positive prior scales; a typical value inside
``valid_range``; known residual error models and ordered clinical ranges; covariate
defaults and allometric effects that refer to declared names (and log-normal parameters
only); ``default_dose_cmt`` a state; dose parameters declared for states, naming declared
parameters, one role each, a lag whose valid range is non-negative and a bioavailability
with typical value in ``(0, 1]``; ``method="exact"`` and ``transition`` only for linear
models.

Functions, at the typical parameter values and the covariate defaults (1.0 where a
covariate has none): ``y0``, ``rhs``, ``observe`` (and ``linear_system``, ``transition``)
return arrays of the declared shapes and use only declared parameters, covariates and
signals; ``y0`` and ``rhs`` at ``t = 0``, ``y = y0`` and all signals 0 are finite; a linear
model's ``rhs`` agrees with ``linear_system``, and a closed-form ``transition`` with the
matrix exponential, to within ``sqrt(eps)`` of the floating-point type.

These checks see the model alone. Whether it describes a cohort (a lag time it lacks, a
time unit that is not the data's) is checked from the data by ``tq.check_data(model,
cohort)`` (``twin-uq check``), which every fit runs in its pre-fit check
(:mod:`twin_uq.inference.data_checks`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from twin_uq.model.base import (
    DoseParameters,
    Model,
    ModelCard,
    Output,
    Parameter,
    SolverSettings,
)
from twin_uq.model.errors import ModelCheckError

__all__ = ["check_model", "ensure_checked"]

_ERROR_MODELS = ("additive", "proportional", "combined", "lognormal", "student_t")


def check_model(model: Model) -> Model:
    """Check a model's declaration and functions; return it unchanged if all is well.

    Always runs every check (see the module docstring for the list); the entry points of
    the package call :func:`ensure_checked`, which runs them once per model instance.

    Parameters
    ----------
    model
        A :class:`twin_uq.Model` instance.

    Raises
    ------
    ModelCheckError
        With the model (its file, or its name and class) and what is wrong, e.g.
        ``Model 'decay' (my_models.Decay): rhs() returns shape (2,), expected (1,): one
        value per state ('amount',).``
    """
    if not isinstance(model, Model):
        raise ModelCheckError(
            f"check_model needs a twin_uq.Model instance; got {type(model).__name__} "
            f"({model!r:.80})."
        )
    where = _label(model)
    _check_declaration(model, where)
    _check_functions(model, where)
    return model


def ensure_checked(model: Model) -> Model:
    """:func:`check_model` once per model instance (remembered on the instance)."""
    if not vars(model).get("_checks_passed", False):
        check_model(model)
        # Models are stateless declarations: the flag is the only thing an instance holds
        # besides the file it came from, and it never changes what the model computes.
        model._checks_passed = True  # type: ignore[attr-defined]
    return model


def _label(model: Model) -> str:
    if model._source_path:
        return f"Model in {model._source_path}"
    cls = type(model)
    return f"Model {model.name!r} ({cls.__module__}.{cls.__name__})"


# ---- declaration --------------------------------------------------------------------------


def _names(values: object, kind: str, where: str, *, at_least_one: bool) -> tuple[str, ...]:
    """``values`` as a tuple of unique non-empty strings, or a :class:`ModelCheckError`."""
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise ModelCheckError(
            f"{where}: {kind} must be a tuple of names, e.g. ('a', 'b'); got {values!r}."
        )
    if at_least_one and not values:
        raise ModelCheckError(f"{where} declares no {kind}.")
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise ModelCheckError(
                f"{where}: every name in {kind} must be a non-empty string; got {v!r}."
            )
    twice = sorted({v for v in values if list(values).count(v) > 1})
    if twice:
        raise ModelCheckError(
            f"{where} declares the name(s) {twice} twice in {kind}: {tuple(values)}."
        )
    return tuple(values)


def _finite(x: object) -> bool:
    """A finite real number (numpy scalars included, booleans not)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _positive_finite(x: object) -> bool:
    return _finite(x) and x > 0


def _check_declaration(model: Model, where: str) -> None:
    if not isinstance(model.name, str) or not model.name.strip():
        raise ModelCheckError(f"{where}: name must be a non-empty string; got {model.name!r}.")
    states = _names(model.states, "states", where, at_least_one=True)
    _check_parameters(model, where)
    _check_outputs(model, where)
    card = model.card
    if not isinstance(card, ModelCard):
        raise ModelCheckError(f"{where}: card must be a tq.ModelCard; got {type(card).__name__}.")
    if not card.time_unit or not str(card.time_unit).strip():
        raise ModelCheckError(f"{where}: card.time_unit is empty; write the unit of t (e.g. 'h').")
    covariates = _names(model.covariates, "covariates", where, at_least_one=False)
    _names(model.signals, "signals", where, at_least_one=False)
    for key, value in dict(model.covariate_defaults).items():
        if key not in covariates:
            raise ModelCheckError(
                f"{where}: covariate_defaults names {key!r}, which is not in covariates "
                f"{covariates}."
            )
        if not _finite(value):
            raise ModelCheckError(
                f"{where}: covariate_defaults[{key!r}] must be a finite number; got {value!r}."
            )
    names = model.parameter_names
    for allo in model.allometric:
        if allo.parameter not in names:
            raise ModelCheckError(
                f"{where}: allometric effect on unknown parameter {allo.parameter!r}."
            )
        if allo.covariate not in covariates:
            raise ModelCheckError(
                f"{where}: allometric effect on {allo.parameter!r} uses covariate "
                f"{allo.covariate!r}, which is not in covariates {covariates}."
            )
        if model.parameter(allo.parameter).scale != "log":
            raise ModelCheckError(
                f"{where}: allometric effect on {allo.parameter!r}, a logit-normal parameter "
                "(a fraction in (0, 1)): a power law of a covariate would push it past 1. "
                "Estimate a covariate effect on the logit scale instead "
                f"(PopulationModel(covariate_effects={{{allo.parameter!r}: [...]}}))."
            )
        if not _finite(allo.exponent) or not _positive_finite(allo.reference):
            raise ModelCheckError(
                f"{where}: allometric effect on {allo.parameter!r} needs a finite exponent and a "
                f"reference > 0; got exponent={allo.exponent!r}, reference={allo.reference!r}."
            )
    cmt = model.default_dose_cmt
    if not (isinstance(cmt, numbers.Integral) and 1 <= cmt <= len(states)):
        raise ModelCheckError(
            f"{where}: default_dose_cmt={model.default_dose_cmt} outside 1..{len(states)}."
        )
    bad_inf = [
        c
        for c in model.infusion_compartments
        if not (isinstance(c, numbers.Integral) and 1 <= c <= len(states))
    ]
    if bad_inf:
        raise ModelCheckError(
            f"{where}: infusion_compartments {bad_inf} outside 1..{len(states)} (1-based "
            "compartments that receive zero-order inputs by design)."
        )
    _check_dose_parameters(model, where)
    solver = model.solver
    if not isinstance(solver, SolverSettings):
        raise ModelCheckError(f"{where}: solver must be a tq.SolverSettings; got {solver!r}.")
    if solver.method == "exact" and not model.is_linear:
        raise ModelCheckError(
            f"{where}: solver method 'exact' needs linear_system(); define it or use an ODE "
            "solver ('tsit5', 'dopri5', 'kvaerno5', 'rk4')."
        )
    if model.has_transition and not model.is_linear:
        raise ModelCheckError(
            f"{where} defines transition() but no linear_system(); the closed form replaces "
            "the matrix exponential of a linear model only."
        )


def _check_dose_parameters(model: Model, where: str) -> None:
    declared = model.dose_parameters
    if not hasattr(declared, "items"):
        raise ModelCheckError(
            f"{where}: dose_parameters must be a mapping compartment -> tq.DoseParameters; "
            f"got {declared!r}."
        )
    n_states = len(model.states)
    for cmt, dp in declared.items():
        if (
            isinstance(cmt, bool)
            or not isinstance(cmt, numbers.Integral)
            or not 1 <= cmt <= n_states
        ):
            raise ModelCheckError(
                f"{where}: dose_parameters key {cmt!r} is not a compartment 1..{n_states} "
                f"(1-based, like NONMEM's CMT)."
            )
        if not isinstance(dp, DoseParameters):
            raise ModelCheckError(
                f"{where}: dose_parameters[{cmt}] must be a tq.DoseParameters; got {dp!r}."
            )
        roles = dp.names()
        names = list(roles.values())
        if len(set(names)) != len(names):
            raise ModelCheckError(
                f"{where}: dose_parameters[{cmt}] uses one parameter for two roles: {roles}."
            )
        for role, name in roles.items():
            what = f"{where}: dose_parameters[{cmt}].{role}"
            if name not in model.parameter_names:
                raise ModelCheckError(
                    f"{what} names {name!r}, which is not a parameter of the model "
                    f"{model.parameter_names}; add it with tq.with_dose_parameters."
                )
            p = model.parameter(name)
            if role == "lag" and not p.valid_range[0] >= 0:
                raise ModelCheckError(
                    f"{what}: a lag time is >= 0; {name!r} has valid_range {p.valid_range}."
                )
            if role == "bioavailability" and not 0 < p.typical <= 1:
                raise ModelCheckError(
                    f"{what}: a bioavailability is a fraction in (0, 1]; {name!r} has typical "
                    f"value {p.typical}."
                )


def _check_parameters(model: Model, where: str) -> None:
    params = model.parameters
    if not isinstance(params, tuple | list) or not params:
        raise ModelCheckError(
            f"{where} declares no parameters; a model needs at least one tq.Parameter to fit "
            "(parameters = (tq.Parameter(...), ...))."
        )
    for p in params:
        if not isinstance(p, Parameter):
            raise ModelCheckError(f"{where}: parameters must be tq.Parameter objects; got {p!r}.")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ModelCheckError(f"{where} declares a parameter name twice: {tuple(names)}.")
    for p in params:
        what = f"{where}: parameter {p.name!r}"
        if not p.unit or not str(p.unit).strip():
            raise ModelCheckError(
                f"{what} has no unit; write one (e.g. 'L/h', '1' if dimensionless)."
            )
        if not (_positive_finite(p.prior_sd) and _positive_finite(p.bsv_prior_scale)):
            raise ModelCheckError(
                f"{what}: prior_sd and bsv_prior_scale must be finite and > 0; got "
                f"{p.prior_sd!r}, {p.bsv_prior_scale!r}."
            )
        low, high = p.valid_range
        if not (low < high and low <= p.typical <= high):
            raise ModelCheckError(
                f"{what}: typical value {p.typical} is not inside valid_range {p.valid_range}."
            )


def _check_outputs(model: Model, where: str) -> None:
    outputs = model.outputs
    if not isinstance(outputs, tuple | list) or not outputs:
        raise ModelCheckError(f"{where} declares no outputs; write outputs = (tq.Output(...),).")
    for o in outputs:
        if not isinstance(o, Output):
            raise ModelCheckError(f"{where}: outputs must be tq.Output objects; got {o!r}.")
    _names([o.name for o in outputs], "outputs", where, at_least_one=True)
    for o in outputs:
        what = f"{where}: output {o.name!r}"
        if not o.unit or not str(o.unit).strip():
            raise ModelCheckError(
                f"{what} has no unit; write one (e.g. 'mg/L', '1' if dimensionless)."
            )
        if o.error not in _ERROR_MODELS:
            raise ModelCheckError(f"{what}: error {o.error!r} is not one of {_ERROR_MODELS}.")
        if o.clinical_range is not None and not o.clinical_range[0] < o.clinical_range[1]:
            raise ModelCheckError(f"{what}: clinical_range {o.clinical_range} is not (low, high).")
        if len(o.sigma_prior_scale) != 2 or not all(map(_positive_finite, o.sigma_prior_scale)):
            raise ModelCheckError(
                f"{what}: sigma_prior_scale must be two finite numbers > 0 (additive, "
                f"proportional); got {o.sigma_prior_scale!r}."
            )


# ---- functions ----------------------------------------------------------------------------


class _Declared(dict):
    """A ``theta`` / ``covariates`` / ``inputs`` dict whose missing keys name the declaration."""

    def __init__(self, values: dict, kind: str, where: str) -> None:
        super().__init__(values)
        self.kind = kind
        self.where = where

    def __missing__(self, key: object) -> None:
        raise ModelCheckError(
            f"{self.where} uses {self.kind} {key!r}, which the model does not declare; "
            f"declared {self.kind}s: {', '.join(map(repr, self)) or '(none)'}."
        )


def _check_functions(model: Model, where: str) -> None:
    """Trace ``y0``, ``rhs``, ``observe`` (and the linear hooks), then evaluate them once.

    Catches, before a fit and with the model named, what would otherwise surface as a JAX
    shape error or a bare ``KeyError`` deep inside one: a parameter, covariate or signal
    that is used but not declared, and functions returning arrays of the wrong shape
    (abstract tracing, :func:`jax.eval_shape`); then a right-hand side that is not finite
    at the model's own initial state (one concrete evaluation of a few small functions).
    """
    import jax
    import jax.numpy as jnp

    n_states, n_outputs = len(model.states), len(model.outputs)
    typical = jnp.asarray([p.typical for p in model.parameters], dtype=float)
    covs = jnp.asarray(
        [float(model.covariate_defaults.get(c, 1.0)) for c in model.covariates], dtype=float
    )

    def declared(values: dict, kind: str, fn: str) -> _Declared:
        return _Declared(values, kind, f"{where}: {fn}()")

    def y0(vec, cov):
        th = declared(model.theta_dict(vec), "parameter", "y0")
        c = declared(dict(zip(model.covariates, cov, strict=True)), "covariate", "y0")
        return jnp.asarray(model.y0(th, c))

    def rhs(vec, cov, y):
        th = declared(model.theta_dict(vec), "parameter", "rhs")
        c = declared(dict(zip(model.covariates, cov, strict=True)), "covariate", "rhs")
        inputs = declared({s: jnp.zeros(()) for s in model.signals}, "signal", "rhs")
        return jnp.asarray(model.rhs(jnp.zeros(()), y, th, inputs, c))

    def observe(vec, y):
        return jnp.asarray(
            model.observe(y, declared(model.theta_dict(vec), "parameter", "observe"))
        )

    def linear(vec):
        return jnp.asarray(
            model.linear_system(declared(model.theta_dict(vec), "parameter", "linear_system"))
        )

    def transition(vec, dt):
        phi, psi = model.transition(declared(model.theta_dict(vec), "parameter", "transition"), dt)
        return jnp.asarray(phi), jnp.asarray(psi)

    per_state = f"one value per state {model.states}"
    y = jnp.ones(n_states)
    _traced(where, "y0", (n_states,), per_state, y0, typical, covs)
    _traced(where, "rhs", (n_states,), per_state, rhs, typical, covs, y)
    _traced(
        where,
        "observe",
        (n_outputs,),
        f"one value per output {model.output_names}",
        observe,
        typical,
        y,
    )
    square = (n_states, n_states)
    if model.is_linear:
        _traced(where, "linear_system", square, "a states x states matrix", linear, typical)
    if model.has_transition:
        _traced(
            where,
            "transition",
            (square, square),
            "(Phi, Psi), two states x states matrices",
            transition,
            typical,
            jnp.ones(()),
        )

    # Concrete values at the typical parameters, in one compiled call (evaluating op by op
    # compiled each primitive separately: seconds, against a fraction of one here).
    linear_rhs = model.is_linear and type(model).rhs is not Model.rhs
    probe = jnp.arange(1.0, n_states + 1.0)

    @jax.jit
    def values(vec, cov):
        start = y0(vec, cov)
        out = {"y0": start, "rhs": rhs(vec, cov, start)}
        if model.is_linear:
            out["A"] = linear(vec)
        if linear_rhs:
            out["rhs_probe"] = rhs(vec, cov, probe)
        if model.has_transition:
            out["Phi"], out["Psi"] = transition(vec, jnp.ones((), vec.dtype))
        return out

    got = {k: np.asarray(v) for k, v in values(typical, covs).items()}
    if not np.all(np.isfinite(got["y0"])):
        raise ModelCheckError(
            f"{where}: y0() is not finite at the typical parameter values: {_show(got['y0'])}."
        )
    if not np.all(np.isfinite(got["rhs"])):
        raise ModelCheckError(
            f"{where}: rhs() is not finite at t = 0, y = y0() and the typical parameter values "
            f"(signals 0, covariates at their defaults): dy/dt = {_show(got['rhs'])}."
        )
    tol = math.sqrt(float(np.finfo(typical.dtype).eps))
    if linear_rhs:
        want = got["A"] @ np.asarray(probe)
        if not _close(got["rhs_probe"], want, tol):
            raise ModelCheckError(
                f"{where}: rhs() disagrees with linear_system() @ y at y = {_show(probe)}: "
                f"{_show(got['rhs_probe'])} vs {_show(want)}; the exact and ODE solvers would "
                "differ."
            )
    if model.has_transition:
        n = n_states
        augmented = np.zeros((2 * n, 2 * n))
        augmented[:n, :n], augmented[:n, n:] = got["A"], np.eye(n)
        big = _expm(augmented)  # dt = 1: top-left block Phi, top-right block Psi
        for label, want in (("Phi", big[:n, :n]), ("Psi", big[:n, n:])):
            if not _close(got[label], want, tol):
                raise ModelCheckError(
                    f"{where}: transition() {label} at dt = 1 {model.card.time_unit} disagrees "
                    f"with the matrix exponential of linear_system(): {_show(got[label])} vs "
                    f"{_show(want)}."
                )


def _expm(m: np.ndarray) -> np.ndarray:
    """``exp(m)`` of a small matrix: Taylor series after scaling, then squaring (numpy).

    The reference for a closed-form ``transition``; in numpy so that a check costs no JAX
    compilation for each matrix size. Scaled to norm <= 1/2, 30 terms leave a truncation
    error below 1e-40 relative; rounding over the squarings stays near 1e-14 for the
    small, well-scaled matrices of compartment models.
    """
    norm = float(np.max(np.sum(np.abs(m), axis=1)))
    squarings = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    a = m / 2.0**squarings
    term = result = np.eye(m.shape[0])
    for k in range(1, 30):
        term = term @ a / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def _traced(where: str, name: str, expected, what: str, fn: Callable, *args: object) -> None:
    """Trace ``fn`` abstractly; a :class:`ModelCheckError` if it fails or has the wrong shape."""
    import jax

    try:
        out = jax.eval_shape(fn, *args)
    except ModelCheckError:
        raise
    except Exception as err:
        msg = " ".join(str(err).split())[:300]
        raise ModelCheckError(
            f"{where}: {name}() fails on the typical parameter values: {type(err).__name__}: {msg}"
        ) from err
    shape = jax.tree.map(lambda a: tuple(a.shape), out)
    if shape != expected:
        raise ModelCheckError(
            f"{where}: {name}() returns shape {shape}, expected {expected}: {what}."
        )


def _close(got: np.ndarray, want: np.ndarray, tol: float) -> bool:
    scale = max(1.0, float(np.max(np.abs(want))))
    return bool(np.all(np.abs(got - want) <= tol * scale))


def _show(x: object) -> str:
    return np.array2string(np.asarray(x), precision=4, max_line_width=200, threshold=20)
