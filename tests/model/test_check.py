"""The model interface: what a model must declare, rhs with covariates, and check_model.

Every check is shown to catch the mistake it is for (a model that passes all but one),
and the entry points (load_model, tq.fit, tq.simulate) are shown to refuse a bad
instance with the check's message.
"""

import io
import math
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import twin_uq as tq
import twin_uq.model.check as check_module
from twin_uq.model.load import ModelLoadError, load_model
from twin_uq.simulate import simulate_cohort_outputs, solve_cohort_on_grid
from twin_uq.simulate.fixed_step import cohort_grids
from twin_uq.simulate.schedule import stack_schedules
from twin_uq.testing import ModelCheckError, check_model

CARD = tq.ModelCard(summary="First-order decay.", equations="dA/dt = -k A", time_unit="h")


class Decay(tq.Model):
    """A model that passes every check; the bad ones below each change one thing."""

    name = "decay"
    states = ("amount",)
    parameters = (tq.Parameter("k", "1/h", 0.5, valid_range=(0.01, 5.0)),)
    outputs = (tq.Output("amount", "mg"),)
    covariates = ("WT",)
    covariate_defaults = {"WT": 70.0}  # noqa: RUF012
    card = CARD
    solver = tq.SolverSettings("tsit5", rtol=1e-10, atol=1e-12)

    def rhs(self, t, y, theta, inputs, covariates):
        # Elimination scaled by body weight: needs the covariate in rhs.
        return -theta["k"] * (covariates["WT"] / 70.0) * y

    def observe(self, y, theta):
        return y[:1]


def test_a_good_model_passes_and_is_returned():
    model = Decay()
    assert check_model(model) is model


# ---- what a model must declare --------------------------------------------------------------


def test_model_without_observe_cannot_be_instantiated_and_says_what_to_write():
    class NoObserve(tq.Model):
        name = "no_observe"
        states = ("depot", "central")
        parameters = (tq.Parameter("k", "1/h", 0.5),)
        outputs = (tq.Output("concentration", "mg/L"),)
        card = CARD

        def rhs(self, t, y, theta, inputs, covariates):
            return -theta["k"] * y

    with pytest.raises(TypeError) as err:
        NoObserve()
    text = str(err.value)
    assert "'NoObserve'" in text
    assert "does not define observe(self, y, theta)" in text
    assert "('concentration',)" in text  # which outputs it must return
    assert "no default" in text


def test_model_without_rhs_or_linear_system_cannot_be_instantiated():
    class NoDynamics(tq.Model):
        name = "no_dynamics"
        states = ("amount",)
        parameters = (tq.Parameter("k", "1/h", 0.5),)
        outputs = (tq.Output("amount", "mg"),)
        card = CARD

        def observe(self, y, theta):
            return y[:1]

    with pytest.raises(TypeError, match=r"neither rhs\(self, t, y, theta, inputs, covariates\)"):
        NoDynamics()


def test_model_without_required_attributes_names_them():
    class Bare(tq.Model):
        def rhs(self, t, y, theta, inputs, covariates):
            return y

        def observe(self, y, theta):
            return y

    with pytest.raises(
        TypeError, match=r"lacks required attribute\(s\) name, states, parameters, outputs, card"
    ):
        Bare()


def test_model_file_without_observe_is_a_load_error_naming_the_file(tmp_path):
    path = tmp_path / "no_observe.py"
    path.write_text(
        "import twin_uq as tq\n\n"
        "class Decay(tq.Model):\n"
        "    name = 'decay_file'\n"
        "    states = ('amount',)\n"
        "    parameters = (tq.Parameter('k', '1/h', 0.5),)\n"
        "    outputs = (tq.Output('amount', 'mg'),)\n"
        "    card = tq.ModelCard('decay', 'dA/dt = -k A', 'h')\n\n"
        "    def rhs(self, t, y, theta, inputs, covariates):\n"
        "        return -theta['k'] * y\n"
    )
    with pytest.raises(ModelLoadError, match=rf"Model in {path}: .*does not define observe"):
        load_model(path)


def test_optional_hooks_are_declared_on_the_base_class():
    model = Decay()
    assert not model.is_linear and not model.has_transition
    with pytest.raises(NotImplementedError, match="no closed-form transition"):
        model.transition({"k": jnp.asarray(0.5)}, jnp.asarray(1.0))
    with pytest.raises(NotImplementedError, match="no linear_system"):
        model.linear_system({"k": jnp.asarray(0.5)})
    assert model._source_path is None
    oral = tq.load_model("one_compartment_oral")
    assert oral.is_linear and oral.has_transition


