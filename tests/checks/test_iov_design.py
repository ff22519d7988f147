"""Population checks of an IOV fit simulate new patients with fresh occasion effects.

``_simulate_batch`` on the occasion segments of a tiny cohort (occasion 2 from 24 h):
with ``omega_occ = 0`` the replicates equal those without occasion effects (same keys,
so the same random effects and noise; equal to rounding, as the solve is split at the
occasion start), and with ``omega_occ > 0`` the spread of the occasion-2 concentrations
grows while occasion 1 is untouched.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import twin_uq as tq
from models.one_compartment_iv import OneCompartmentIV
from twin_uq.checks.simulate import _simulate_batch
from twin_uq.inference.prepare import prepare_fit


def test_replicates_carry_the_occasion_variance():
    rows = []
    for pid in range(2):
        rows.append(dict(ID=pid, TIME=0.0, AMT=100.0, EVID=1, DV=np.nan, OCC=1))
        rows.append(dict(ID=pid, TIME=24.0, AMT=100.0, EVID=1, DV=np.nan, OCC=2))
        for t in (4.0, 44.0):
            rows.append(dict(ID=pid, TIME=t, AMT=0.0, EVID=0, DV=1.0, OCC=1 if t < 24 else 2))
    cohort = tq.read_cohort(pd.DataFrame(rows).sort_values(["ID", "TIME"], kind="stable"))
    model = OneCompartmentIV()
    spec = tq.PopulationModel(
        model, iov=["CL"], prior_check="off", error={"concentration": "additive"}
    )
    prepared = prepare_fit(spec, cohort)
    arrays, occasion = prepared.data.arrays, prepared.data.segment_occasion
    B, P = 400, 2
    mean = jnp.broadcast_to(jnp.log(jnp.array([4.0, 45.0])), (B, P, 2))
    chol = jnp.broadcast_to(jnp.diag(jnp.array([0.1, 0.1])), (B, 2, 2))
    add, prop, nu = jnp.full((B, 1), 1e-6), jnp.zeros((B, 1)), jnp.full(B, 1e6)
    keys = jax.random.split(jax.random.PRNGKey(0), B)
    args = (
        model,
        model.solver,
        False,
        mean,
        chol,
        add,
        prop,
        nu,
        arrays,
        None,
        jnp.array([0]),
        keys,
    )
    plain, _ = _simulate_batch(*args)
    iov = ((0,), 2)
    zero, _ = _simulate_batch(*args, iov=iov, omega_occ=jnp.zeros((B, 1)), occasion=occasion)
    np.testing.assert_allclose(np.asarray(zero), np.asarray(plain), rtol=1e-13)
    wide, _ = _simulate_batch(*args, iov=iov, omega_occ=jnp.full((B, 1), 0.5), occasion=occasion)
    sd = lambda y, j: float(np.log(np.asarray(y)[:, 0, j]).std())  # noqa: E731
    # 20 h after the second dose: log f moves by CL/V x 20 h x kappa_2 x 0.5 (SD 0.9)
    assert sd(wide, 1) > 2 * sd(plain, 1)
