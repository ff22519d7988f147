"""Identical seeds give bitwise-identical posteriors on the same machine; provenance suffices.

Scope (see docs/guarantees.md): same machine, same package versions, same settings and
seed. Across machines, CPU types, thread counts or versions results agree statistically,
not bitwise.
"""

import importlib.metadata as md
import json
from dataclasses import asdict

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.inference.fit import FitSettings
from twin_uq.inference.idata import data_hash
from twin_uq.model.load import model_source_hash

DESIGN = tq.Design(times=[0.25, 1.0, 3.0, 8.0, 24.0], doses=[tq.Bolus(0.0, 100.0, 1)])
KWARGS = {"chains": 1, "warmup": 200, "draws": 200, "progress": False}
GROUPS = ("posterior", "posterior_predictive", "log_likelihood", "sample_stats", "constant_data")


@pytest.fixture(scope="module")
def sim():
    return tq.simulate_cohort("one_compartment_iv", 6, DESIGN, seed=4)


@pytest.fixture(scope="module")
def fits(sim):
    # Same shapes and settings as the fast SBC test, so the compiled sampler is shared.
    a = tq.fit("one_compartment_iv", sim.cohort, seed=7, **KWARGS)
    # The second fit is rebuilt from nothing but the first one's provenance attributes.
    attrs = a.idata.attrs
    settings = json.loads(attrs["settings"])
    population = json.loads(attrs["population_model"])
    b = tq.fit(
        attrs["model_name"],
        sim.cohort,
        method=settings["method"],
        chains=settings["chains"],
        warmup=settings["warmup"],
        draws=settings["draws"],
        seed=int(attrs["seed"]),
        target_accept=settings["target_accept"],
        max_tree_depth=settings["max_tree_depth"],
        dense_mass=settings["dense_mass"],
        covariate_effects=population["covariate_effects"],
        correlation=population["correlation"],
        centering=population["centering"],
        error=population["error"],
        priors=population["priors"],
        solver=tq.SolverSettings(**json.loads(attrs["solver"])),
        progress=False,
    )
    c = tq.fit("one_compartment_iv", sim.cohort, seed=8, **KWARGS)
    return a, b, c


def test_same_seed_same_posterior_bitwise_different_seed_different(fits):
    a, b, c = fits
    for group in GROUPS:
        ds_a, ds_b = a.idata[group].to_dataset(), b.idata[group].to_dataset()
        assert set(ds_a.data_vars) == set(ds_b.data_vars)
        for var in ds_a.data_vars:
            x, y = ds_a[var].values, ds_b[var].values
            assert x.dtype == y.dtype and x.shape == y.shape
            # bitwise: compare the bytes (NaN == NaN, -0.0 != 0.0)
            assert x.tobytes() == y.tobytes(), f"{group}/{var} differs"
    assert not np.array_equal(a.posterior["mu"].values, c.posterior["mu"].values)
    assert a.idata.attrs["seed"] == "7" and c.idata.attrs["seed"] == "8"


def test_provenance_records_versions_model_data_settings_and_seed(fits, sim):
    a, _, c = fits
    attrs = a.idata.attrs
    versions = json.loads(attrs["package_versions"])
    for package in ("twin-uq", "jax", "jaxlib", "numpyro", "diffrax", "numpy", "xarray"):
        assert versions[package] == md.version(package)
    assert attrs["twin_uq_version"] == md.version("twin-uq")
    assert attrs["python"] and attrs["platform"] and attrs["created_at"]
    model = tq.load_model("one_compartment_iv")
    assert attrs["model_name"] == model.name
    assert attrs["model_source_hash"] == model_source_hash(model)
    assert attrs["data_hash"] == data_hash(sim.cohort.to_dataframe())
    assert json.loads(attrs["settings"]) == asdict(
        FitSettings(method="nuts", chains=1, warmup=200, draws=200, seed=7)
    )
    assert json.loads(attrs["solver"]) == model.solver.__dict__
    assert (attrs["method"], attrs["approximate"]) == ("nuts", "false")
    # only the seed differs between the seed-7 and seed-8 fits' settings
    sa, sc = json.loads(attrs["settings"]), json.loads(c.idata.attrs["settings"])
    assert {k for k in sa if sa[k] != sc[k]} == {"seed"}


def test_data_hash_changes_with_any_value(sim):
    table = sim.cohort.to_dataframe()
    changed = table.copy()
    row = int(np.flatnonzero(changed["dv"].notna().to_numpy())[0])
    changed.loc[row, "dv"] = np.nextafter(changed.loc[row, "dv"], np.inf)  # one ulp
    assert data_hash(changed) != data_hash(table)
    assert data_hash(table.copy()) == data_hash(table)


def test_saved_and_reloaded_fit_is_bitwise_the_same(fits, tmp_path):
    a = fits[0]
    again = tq.load_posterior(a.save(tmp_path / "fit.nc"))
    for group in GROUPS:
        ds_a, ds_b = a.idata[group].to_dataset(), again.idata[group].to_dataset()
        for var in ds_a.data_vars:
            assert ds_a[var].values.tobytes() == ds_b[var].values.tobytes(), f"{group}/{var}"
    assert dict(again.idata.attrs) == dict(a.idata.attrs)
