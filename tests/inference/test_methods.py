"""Fit methods as objects: validation, the string shortcuts, identical draws either way."""

import json

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.distributed import TwoStage
from twin_uq.inference.fit import method_from_options
from twin_uq.inference.methods import FitSettingsError


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: tq.NUTS(chains=0), "chains must be a positive integer"),
        (lambda: tq.NUTS(warmup=-1), "warmup must be an integer >= 0"),
        (lambda: tq.NUTS(target_accept=1.0), "target_accept must lie in"),
        (lambda: tq.NUTS(chain_method="threads"), "chain_method must be one of"),
        (lambda: tq.SVI(guide="diag"), "guide must be"),
        (lambda: tq.Laplace(steps=2.5), "steps must be a positive integer"),
        (lambda: tq.PyMC(sampler="stan"), "sampler must be one of"),
        (lambda: tq.PyMC(max_tree_depth=0), "max_tree_depth must be a positive integer"),
        (lambda: tq.PyMC(target_accept=0.0), "target_accept must lie in"),
        (lambda: TwoStage(batch_size=0), "batch_size must be a positive integer"),
        (lambda: TwoStage(warmup=0), "warmup must be a positive integer"),
        (lambda: TwoStage(draws=2.5), "draws must be a positive integer"),
    ],
)
def test_bad_settings_are_refused_when_built(build, message):
    with pytest.raises(FitSettingsError, match=message) as err:
        build()
    assert isinstance(err.value, ValueError) and isinstance(err.value, tq.TwinUQError)


def test_shortcuts_build_the_same_objects():
    assert method_from_options("nuts", chains=2, draws=10) == tq.NUTS(chains=2, draws=10)
    assert method_from_options("svi", svi_steps=50, draws=7) == tq.SVI(steps=50, draws=7)
    assert method_from_options("laplace", learning_rate=0.1) == tq.Laplace(learning_rate=0.1)
    assert method_from_options("nuts", backend="pymc", sampler="pymc") == tq.PyMC(sampler="pymc")
    assert tq.PyMC().sampler == "nutpie"


def test_settings_a_method_does_not_use_are_refused():
    with pytest.raises(FitSettingsError, match="does not use dense_mass"):
        method_from_options("svi", dense_mass=True)
    with pytest.raises(FitSettingsError, match="Unknown method 'hmc'"):
        method_from_options("hmc")


def test_method_object_and_loose_settings_do_not_mix(oral_sim):
    with pytest.raises(FitSettingsError, match="pass chains to it"):
        tq.fit("one_compartment_oral", oral_sim.cohort, method=tq.NUTS(), chains=2)
    model = tq.load_model("one_compartment_oral")
    with pytest.raises(FitSettingsError, match="pass error to it"):
        tq.fit(
            model, oral_sim.cohort, population=tq.PopulationModel(model), error={"x": "additive"}
        )


def test_object_and_shortcut_give_identical_draws(oral_sim):
    """The same seed gives the same fit whichever spelling chose the method."""
    cohort = oral_sim.cohort.select(oral_sim.cohort.ids[:6])
    common = dict(seed=3, progress=False)
    by_words = tq.fit("one_compartment_oral", cohort, chains=2, warmup=60, draws=40, **common)
    model = tq.load_model("one_compartment_oral")
    by_object = tq.fit(
        model,
        cohort,
        population=tq.PopulationModel(model, centering="auto"),
        method=tq.NUTS(chains=2, warmup=60, draws=40),
        **common,
    )
    for name in ("mu", "omega", "theta"):
        np.testing.assert_array_equal(
            by_object.posterior[name].values, by_words.posterior[name].values
        )
    record = json.loads(by_object.idata.attrs["fit_method"])
    assert record == {"method": "nuts", **tq.NUTS(chains=2, warmup=60, draws=40).__dict__}
    assert by_object.idata.attrs["settings"] == by_words.idata.attrs["settings"]
