"""Add dose parameters (lag, bioavailability, modelled rate or duration) to an existing model.

:func:`with_dose_parameters` derives a new model class from a model: the same states,
dynamics and outputs, with extra parameters appended and declared in
:attr:`~twin_uq.Model.dose_parameters` for one compartment. The new parameters are
ordinary parameters (priors, between-patient variability, covariates); the engine applies
them to the doses (:mod:`twin_uq.simulate.dose_events`), the model's ``rhs`` never sees them.
"""

from __future__ import annotations

import numbers
import types
from dataclasses import replace

from twin_uq.errors import InputError
from twin_uq.model.base import DoseParameters, Model, Parameter

__all__ = ["with_dose_parameters"]

_SUFFIX = {"lag": "lag", "bioavailability": "F", "rate": "R", "duration": "D"}

# Models compare equal when their classes are the same object (Model.__eq__), and compiled
# functions are cached by model: one class per (base class, compartment, parameters) keeps
# repeated calls, and copies unpickled in this process, the same model.
_DERIVED: dict[tuple, type[Model]] = {}


def with_dose_parameters(
    model: Model,
    cmt: int | None = None,
    *,
    lag: Parameter | None = None,
    bioavailability: Parameter | None = None,
    rate: Parameter | None = None,
    duration: Parameter | None = None,
) -> Model:
    """A new model with these dose parameters appended and declared for compartment ``cmt``.

    Parameters
    ----------
    model
        The model to extend (a :class:`twin_uq.Model` instance; a model that already has
        dose parameters may be extended again, for other roles or compartments).
    cmt
        1-based compartment the doses go into; default ``model.default_dose_cmt``.
    lag
        Lag time ``ALAG`` (model time unit), e.g. ``tq.Parameter("ALAG", "h", 0.5)``.
    bioavailability
        Fraction ``F`` in ``(0, 1]``, e.g. ``tq.Parameter("F", "1", 0.8, valid_range=(0, 1))``.
    rate
        Modelled infusion rate ``R`` (amount / time) for ``RATE = -1`` records.
    duration
        Modelled infusion duration ``D`` (time) for ``RATE = -2`` records.

    Returns
    -------
    Model
        An instance of a subclass named like ``"one_compartment_oral+lag+F"`` (``"@k"``
        appended when ``cmt`` is not the default dose compartment), with the parameters
        appended in the order lag, bioavailability, rate, duration. It pickles as this call.

    Raises
    ------
    InputError
        No parameter given, a name the model already uses, a compartment outside the
        states, a role already declared for ``cmt``, or an ``F`` typical value above 1.
    """
    if isinstance(model, type) and issubclass(model, Model):
        model = model()
    if not isinstance(model, Model):
        raise InputError(f"with_dose_parameters needs a twin_uq.Model; got {type(model).__name__}.")
    given = {
        role: p
        for role, p in (
            ("lag", lag),
            ("bioavailability", bioavailability),
            ("rate", rate),
            ("duration", duration),
        )
        if p is not None
    }
    if not given:
        raise InputError(
            "with_dose_parameters: give at least one of lag=, bioavailability=, rate=, "
            "duration= (each a tq.Parameter)."
        )
    n_states = len(model.states)
    cmt = model.default_dose_cmt if cmt is None else cmt
    if isinstance(cmt, bool) or not isinstance(cmt, numbers.Integral) or not 1 <= cmt <= n_states:
        raise InputError(
            f"with_dose_parameters: cmt must be a compartment 1..{n_states} of model "
            f"{model.name!r} {model.states}; got {cmt!r}."
        )
    cmt = int(cmt)
    names = set(model.parameter_names)
    for role, p in given.items():
        if not isinstance(p, Parameter):
            raise InputError(f"with_dose_parameters: {role}= must be a tq.Parameter; got {p!r}.")
        if p.name in names:
            raise InputError(
                f"with_dose_parameters: model {model.name!r} already has a parameter "
                f"{p.name!r}; name the {role} parameter differently."
            )
        names.add(p.name)
    if "bioavailability" in given and not given["bioavailability"].typical <= 1:
        p = given["bioavailability"]
        raise InputError(
            f"with_dose_parameters: bioavailability {p.name!r} is a fraction; its typical "
            f"value must be in (0, 1], got {p.typical}."
        )
    old = dict(model.dose_parameters).get(cmt, DoseParameters())
    twice = [r for r in given if getattr(old, r) is not None]
    if twice:
        raise InputError(
            f"with_dose_parameters: model {model.name!r} already declares {twice} for "
            f"compartment {cmt} ({old})."
        )
    key = (type(model), cmt, tuple(given.items()))
    if key not in _DERIVED:
        _DERIVED[key] = _derive(
            model, cmt, given, replace(old, **{r: p.name for r, p in given.items()})
        )
    return _DERIVED[key]()


def _derive(
    model: Model, cmt: int, given: dict[str, Parameter], declaration: DoseParameters
) -> type[Model]:
    base = type(model)
    suffix = "".join(f"+{_SUFFIX[r]}" for r in given)
    if cmt != model.default_dose_cmt:
        suffix += f"@{cmt}"
    dose_parameters = types.MappingProxyType({**dict(model.dose_parameters), cmt: declaration})
    roles = tuple(given.items())

    def __reduce__(self):  # noqa: N807
        return (_rebuild, (model, cmt, roles))

    attrs = {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__ + suffix,
        "__doc__": (base.__doc__ or "") + f"\n\nWith dose parameters {dict(declaration.names())} "
        f"for compartment {cmt} (twin_uq.with_dose_parameters).",
        "name": model.name + suffix,
        "parameters": tuple(model.parameters) + tuple(given.values()),
        "dose_parameters": dose_parameters,
        "__reduce__": __reduce__,
    }
    return type(base.__name__ + suffix, (base,), attrs)


def _rebuild(model: Model, cmt: int, roles: tuple[tuple[str, Parameter], ...]) -> Model:
    """Unpickle a model made by :func:`with_dose_parameters` (its pickled form is this call)."""
    return with_dose_parameters(model, cmt, **dict(roles))
