"""Fixed-step horizons: exact covering and the bucketed horizons of predictions."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

import twin_uq as tq
from twin_uq.model.solver_settings import step_bucket
from twin_uq.simulate import Schedule, solve_outputs


def test_step_buckets_are_four_per_doubling_and_waste_at_most_a_quarter():
    sizes = sorted({step_bucket(n) for n in range(1, 4097)})
    assert sizes[:9] == [16, 20, 24, 28, 32, 40, 48, 56, 64]
    for n in range(1, 4097):
        b = step_bucket(n)
        assert b >= n and b in sizes
        assert n <= 16 or b <= 1.25 * n, (n, b)
        # the smallest such size: the bucket below does not reach n
        below = [s for s in sizes if s < b]
        assert not below or below[-1] < n


def test_a_bucketed_horizon_changes_no_value_at_the_requested_times():
    # Grid points past the latest requested time are zero-length steps, so the solution at
    # the requested times is bitwise the one on the exact horizon.
    model = tq.load_model("one_compartment_oral")
    settings = tq.SolverSettings("rk4", fixed_step=0.25)
    times = jnp.asarray([0.5, 3.0, 7.3, 10.1])
    exact = settings.covering(np.asarray(times))
    wide = settings.covering(np.asarray(times), bucketed=True)
    assert exact.horizon == math.ceil(10.1 / 0.25) * 0.25
    assert wide.horizon == step_bucket(41) * 0.25 > exact.horizon
    theta = jnp.asarray([1.2, 5.0, 50.0])
    sched = Schedule.build([tq.Bolus(0.0, 100.0, 1), tq.Bolus(6.0, 100.0, 1)], [])
    cov = jnp.asarray([70.0])
    a = solve_outputs(model, theta, cov, sched, times, exact)[0]
    b = solve_outputs(model, theta, cov, sched, times, wide)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
