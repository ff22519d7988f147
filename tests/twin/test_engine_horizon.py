"""Twin predictions on a fixed-step solver: horizons in shape buckets change no value."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import twin_uq as tq
from twin_uq.data.arrays import bucket_size
from twin_uq.simulate import Schedule, solve_outputs
from twin_uq.twin.engine import covering_in_buckets


def test_a_bucketed_horizon_changes_no_value_at_the_requested_times():
    # Grid points past the latest requested time are zero-length steps, so the solution at
    # the requested times is bitwise the one on the exact horizon.
    model = tq.load_model("one_compartment_oral")
    settings = tq.SolverSettings("rk4", fixed_step=0.25)
    times = jnp.asarray([0.5, 3.0, 7.3, 10.1])
    exact = settings.covering(np.asarray(times))
    wide = covering_in_buckets(settings, np.asarray(times))
    assert exact.horizon == 41 * 0.25  # ceil(10.1 / 0.25) steps
    assert wide.horizon == bucket_size(41, smallest=16) * 0.25 == 48 * 0.25
    theta = jnp.asarray([1.2, 5.0, 50.0])
    sched = Schedule.build([tq.Bolus(0.0, 100.0, 1), tq.Bolus(6.0, 100.0, 1)], [])
    cov = jnp.asarray([70.0])
    a = solve_outputs(model, theta, cov, sched, times, exact)[0]
    b = solve_outputs(model, theta, cov, sched, times, wide)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    adaptive = tq.SolverSettings("tsit5")
    assert covering_in_buckets(adaptive, np.asarray(times)) is adaptive
