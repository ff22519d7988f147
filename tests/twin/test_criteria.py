"""Criteria and events evaluated on hand-made trajectories with known answers."""

import numpy as np
import pytest

from twin_uq.twin import Criterion, Event
from twin_uq.twin.criteria import window_weights

T = np.array([0.0, 1.0, 2.0, 4.0])
V = np.array(
    [
        [0.0, 2.0, 4.0, 2.0],
        [1.0, 1.0, 1.0, 1.0],
    ]
)


def test_window_weights_are_trapezoid_and_sum_to_one():
    sel, w = window_weights(T, None)
    assert sel.all()
    # gaps 1, 1, 2 -> trapezoid weights 0.5, 1, 1.5, 1 over total 4
    np.testing.assert_allclose(w, [0.125, 0.25, 0.375, 0.25])
    sel, w = window_weights(T, (1.0, 2.0))
    assert sel.tolist() == [False, True, True, False]
    np.testing.assert_allclose(w, [0.5, 0.5])


def test_criterion_statistics():
    mean = Criterion("c", "mean").evaluate(T, V)
    # time-weighted mean = trapezoid integral / duration: (1 + 3 + 6) / 4
    np.testing.assert_allclose(mean, [2.5, 1.0])
    np.testing.assert_allclose(Criterion("c", "auc").evaluate(T, V), [10.0, 4.0])
    np.testing.assert_allclose(Criterion("c", "max").evaluate(T, V), [4.0, 1.0])
    np.testing.assert_allclose(Criterion("c", "min", window=(1, 4)).evaluate(T, V), [2.0, 1.0])
    np.testing.assert_allclose(Criterion("c", "value_at", time=2.0).evaluate(T, V), [4.0, 1.0])
    tir = Criterion("c", "time_in_range", target=(1.5, 3.0)).evaluate(T, V)
    # draw 0 is in range at t = 1 and t = 4 (weights 0.25 + 0.25)
    np.testing.assert_allclose(tir, [0.5, 0.0])


def test_criterion_scores_follow_goal():
    v = np.array([0.5, 2.0, 5.0])
    assert np.argmax(Criterion("c", goal="maximize").score(v)) == 2
    assert np.argmax(Criterion("c", goal="minimize").score(v)) == 0
    s = Criterion("c", goal="target", target=(1.0, 3.0)).score(v)
    np.testing.assert_allclose(s, [-0.5, 0.0, -2.0])
    assert Criterion("c", goal="target", target=(1.0, 3.0)).attained(v).tolist() == [
        False,
        True,
        False,
    ]


def test_event_any_all_at():
    assert Event("c", above=3.0, within=(0, 4)).occurs(T, V).tolist() == [True, False]
    assert Event("c", above=0.5, within=(1, 4), how="all").occurs(T, V).tolist() == [True, True]
    assert Event("c", above=0.5, within=(0, 4), how="all").occurs(T, V).tolist() == [False, True]
    assert Event("c", below=1.5, at=4.0).occurs(T, V).tolist() == [False, True]
    # a range: strictly between the thresholds
    assert Event("c", above=1.5, below=2.5, at=1.0).occurs(T, V).tolist() == [True, False]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(output="c"), "above= and/or below="),
        (dict(output="c", above=1.0), "exactly one of within"),
        (dict(output="c", above=1.0, within=(0, 1), at=1.0), "exactly one of within"),
        (dict(output="c", above=3.0, below=1.0, at=1.0), "above < below"),
        (dict(output="c", above=1.0, within=(5, 1)), "t0 <= t1"),
        (dict(output="c", above=1.0, at=-1.0), ">= 0"),
    ],
)
def test_event_rejects_bad_definitions(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Event(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(output="c", statistic="median"), "Unknown statistic"),
        (dict(output="c", goal="best"), "Unknown goal"),
        (dict(output="c", statistic="value_at"), "needs a time"),
        (dict(output="c", goal="target"), "needs target"),
        (dict(output="c", statistic="time_in_range"), "needs target"),
        (dict(output="c", goal="target", target=(2.0, 1.0)), "low < high"),
    ],
)
def test_criterion_rejects_bad_definitions(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Criterion(**kwargs)


def test_value_at_time_must_be_on_grid():
    with pytest.raises(ValueError, match="not among the evaluation times"):
        Criterion("c", "value_at", time=3.0).evaluate(T, V)