# ---- rhs receives the covariates ------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        tq.SolverSettings("tsit5", rtol=1e-10, atol=1e-12),
        tq.SolverSettings("rk4", fixed_step=0.01),
    ],
    ids=["adaptive", "fixed_step"],
)
def test_rhs_sees_the_patients_covariates(settings):
    # dA/dt = -k·WT/70·A, A(0) = 100: A(t) = 100·exp(-k·WT/70·t), different per weight.
    times = np.array([0.5, 1.0, 2.0, 4.0])
    schedule = tq.Schedule.build([tq.Bolus(0.0, 100.0)])
    for weight in (50.0, 70.0, 110.0):
        traj = tq.simulate(
            Decay(), {"k": 0.5}, schedule, times, covariates={"WT": weight}, settings=settings
        )
        exact = 100.0 * np.exp(-0.5 * weight / 70.0 * times)
        # Tsit5 at rtol 1e-10; RK4 at h = 0.01 has a global error ~(k h)^4 / 120 per unit time.
        np.testing.assert_allclose(np.asarray(traj.outputs)[:, 0], exact, rtol=1e-8)


def test_rhs_sees_the_covariates_in_the_cohort_solves():
    # The vmap-ed cohort solve and the cohort-wide fixed-step scan (patients on the last axis).
    weights = np.array([50.0, 70.0, 110.0])
    times = np.tile([0.5, 1.0, 2.0, 4.0], (3, 1))
    schedules = stack_schedules([tq.Schedule.build([tq.Bolus(0.0, 100.0)])] * 3)
    settings = tq.SolverSettings("rk4", fixed_step=0.01).covering(times)
    theta, model = np.full((3, 1), 0.5), Decay()
    exact = 100.0 * np.exp(-0.5 * weights[:, None] / 70.0 * times)
    _, outputs, ok = simulate_cohort_outputs(
        model, theta, weights[:, None], schedules, times, settings
    )
    assert bool(np.all(ok))
    np.testing.assert_allclose(np.asarray(outputs)[..., 0], exact, rtol=1e-8)
    grids = cohort_grids(model, settings, SimpleNamespace(schedule=schedules, obs_time=times))
    _, outputs, ok = solve_cohort_on_grid(model, theta, weights[:, None], grids)
    assert bool(np.all(ok))
    np.testing.assert_allclose(np.asarray(outputs)[..., 0], exact, rtol=1e-8)


