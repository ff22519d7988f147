"""Stacking weights on constructed cases with known optima."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from twin_uq.compare import stacking_weights
from twin_uq.compare.average import allocate_draws


def test_two_models_hand_solved():
    # Densities (A, B): point 1 (2, 1), point 2 (1, 3). d/dw [log(w + 1) + log(3 - 2w)] = 0
    # gives 1 / (w + 1) = 2 / (3 - 2w), w_A = 1/4.
    lp = np.log([[2.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(stacking_weights(lp), [0.25, 0.75], atol=1e-6)
    # Per-patient elpd far below exp's range (-745): the same optimum.
    np.testing.assert_allclose(stacking_weights(lp - 1000.0), [0.25, 0.75], atol=1e-6)


def test_dominated_model_gets_no_weight():
    rng = np.random.default_rng(0)
    a = rng.normal(-3, 1, size=20)
    lp = np.column_stack([a, a - 2.0])  # B worse everywhere
    np.testing.assert_allclose(stacking_weights(lp), [1.0, 0.0], atol=1e-6)


def test_three_models_against_a_brute_force_optimum():
    rng = np.random.default_rng(1)
    lp = rng.normal(-2, 1.5, size=(40, 3))
    w = stacking_weights(lp)
    dens = np.exp(lp)
    best = -np.inf
    grid = np.linspace(0, 1, 201)
    for w1 in grid:
        for w2 in grid[grid <= 1 - w1 + 1e-12]:
            v = np.sum(np.log(dens @ np.array([w1, w2, max(1 - w1 - w2, 0.0)])))
            best = max(best, v)
    assert np.sum(np.log(dens @ w)) >= best - 1e-9
    # Two models: a 1-D bounded search agrees.
    r = minimize_scalar(
        lambda t: -np.sum(np.log(dens[:, :2] @ [t, 1 - t])), bounds=(0, 1), method="bounded"
    )
    np.testing.assert_allclose(stacking_weights(lp[:, :2])[0], r.x, atol=1e-4)


def test_non_finite_elpd_is_refused():
    with pytest.raises(ValueError, match="finite"):
        stacking_weights(np.array([[0.0, -np.inf], [0.0, 0.0]]))


@pytest.mark.parametrize(
    ("weights", "total", "expected"),
    [([0.25, 0.75], 10, [3, 7]), ([1 / 3] * 3, 10, [4, 3, 3]), ([1.0, 0.0], 7, [7, 0])],
)
def test_draws_allocated_by_largest_remainder(weights, total, expected):
    np.testing.assert_array_equal(allocate_draws(np.array(weights), total), expected)
