"""Vectorised chains (the single-GPU default) sample the same chains as pmap-parallel ones."""

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.inference.nuts_kernel import choose_chain_method

DESIGN = tq.Design(times=[0.25, 1.0, 3.0, 8.0, 24.0], doses=[tq.Bolus(0.0, 100.0, 1)])
KWARGS = {"chains": 2, "warmup": 40, "draws": 30, "seed": 3, "progress": False}


def test_auto_keeps_cpu_chains_parallel():
    assert choose_chain_method(4) == "parallel"  # CPU test machines
    assert choose_chain_method(4, "vectorized") == "vectorized"
    with pytest.raises(ValueError, match="chain_method must be one of"):
        choose_chain_method(2, "threads")
    with pytest.raises(ValueError, match="chain_method must be one of"):
        tq.fit("one_compartment_iv", tq.simulate_cohort("one_compartment_iv", 2, DESIGN, seed=1).cohort,
               chain_method="threads", **KWARGS)  # fmt: skip


@pytest.mark.slow  # 33 s in CI: two full fits compared
def test_vectorized_chains_match_parallel_chains():
    cohort = tq.simulate_cohort("one_compartment_iv", 4, DESIGN, seed=2).cohort
    par = tq.fit("one_compartment_iv", cohort, chain_method="parallel", **KWARGS)
    vec = tq.fit("one_compartment_iv", cohort, chain_method="vectorized", **KWARGS)
    assert "vmap" in vec.idata.attrs["backend_info"]
    assert "pmap" in par.idata.attrs["backend_info"]
    # Same keys and starting points per chain: the same trajectories up to floating-point
    # reassociation between the two compilations (a flipped U-turn would show as a jump).
    for name in ("mu", "omega", "theta"):
        a = par.posterior[name].values
        b = vec.posterior[name].values
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=name)
