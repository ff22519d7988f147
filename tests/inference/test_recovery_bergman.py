"""Parameter recovery at the default settings on a simulated Bergman minimal-model IVGTT
cohort (ODE path, slow): R-hat < 1.01, no divergences, truth covered."""

import numpy as np
import pytest
from scipy import stats

import twin_uq as tq

IB = 10.0
KNOTS = np.array([0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100, 120, 150, 180, 240, 300.0])


def insulin(t):
    return IB + 90.0 * np.exp(-t / 8.0) + 20.0 * (t / 30.0) * np.exp(1.0 - t / 30.0)


DESIGN = tq.Design(
    times=[2, 4, 8, 12, 16, 20, 30, 40, 60, 90, 120, 180, 240],
    signals={"insulin": (KNOTS, insulin(KNOTS))},
    signal_scale_sd=0.3,
)


@pytest.fixture(scope="module")
def bergman_fit():
    sim = tq.simulate_cohort(
        "bergman_minimal", 12, DESIGN, seed=5, omega={"SG": 0.2, "p2": 0.2, "SI": 0.3, "Gb": 0.1, "G0": 0.1}
    )
    post = tq.fit("bergman_minimal", sim.cohort, seed=1, progress=False)  # 4 x (1000 + 1000)
    print(post.diagnostics())
    return sim, post


@pytest.mark.slow
def test_bergman_default_fit_has_no_divergences(bergman_fit):
    _, post = bergman_fit
    diag = post.diagnostics()
    assert diag.n_draws == 4000
    assert diag.solver_failures == 0
    assert diag.divergences == 0, str(diag)


@pytest.mark.slow
def test_bergman_default_fit_reaches_rhat_below_1_01(bergman_fit):
    _, post = bergman_fit
    diag = post.diagnostics()
    assert diag.max_rhat < 1.01, str(diag)


@pytest.mark.slow
def test_bergman_population_and_patient_recovery(bergman_fit):
    sim, post = bergman_fit
    table = post.population_summary(interval=0.99)
    for name, true in sim.truth.typical.items():
        assert table.loc[name, "lower"] < true < table.loc[name, "upper"], (name, table.loc[name], true)
    summary = post.patient_summary(interval=0.9)
    truth = sim.truth.theta.stack()
    truth.index.names = ["patient", "parameter"]
    joined = summary.join(truth.rename("true"))
    inside = (joined["lower"] <= joined["true"]) & (joined["true"] <= joined["upper"])
    print(f"patient 90% intervals cover {inside.mean():.3f} of {inside.size}")
    assert stats.binomtest(int(inside.sum()), inside.size, 0.9).pvalue > 0.01, inside.mean()
