"""A twin update whose sampler did not sample raises, naming the patient (issue #26).

The update runs its own NUTS on one patient's parameters; a NaN gradient leaves every
chain at its starting point with every transition divergent, and those constant draws
must never become a conditioned twin (the cohort fit's rule, tests/posterior).
"""

import jax.numpy as jnp
import numpy as np
import pytest
from nan_gradient_iv import NaNGradientIV

import twin_uq as tq
from twin_uq.posterior.failure import MIN_DRAWS
from twin_uq.twin import UpdateFailedError
from twin_uq.twin.engine import bucket_schedule
from twin_uq.twin.update import UpdateData, patient_arrays, run_update


def test_an_update_that_never_moved_raises_naming_the_patient():
    model = NaNGradientIV()
    design = tq.Design(times=[0.5, 2.0, 8.0], doses=[tq.Bolus(0.0, 100.0, 1)])
    cohort = tq.simulate_cohort("one_compartment_iv", 1, design, seed=1).cohort
    pid = cohort.ids[0]
    table = cohort.to_dataframe()
    rows = table[table["evid"] == 0]
    obs = {
        "time": rows["time"].to_numpy(float),
        "value": rows["dv"].to_numpy(float),
        "output": np.zeros(len(rows), int),
        "censored": np.zeros(len(rows), bool),
        "lloq": np.full(len(rows), -np.inf),
    }
    arrays = patient_arrays(model, obs, bucket_schedule(cohort.schedule(pid)), np.asarray([70.0]))
    S = 4
    mean = np.log([5.0, 50.0]) + np.zeros((S, 2))
    chol = np.broadcast_to(0.3 * np.eye(2), (S, 2, 2))
    data = UpdateData(
        arrays=arrays, error_code=jnp.asarray([2]), mean=jnp.asarray(mean),
        chol_inv=jnp.asarray(np.linalg.inv(chol)),
        logdet=jnp.asarray(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)),
        add=jnp.full((S, 1), 0.1), prop=jnp.full((S, 1), 0.1), nu=jnp.full(S, 1e6),
    )  # fmt: skip
    # The target itself is finite where the chains start: only the gradient is NaN.
    with pytest.raises(UpdateFailedError) as info:
        run_update(
            model, model.solver, data, mean[0], chains=2, warmup=5, draws=MIN_DRAWS, seed=0,
            patient=pid,
        )  # fmt: skip
    err = info.value
    assert isinstance(err, tq.FitFailedError) and isinstance(err, tq.TwinUQError)
    assert err.patient == pid and err.posterior is None
    assert err.failure.stuck == (0, 1) and err.failure.all_divergent == (0, 1)
    msg = str(err)
    assert msg.startswith(f"The NUTS update of patient {pid!r}")
    assert f"every one of the {MIN_DRAWS} transitions after warm-up diverged" in msg
    assert "never moved" in msg and "What to do" in msg
