"""Dose parameters: DoseParameters declarations, with_dose_parameters and their checks."""

import pickle

import jax.numpy as jnp
import pytest

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.model.check import check_model
from twin_uq.model.errors import ModelCheckError

ALAG = tq.Parameter("ALAG", "h", 0.5, valid_range=(0.0, 24.0))
F = tq.Parameter("F", "1", 0.8, valid_range=(0.0, 1.0))
D = tq.Parameter("D1", "h", 2.0)
R = tq.Parameter("R1", "mg/h", 10.0)


@pytest.fixture(scope="module")
def oral():
    return tq.load_model("one_compartment_oral")


def test_with_dose_parameters_appends_and_declares(oral):
    m = tq.with_dose_parameters(oral, lag=ALAG, bioavailability=F)
    assert m.name == "one_compartment_oral+lag+F"
    assert m.parameter_names == (*oral.parameter_names, "ALAG", "F")
    assert m.dose_parameters == {1: tq.DoseParameters(lag="ALAG", bioavailability="F")}
    assert oral.dose_parameters == {}  # the base model is unchanged
    check_model(m)
    # Same arguments, same model (compiled functions are cached by model).
    assert tq.with_dose_parameters(oral, lag=ALAG, bioavailability=F) == m
    assert hash(tq.with_dose_parameters(oral, lag=ALAG, bioavailability=F)) == hash(m)
    # Extending again, another compartment and role.
    m2 = tq.with_dose_parameters(m, 2, duration=D)
    assert m2.name == "one_compartment_oral+lag+F+D@2"
    assert m2.dose_parameters[2] == tq.DoseParameters(duration="D1")
    assert m2.dose_parameters[1] == m.dose_parameters[1]
    check_model(m2)
    # The dynamics are the base model's.
    theta = m2.theta_dict(jnp.asarray([p.typical for p in m2.parameters]))
    assert jnp.array_equal(m2.linear_system(theta), oral.linear_system(theta))


def test_models_with_dose_parameters_pickle_as_the_call(oral):
    m = tq.with_dose_parameters(tq.with_dose_parameters(oral, lag=ALAG), 2, rate=R)
    back = pickle.loads(pickle.dumps(m))
    assert back == m and back.parameter_names == m.parameter_names


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "at least one of"),
        ({"lag": tq.Parameter("CL", "h", 1.0)}, "already has a parameter 'CL'"),
        ({"cmt": 3, "lag": ALAG}, "compartment 1..2"),
        ({"bioavailability": tq.Parameter("F", "1", 1.5)}, "(0, 1]"),
        ({"lag": "ALAG"}, "must be a tq.Parameter"),
    ],
)
def test_with_dose_parameters_refuses(oral, kwargs, words):
    with pytest.raises(InputError) as err:
        tq.with_dose_parameters(oral, **kwargs)
    assert words in str(err.value)


def test_a_role_is_declared_once_per_compartment(oral):
    m = tq.with_dose_parameters(oral, lag=ALAG)
    with pytest.raises(InputError, match="already declares"):
        tq.with_dose_parameters(m, lag=tq.Parameter("ALAG2", "h", 1.0))


def _declaring(oral, declaration, extra=()):
    cls = type(
        "Declared",
        (type(oral),),
        {"dose_parameters": declaration, "parameters": oral.parameters + tuple(extra)},
    )
    return cls()


@pytest.mark.parametrize(
    ("declaration", "extra", "words"),
    [
        ({1: tq.DoseParameters(lag="ALAG")}, (), "names 'ALAG', which is not a parameter"),
        ({3: tq.DoseParameters(lag="ALAG")}, (ALAG,), "not a compartment 1..2"),
        ({1: {"lag": "ALAG"}}, (ALAG,), "must be a tq.DoseParameters"),
        (
            {1: tq.DoseParameters(lag="ALAG")},
            (tq.Parameter("ALAG", "h", 0.5, valid_range=(-1.0, 2.0)),),
            "lag time is >= 0",
        ),
        (
            {1: tq.DoseParameters(bioavailability="F")},
            (tq.Parameter("F", "1", 1.2),),
            "fraction in (0, 1]",
        ),
        (
            {1: tq.DoseParameters(lag="ALAG", duration="ALAG")},
            (ALAG,),
            "one parameter for two roles",
        ),
    ],
)
def test_check_model_validates_declarations(oral, declaration, extra, words):
    with pytest.raises(ModelCheckError) as err:
        check_model(_declaring(oral, declaration, extra))
    assert words in str(err.value)