def test_old_four_argument_rhs_is_wrapped_with_a_warning():
    with pytest.warns(FutureWarning, match=r"rhs\(self, t, y, theta, inputs, covariates\)"):

        class OldDecay(tq.Model):
            name = "old_decay"
            states = ("amount",)
            parameters = (tq.Parameter("k", "1/h", 0.5),)
            outputs = (tq.Output("amount", "mg"),)
            card = CARD
            solver = tq.SolverSettings("tsit5", rtol=1e-10, atol=1e-12)

            def rhs(self, t, y, theta, inputs):
                return -theta["k"] * y

            def observe(self, y, theta):
                return y[:1]

    class NewDecay(OldDecay):
        name = "new_decay"

        def rhs(self, t, y, theta, inputs, covariates):
            return -theta["k"] * y

    schedule = tq.Schedule.build([tq.Bolus(0.0, 100.0)])
    old = tq.simulate(OldDecay(), {"k": 0.5}, schedule, [1.0, 2.0])
    new = tq.simulate(NewDecay(), {"k": 0.5}, schedule, [1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(old.outputs), np.asarray(new.outputs))


def test_new_rhs_signature_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Quiet(Decay):
            name = "quiet"

            def rhs(self, t, y, theta, inputs, covariates):
                return -theta["k"] * y


def test_rhs_with_too_few_arguments_fails_at_class_definition():
    with pytest.raises(
        TypeError,
        match=r"takes 2 argument\(s\) after self; write rhs\(self, t, y, theta, inputs, covariates\)",
    ):

        class Wrong(Decay):
            def rhs(self, t, y):
                return -y


# ---- check_model finds each mistake ---------------------------------------------------------


def variant(**attributes):
    """A subclass of Decay with the given attributes (methods or declarations) replaced."""
    return type("Variant", (Decay,), {"name": "variant", **attributes})()


BAD = {
    "undeclared covariate": (
        {"rhs": lambda self, t, y, theta, inputs, covariates: -theta["k"] * covariates["AGE"] * y},
        r"rhs\(\) uses covariate 'AGE', which the model does not declare; declared covariates: 'WT'",
    ),
    "undeclared signal": (
        {"rhs": lambda self, t, y, theta, inputs, covariates: -theta["k"] * inputs["insulin"] * y},
        r"rhs\(\) uses signal 'insulin', which the model does not declare",
    ),
    "rhs shape": (
        {"rhs": lambda self, t, y, theta, inputs, covariates: jnp.concatenate([y, y])},
        r"rhs\(\) returns shape \(2,\), expected \(1,\): one value per state \('amount',\)",
    ),
    "observe shape": (
        {"observe": lambda self, y, theta: jnp.stack([y[0], y[0]])},
        r"observe\(\) returns shape \(2,\), expected \(1,\)",
    ),
    "rhs not finite": (
        {"rhs": lambda self, t, y, theta, inputs, covariates: -theta["k"] * jnp.log(y)},
        r"rhs\(\) is not finite at t = 0, y = y0\(\) and the typical parameter values",
    ),
    "parameter unit": (
        {"parameters": (tq.Parameter("k", "", 0.5),)},
        r"parameter 'k' has no unit",
    ),
    "output unit": (
        {"outputs": (tq.Output("amount", " "),)},
        r"output 'amount' has no unit",
    ),
    "typical outside range": (
        {"parameters": (tq.Parameter("k", "1/h", 0.5, valid_range=(1.0, 5.0)),)},
        r"parameter 'k': typical value 0.5 is not inside valid_range \(1.0, 5.0\)",
    ),
    "infinite prior": (
        {"parameters": (tq.Parameter("k", "1/h", 0.5, prior_sd=math.inf),)},
        r"parameter 'k': prior_sd and bsv_prior_scale must be finite and > 0",
    ),
    "duplicate parameter": (
        {"parameters": (tq.Parameter("k", "1/h", 0.5), tq.Parameter("k", "1/h", 1.0))},
        r"declares a parameter name twice: \('k', 'k'\)",
    ),
    "duplicate state": (
        {"states": ("amount", "amount")},
        r"declares the name\(s\) \['amount'\] twice in states",
    ),
    "no parameters": ({"parameters": ()}, r"declares no parameters"),
    "states as a string": ({"states": "amount"}, r"states must be a tuple of names"),
    "error model": (
        {"outputs": (tq.Output("amount", "mg", error="poisson"),)},
        r"output 'amount': error 'poisson' is not one of",
    ),
    "clinical range": (
        {"outputs": (tq.Output("amount", "mg", clinical_range=(5.0, 1.0)),)},
        r"clinical_range \(5.0, 1.0\) is not \(low, high\)",
    ),
    "time unit": (
        {"card": tq.ModelCard(summary="s", equations="e", time_unit="")},
        r"card.time_unit is empty",
    ),
    "allometric covariate": (
        {"allometric": (tq.Allometric("k", "HT", 0.75, 170.0),)},
        r"allometric effect on 'k' uses covariate 'HT', which is not in covariates \('WT',\)",
    ),
    "allometric parameter": (
        {"allometric": (tq.Allometric("CL", "WT", 0.75, 70.0),)},
        r"allometric effect on unknown parameter 'CL'",
    ),
    "allometric on a logit parameter": (
        {
            "parameters": (tq.Parameter("k", "1/h", 0.5, scale="logit"),),
            "allometric": (tq.Allometric("k", "WT", 0.75, 70.0),),
        },
        r"allometric effect on 'k', a logit-normal parameter \(a fraction in \(0, 1\)\)",
    ),
    "covariate default": (
        {"covariate_defaults": {"AGE": 40.0}},
        r"covariate_defaults names 'AGE', which is not in covariates \('WT',\)",
    ),
    "dose compartment": ({"default_dose_cmt": 2}, r"default_dose_cmt=2 outside 1..1"),
    "exact without linear system": (
        {"solver": tq.SolverSettings("exact")},
        r"solver method 'exact' needs linear_system\(\)",
    ),
    "transition without linear system": (
        {"transition": lambda self, theta, dt: (jnp.eye(1), jnp.eye(1))},
        r"defines transition\(\) but no linear_system\(\)",
    ),
    "rhs disagrees with linear_system": (
        {"linear_system": lambda self, theta: -2.0 * theta["k"] * jnp.eye(1)},
        r"rhs\(\) disagrees with linear_system\(\) @ y",
    ),
    "transition disagrees with expm": (
        {
            "rhs": tq.Model.rhs,
            "linear_system": lambda self, theta: -theta["k"] * jnp.eye(1),
            # Phi right, Psi the first-order approximation dt·I: wrong at dt = 1.
            "transition": lambda self, theta, dt: (
                jnp.exp(-theta["k"] * dt) * jnp.eye(1),
                dt * jnp.eye(1),
            ),
        },
        r"transition\(\) Psi at dt = 1 h disagrees with the matrix exponential",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_model_names_the_model_and_the_mistake(case):
    attributes, expected = BAD[case]
    model = variant(**attributes)
    with pytest.raises(ModelCheckError) as err:
        check_model(model)
    text = str(err.value)
    assert text.startswith("Model 'variant' (") and "Variant)" in text
    assert re.search(expected, text), text


def test_a_correct_closed_form_transition_passes():
    model = variant(
        rhs=tq.Model.rhs,
        linear_system=lambda self, theta: -theta["k"] * jnp.eye(1),
        transition=lambda self, theta, dt: (
            jnp.exp(-theta["k"] * dt) * jnp.eye(1),
            -jnp.expm1(-theta["k"] * dt) / theta["k"] * jnp.eye(1),
        ),
    )
    assert check_model(model) is model


def test_check_model_refuses_what_is_not_a_model():
    with pytest.raises(ModelCheckError, match=r"needs a twin_uq\.Model instance; got str"):
        check_model("one_compartment_oral")


# ---- the entry points run the checks on instances -------------------------------------------

COHORT = "ID,TIME,DV,AMT,EVID,WT\nA,0,.,100,1,70\nA,1,5.0,.,0,70\nB,0,.,100,1,80\nB,2,3.0,.,0,80\n"
UNDECLARED = BAD["undeclared covariate"]


def test_fit_refuses_a_bad_instance_with_the_checks_message():
    cohort = tq.read_cohort(pd.read_csv(io.StringIO(COHORT), na_values="."))
    with pytest.raises(ModelCheckError, match=UNDECLARED[1]):
        tq.fit(variant(**UNDECLARED[0]), cohort)


def test_simulate_refuses_a_bad_instance_and_a_bad_class():
    schedule = tq.Schedule.build([tq.Bolus(0.0, 100.0)])
    with pytest.raises(ModelCheckError, match=UNDECLARED[1]):
        tq.simulate(variant(**UNDECLARED[0]), {"k": 0.5}, schedule, [1.0])
    with pytest.raises(ModelCheckError, match=UNDECLARED[1]):
        load_model(type(variant(**UNDECLARED[0])))


def test_entry_points_check_each_instance_once(monkeypatch):
    calls = []
    real = check_module.check_model
    monkeypatch.setattr(check_module, "check_model", lambda m: calls.append(m) or real(m))
    model, other = Decay(), Decay()
    schedule = tq.Schedule.build([tq.Bolus(0.0, 100.0)])
    for _ in range(2):
        tq.simulate(model, {"k": 0.5}, schedule, [1.0])
        assert load_model(model) is model
    assert len(calls) == 1 and calls[0] is model
    load_model(other)  # another instance is checked on its own
    assert len(calls) == 2 and calls[1] is other


def test_every_library_model_has_tests_that_call_check_model():
    # A new model in models/ comes with tests in tests/models/ running the same checks: its
    # own test_<name>.py, or a file that tests a family of models (e.g. the lag/F variants)
    # naming it and calling check_model on it.
    repo = Path(__file__).resolve().parents[2]
    test_files = {
        p.name: p.read_text(encoding="utf-8") for p in (repo / "tests" / "models").glob("test_*.py")
    }
    for path in sorted((repo / "models").glob("[!_]*.py")):
        own = test_files.get(f"test_{path.stem}.py")
        covering = [
            name
            for name, text in test_files.items()
            if "check_model(model)" in text
            and (text is own or f'"{path.stem}"' in text)
        ]
        assert covering, (
            f"{path.name} has no tests/models/test_{path.stem}.py (nor a test file that names "
            f'"{path.stem}" and calls check_model(model))'
        )
