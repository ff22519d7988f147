"""Identical seeds give bitwise-identical posteriors on the same machine."""

import numpy as np

import twin_uq as tq

DESIGN = tq.Design(times=[0.25, 1.0, 3.0, 8.0, 24.0], doses=[tq.Bolus(0.0, 100.0, 1)])


def test_same_seed_same_posterior_different_seed_different():
    # Same shapes and settings as the fast SBC test, so the compiled sampler is shared.
    sim = tq.simulate_cohort("one_compartment_iv", 6, DESIGN, seed=4)
    kwargs = {"chains": 1, "warmup": 200, "draws": 200, "progress": False}
    a = tq.fit("one_compartment_iv", sim.cohort, seed=7, **kwargs)
    b = tq.fit("one_compartment_iv", sim.cohort, seed=7, **kwargs)
    c = tq.fit("one_compartment_iv", sim.cohort, seed=8, **kwargs)
    for var in ("mu", "omega", "theta"):
        np.testing.assert_array_equal(a.posterior[var].values, b.posterior[var].values)
    np.testing.assert_array_equal(
        a.idata["posterior_predictive"]["y"].values, b.idata["posterior_predictive"]["y"].values
    )
    assert not np.array_equal(a.posterior["mu"].values, c.posterior["mu"].values)
    assert a.idata.attrs["seed"] == "7" and c.idata.attrs["seed"] == "8"
