"""The ForecastTrust goal of next_measurement, on arrays with a Gaussian closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin_uq.trust.score import any_miss_probability, gaussian_miss_probability
from twin_uq.twin.next_sample import ForecastTrust, imagine_measurements


def _q(f: np.ndarray, margin: float) -> np.ndarray:
    """The goal's per-draw array: the margin in column 0, then the forecast draws."""
    return np.concatenate([np.full((f.shape[0], 1), margin), f.reshape(f.shape[0], -1)], axis=1)


def test_score_with_even_weights_is_the_trust_score():
    rng = np.random.default_rng(0)
    f = rng.gamma(3.0, 1.0, (4000, 3))
    goal = ForecastTrust("y", (1.0, 2.0, 3.0), margin=1.5)
    w = np.full((1, 4000), 1 / 4000)
    assert goal.score(_q(f, 1.5), w)[0] == pytest.approx(any_miss_probability(f, 1.5), abs=1e-3)


def test_expected_trust_after_one_measurement_gaussian_closed_form():
    # theta ~ N(0, 1) is the forecast; a measurement y = theta + N(0, s^2) gives the
    # posterior N(., 1 / (1 + 1 / s^2)) whatever y is, so the score after it is the
    # closed form P(|Z| > margin / sd_post) for every imagined value.
    rng = np.random.default_rng(1)
    S, s, margin = 4000, 0.5, 1.0
    theta = rng.standard_normal(S)
    sd_post = math.sqrt(1 / (1 + 1 / s**2))
    exact_now = float(gaussian_miss_probability(1.0, margin))  # 0.317
    exact_after = float(gaussian_miss_probability(sd_post, margin))  # 0.025
    goal = ForecastTrust("y", (1.0,), margin=margin, threshold=0.2)
    im = imagine_measurements(
        goal,
        _q(theta[:, None], margin),
        theta[:, None],  # one candidate: measuring theta itself
        0,  # additive error
        np.full(S, s),
        np.zeros(S),
        np.zeros(S),
        n_imagined=64,
        seed=2,
    )
    assert im.now == pytest.approx(exact_now, abs=0.02)
    # importance re-weighting of 4000 draws: Monte Carlo error of a few 0.01
    assert im.after.mean() == pytest.approx(exact_after, abs=0.03)
    assert im.effect.mean() > 0.9  # the score drops under 0.2 after (almost) every value
    # a useless measurement (noise SD 50) leaves the twin untrustworthy
    im_bad = imagine_measurements(
        goal, _q(theta[:, None], margin), theta[:, None], 0, np.full(S, 50.0),
        np.zeros(S), np.zeros(S), n_imagined=64, seed=2,
    )  # fmt: skip
    assert im_bad.effect.mean() == 0.0
    assert im_bad.after.mean() == pytest.approx(exact_now, abs=0.03)


@pytest.mark.slow  # 18 s on a busy 2-core machine; the closed-form test above is the fast check
def test_forecast_trust_on_a_twin_agrees_with_the_forecast_score(oral_fit, oral_sim):
    import twin_uq as tq
    from twin_uq.trust import assess_patient, assess_prediction

    sparse = oral_sim.table.groupby("id")["sampling"].first()
    pid = str(sparse[sparse == "sparse"].index[0])
    twin = oral_fit.twin(pid)
    goal = tq.ForecastTrust("concentration", times=(8.0, 12.0), margin=0.1)
    nm = twin.next_measurement([1.0, 4.0, 8.0], goal=goal, n_imagined=32, draws=None)
    # today's score by the goal's weighted median = the forecast's trust score of predict()
    pred = twin.predict([8.0, 12.0])
    judged = assess_prediction(assess_patient(oral_fit, pid, score=False), pred, margin=0.1)
    assert nm.table["now"].iloc[0] == pytest.approx(judged.p_miss, abs=0.02)
    assert ((nm.table["effect"] >= 0) & (nm.table["effect"] <= 1)).all()
    assert (nm.table["after"] <= 1).all() and "trust score" in nm.summary()
