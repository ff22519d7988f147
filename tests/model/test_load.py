"""Loading models by name and by path (twin_uq/model/load.py) and their declarations (base.py)."""

import importlib.util
import math
import shutil
import textwrap
import tomllib
from pathlib import Path

import pytest

import twin_uq as tq
from twin_uq.model import load as load_mod
from twin_uq.model.load import ModelLoadError, library_dirs, list_models, load_model

REPO = Path(__file__).resolve().parents[2]
BUILT_IN = sorted(p.stem for p in (REPO / "models").glob("*.py") if not p.stem.startswith("_"))

USER_MODEL = '''
import jax.numpy as jnp
import twin_uq as tq


class Decay(tq.Model):
    name = "decay"
    states = ("amount",)
    parameters = ({params})
    outputs = (tq.Output("amount", "mg"),)
    card = tq.ModelCard(summary="First-order decay.", equations="dA/dt = -k A", time_unit="h")

    def rhs(self, t, y, theta, inputs, covariates):
        return -theta["k"] * y

    def observe(self, y, theta):
        return y[:1]
'''
ONE_PARAM = 'tq.Parameter("k", "1/h", 0.5),'


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_every_library_file_is_found():
    assert set(BUILT_IN) <= set(list_models())
    for name in ("pkpd_emax", "bergman_minimal", "glucose_meal", "windkessel3", "mitchell_schaeffer"):
        assert name in BUILT_IN


@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_model_loads_by_name_with_complete_declaration(name):
    model = load_model(name)
    assert isinstance(model, tq.Model)
    assert model.name == name
    card = model.card
    assert card.summary and "\n" not in card.summary
    assert card.equations and card.time_unit
    assert card.assumptions and card.limitations and card.references
    for p in model.parameters:
        assert p.unit and p.description, p.name
        low, high = p.valid_range
        assert low <= p.typical <= high and math.isfinite(high), p.name
    for o in model.outputs:
        assert o.unit and o.description and o.clinical_range is not None, o.name
    assert set(model.covariate_defaults) <= set(model.covariates)
    for allo in model.allometric:
        assert allo.covariate in model.covariates


def test_list_models_gives_every_summary():
    models = list_models()
    assert list(models) == sorted(models)
    for name, summary in models.items():
        assert summary == load_model(name).card.summary


def test_user_model_from_path(tmp_path):
    path = write(tmp_path, "decay.py", USER_MODEL.format(params=ONE_PARAM))
    model = load_model(path)
    assert model.name == "decay" and model.parameter_names == ("k",)
    again = load_model(str(path))
    assert again.name == model.name
    assert load_mod.model_source_hash(model) == load_mod.model_source_hash(again)


def test_model_instance_or_class_passes_through(tmp_path):
    model = load_model("pkpd_emax")
    assert load_model(model) is model
    assert load_model(type(model)) == model


def test_unknown_name_lists_close_matches():
    with pytest.raises(ModelLoadError, match=r"Did you mean .*bergman_minimal"):
        load_model("bergman_minimall")
    with pytest.raises(ModelLoadError, match=r"Built-in models: .*windkessel3"):
        load_model("no_such_thing_at_all")


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "absent.py")


def test_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "broken.py", "import twin_uq\n\nclass Broken(twin_uq.Model:\n    pass\n")
    with pytest.raises(ModelLoadError, match=r"broken\.py, line 3"):
        load_model(path)


def test_import_error_is_reported(tmp_path):
    path = write(tmp_path, "fails.py", "raise RuntimeError('boom')\n")
    with pytest.raises(ModelLoadError, match="RuntimeError: boom"):
        load_model(path)


def test_file_without_model_class(tmp_path):
    path = write(tmp_path, "empty.py", "x = 1\n")
    with pytest.raises(ModelLoadError, match=r"exactly one twin_uq.Model subclass \(found 0\)"):
        load_model(path)


def test_several_classes_need_model_marker(tmp_path):
    text = USER_MODEL.format(params=ONE_PARAM) + "\n\nclass Decay2(Decay):\n    name = 'decay2'\n"
    with pytest.raises(ModelLoadError, match="found 2"):
        load_model(write(tmp_path, "two.py", text))
    model = load_model(write(tmp_path, "two_marked.py", text + "\nMODEL = Decay2\n"))
    assert model.name == "decay2"


def test_duplicated_parameter_names(tmp_path):
    params = ONE_PARAM + ' tq.Parameter("k", "1/h", 0.7),'
    with pytest.raises(ModelLoadError, match="parameter name twice"):
        load_model(write(tmp_path, "dup.py", USER_MODEL.format(params=params)))


def test_invalid_typical_value_is_refused(tmp_path):
    params = 'tq.Parameter("k", "1/h", -1.0),'
    with pytest.raises(ModelLoadError, match="typical value must be finite and > 0"):
        load_model(write(tmp_path, "neg.py", USER_MODEL.format(params=params)))


def test_wheel_maps_models_to_the_library_folder():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    force = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force["models"] == "twin_uq/_library"
    # In the source tree the models/ folder is what library_dirs() finds.
    assert (REPO / "models").resolve() in [d.resolve() for d in library_dirs()]


def test_library_dirs_in_an_installed_layout(tmp_path):
    # Recreate what the wheel installs: site-packages/twin_uq/{model/load.py,_library/*.py},
    # with no models/ folder next to the package, and load a model by name from it.
    site = tmp_path / "site-packages"
    (site / "twin_uq" / "model").mkdir(parents=True)
    shutil.copy(load_mod.__file__, site / "twin_uq" / "model" / "load.py")
    shutil.copytree(REPO / "models", site / "twin_uq" / "_library")
    spec = importlib.util.spec_from_file_location(
        "installed_twin_uq_load", site / "twin_uq" / "model" / "load.py"
    )
    installed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installed)
    assert installed.library_dirs() == [(site / "twin_uq" / "_library").resolve()]
    model = installed.load_model("bergman_minimal")
    assert model.name == "bergman_minimal"
    assert Path(model._source_path).parent == site / "twin_uq" / "_library"
