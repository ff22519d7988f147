"""The checks on fits with censoring, several doses, two outputs and the fixed-step solver.

Slow set: each test fits a tiny cohort with Laplace (approximate, labelled as such).
"""

import numpy as np
import pytest

import twin_uq as tq

pytestmark = pytest.mark.slow


def test_censored_multiple_dose_fit_with_fixed_step_solver(tmp_path):
    design = tq.Design(
        times=[0.5, 1.0, 2.0, 4.0, 8.0, 12.5, 13.0, 16.0, 24.0],
        doses=[tq.Bolus(0.0, 100.0, 1), tq.Bolus(12.0, 100.0, 1)],
        lloq={"concentration": 0.5},
        covariates={"SEX": ("categorical", ("F", "M"), (0.5, 0.5))},
    )
    sim = tq.simulate_cohort("one_compartment_iv", 10, design, seed=3)
    solver = tq.SolverSettings(method="rk4", fixed_step=0.25)
    post = tq.fit("one_compartment_iv", sim.cohort, method=tq.Laplace(steps=800, draws=300),
                  solver=solver, prior_check="off", seed=0, progress=False)  # fmt: skip
    assert post.approximate and post.solver.is_fixed_step
    sims = tq.checks.simulate_design(post, 200, seed=0)
    assert sims.ok.all()
    v = tq.vpc(post, x="tad", pc=True, by="SEX", sims=sims)
    assert v.approximate and "APPROXIMATE" in v.plot().texts[0].get_text()
    # Censored points exist, so the BLQ panel does, with fractions in [0, 1].
    assert not v.blq.empty and v.blq["observed"].between(0, 1).all()
    assert v.blq["sim_lower"].le(v.blq["sim_upper"]).all()
    # Time after dose: the second dose restarts the clock (12.5 h is 0.5 h after it).
    assert v.percentiles["x"].max() <= 12.0 + 1e-9
    n = tq.npde(post, sims=sims)
    cens = n.table["censored"] == "below"
    assert cens.any() and np.isfinite(n.table["npde"]).all()
    # The PIT of a censored point lies below its limit's predictive probability.
    assert n.table.loc[cens, "pd"].lt(1.0).all()
    path = tq.report.cohort(post, tmp_path / "c.html")
    html = path.read_text()
    assert "approximate" in html and "below LLOQ" in html and "imputed" in html


def test_two_outputs():
    design = tq.Design(
        times=[0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0],
        doses=[tq.Bolus(0.0, 100.0, 1)],
        outputs=["concentration", "effect"],
    )
    sim = tq.simulate_cohort("pkpd_emax", 8, design, seed=4)
    post = tq.fit("pkpd_emax", sim.cohort, method=tq.Laplace(steps=800, draws=300),
                  prior_check="off", seed=0, progress=False)  # fmt: skip
    v = tq.vpc(post, nsim=100)
    assert set(v.percentiles["output"]) == {"concentration", "effect"}
    n = tq.npde(post, nsim=200)
    assert set(n.tests().index) == {"all", "concentration", "effect"}
    fig = v.plot()
    assert len([a for a in fig.axes if a.get_visible()]) == 2
