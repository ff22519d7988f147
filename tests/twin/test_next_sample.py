"""Next-best measurement: pre-posterior analysis checked against closed forms, then on a twin.

The closed forms are those of the conjugate Normal model: prior theta ~ N(0, 1), one
measurement y = theta + e with e ~ N(0, 1). The posterior is N(y / 2, 1 / 2) whatever y
is, so every central interval shrinks by exactly 1 - 1/sqrt(2); and the marginal of y is
N(0, 2), which gives the probability that a decision changes in closed form.
"""

import numpy as np
import pytest
from scipy import stats

import twin_uq as tq
from twin_uq.errors import InputError
from twin_uq.inference.residual import ErrorKind
from twin_uq.twin.next_sample import imagine_measurements

#: Quasi-random prior draws (exact quantiles), so that the only Monte Carlo error is that
#: of the imagined measurements and of the re-weighting.
S = 4000
THETA = stats.norm.ppf((np.arange(S) + 0.5) / S)
#: Imagined measurements per candidate (one compiled shape for every test here).
M = 1024


def _conjugate(goal, q, seed=3):
    return imagine_measurements(
        goal,
        q,
        THETA[:, None],  # one candidate: measuring theta itself
        int(ErrorKind.ADDITIVE),
        np.ones(S),
        np.zeros(S),
        np.full(S, np.inf),
        n_imagined=M,
        seed=seed,
    )


def test_expected_interval_shrinkage_matches_the_conjugate_normal():
    im = _conjugate(tq.ParameterInterval("theta"), THETA)
    eff = im.effect[0]
    mcse = eff.std(ddof=1) / np.sqrt(eff.size)
    # The re-weighted 90 % width is a weighted quantile estimate from draws whose
    # effective size is about 0.58 S: its relative error per imagined value is about
    # 1.5 %, which the mean over M = 1024 values averages down to well below 0.005.
    assert abs(eff.mean() - (1 - 1 / np.sqrt(2))) < 4 * mcse + 0.005
    # The posterior width does not depend on y: each imagined value gives about the same.
    assert eff.std() < 0.03
    # Only imagined values far in the tail of y ~ N(0, 2) move the posterior beyond the
    # draws' reach (k-hat >= 0.7).
    assert (im.khat >= 0.7).mean() < 0.03


def test_probability_that_the_decision_changes_matches_the_closed_form():
    # Regimen A attains its target when theta < 0.3, B when theta >= 0.3: A is chosen now
    # (P = 0.618). After y, P(A) = Phi((0.3 - y/2) / sqrt(1/2)) < 1/2 iff y > 0.6; with
    # y ~ N(0, 2) the choice changes with probability 1 - Phi(0.6 / sqrt(2)).
    hits = np.stack([THETA < 0.3, THETA >= 0.3], axis=1).astype(float)
    goal = tq.DoseDecision(target=None, candidates=["A", "B"])
    im = _conjugate(goal, hits, seed=5)
    p = im.effect[0].mean()
    expected = 1 - stats.norm.cdf(0.6 / np.sqrt(2))
    se = np.sqrt(expected * (1 - expected) / im.effect.shape[1])
    assert abs(p - expected) < 4 * se
    assert im.now == 0.0  # regimen A


def test_a_measurement_that_every_draw_predicts_alike_carries_no_information():
    f = np.full((S, 1), 2.0)
    im = imagine_measurements(
        tq.ParameterInterval("theta"),
        THETA,
        f,
        int(ErrorKind.COMBINED),
        np.full(S, 0.1),
        np.full(S, 0.1),
        np.full(S, np.inf),
        n_imagined=M,
    )
    np.testing.assert_allclose(im.effect, 0.0, atol=1e-12)


def test_a_value_below_the_limit_is_conditioned_on_as_censored():
    im = imagine_measurements(
        tq.ParameterInterval("theta"),
        THETA,
        THETA[:, None],
        int(ErrorKind.ADDITIVE),
        np.ones(S),
        np.zeros(S),
        np.full(S, np.inf),
        lloq=0.0,
        n_imagined=M,
        seed=1,
    )
    below = im.censored[0]
    assert 0.4 < below.mean() < 0.6  # y ~ N(0, 2): half below 0
    # Censored at 0, the posterior is the prior truncated-ish to theta < 0 (weights
    # Phi(-theta)): every censored value gives the same weights.
    w_cens = im.weights[0][below]
    np.testing.assert_allclose(w_cens, w_cens[:1].repeat(len(w_cens), 0), rtol=1e-12)
    expected = stats.norm.cdf(-THETA)
    np.testing.assert_allclose(w_cens[0], expected / expected.sum(), rtol=1e-9)


# ---- on a fitted twin ------------------------------------------------------------------
def test_next_measurement_of_a_data_poor_twin(oral_fit, oral_sim):
    t = oral_sim.table
    poor = str(t.loc[t["sampling"] != "rich", "id"].iloc[0])
    tw = oral_fit.twin(poor)
    times = np.array([0.0, 4.0, 12.0, 48.0])
    res = tw.next_measurement(times, goal="CL", draws=400, n_imagined=64, max_exact=0, seed=1)
    tab = res.table.set_index("time")
    # At t = 0 nothing has been absorbed: every draw predicts 0, and a value there speaks
    # only of the additive error SD (which the draws tie loosely to CL).
    assert abs(tab.loc[0.0, "effect"]) < 0.1 * tab.loc[12.0, "effect"]
    assert tab.loc[12.0, "effect"] > 5 * tab.loc[12.0, "mcse"]
    assert res.best["time"] != 0.0
    assert "best next measurement" in res.summary()
    assert res.n_draws == 400 and res.n_imagined == 64


def test_dose_decision_goal_on_a_twin(oral_fit):
    tw = oral_fit.twin(oral_fit.patient_ids[0])
    goal = tq.DoseDecision(tq.Event("concentration", above=0.5, below=3.0, at=12.0), [50, 100, 200])
    res = tw.next_measurement([6.0, 30.0], goal=goal, draws=200, n_imagined=32, max_exact=0)
    tab = res.table
    assert tab["effect"].between(0, 1).all()  # probability that the choice changes
    # The expected attainment of the regimen chosen after a sample is at least today's
    # (the value of sample information is never negative), up to Monte Carlo error.
    assert (tab["after"] >= tab["now"] - 0.05).all()
    assert "changes the chosen regimen with probability" in res.summary()


def test_next_measurement_refuses_what_it_cannot_answer(oral_fit):
    tw = oral_fit.twin(oral_fit.patient_ids[0])
    with pytest.raises(InputError, match="no parameter 'CLX'"):
        tw.next_measurement([4.0], goal="CLX")
    with pytest.raises(InputError, match="no output"):
        tw.next_measurement([4.0], goal="CL", output="glucose")
    with pytest.raises(InputError, match="times must be"):
        tw.next_measurement([-1.0], goal="CL")
