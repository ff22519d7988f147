"""VPC, NPDE and goodness of fit on the session's shared fit (no refit), end to end."""

import numpy as np
import pytest

import twin_uq as tq
from twin_uq.checks import simulate_design
from twin_uq.checks.simulate import observed_design


@pytest.fixture(scope="module")
def sims(oral_fit):
    return simulate_design(oral_fit, 200, seed=0)


def test_simulated_cohorts_are_new_patients_of_the_observed_design(oral_fit, sims):
    d = observed_design(oral_fit)
    assert sims.y.shape == (200, *d["mask"].shape) and sims.ok.all()
    # Padding stays NaN, every real observation has a replicate.
    assert np.isnan(sims.y[:, ~d["mask"]]).all() and np.isfinite(sims.y[:, d["mask"]]).all()
    # New patients: the replicates spread more than the fitted patients' own posterior
    # predictive (which knows each patient's parameters), at every observation on average.
    own = oral_fit.idata["posterior_predictive"]["y"].stack(s=("chain", "draw")).values
    own = np.moveaxis(own, -1, 0)
    m = d["mask"]
    assert np.mean(sims.y[:, m].std(axis=0) > own[:, m].std(axis=0)) > 0.8
    # Same seed, same numbers; another seed, other numbers.
    again = simulate_design(oral_fit, 200, seed=0)
    np.testing.assert_array_equal(again.y, sims.y)
    assert not np.allclose(simulate_design(oral_fit, 200, seed=1).y[:, m], sims.y[:, m])


def test_vpc_tables_options_and_plot(oral_fit, sims):
    v = tq.vpc(oral_fit, sims=sims)
    p = v.percentiles
    # Nominal design: one bin per sampling time, three percentiles each.
    assert sorted(p["x"].unique()) == [0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0]
    assert (
        len(p) == 8 * 3 and p["n"].groupby(p["bin"]).first().sum() == oral_fit.arrays.obs_mask.sum()
    )
    assert (p["sim_lower"] <= p["sim_median"]).all() and (p["sim_median"] <= p["sim_upper"]).all()
    assert v.blq.empty and not v.approximate and v.nsim == 200
    # The fit is the true model: few observed percentiles outside their 90% intervals.
    assert v.outside_fraction <= 0.25
    strat = tq.vpc(oral_fit, sims=sims, by="SEX", pc=True, x="tad", bins=[0, 3, 10, 24])
    assert set(strat.percentiles["stratum"]) == {"SEX = F", "SEX = M"}
    assert set(strat.percentiles["bin"]) == {0, 1, 2}
    assert (
        tq.vpc(oral_fit, sims=sims, by="WT").percentiles["stratum"].str.startswith("WT <= ").any()
    )
    fig = strat.plot()
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    with pytest.raises(tq.InputError, match="no covariate or column 'HEIGHT'"):
        tq.vpc(oral_fit, sims=sims, by="HEIGHT")
    with pytest.raises(tq.InputError, match="'time' or 'tad'"):
        tq.vpc(oral_fit, sims=sims, x="dose")


def test_npde_and_gof_of_the_true_model(oral_fit, sims):
    n = tq.npde(oral_fit, sims=sims)
    t = n.table
    assert len(t) == int(oral_fit.arrays.obs_mask.sum())
    assert t["pd"].between(0, 1).all() and np.isfinite(t["npde"]).all()
    assert not n.tests().loc["all", "flag"]
    g = tq.gof(oral_fit, sims=sims, npde=n)
    assert list(g["npde"]) == list(t["npde"]) and list(g["patient"]) == list(t["patient"])
    # IPRED is close to the data for a well-fitted model; IWRES roughly standard.
    assert 0.5 < np.nanstd(g["iwres"]) < 1.5
    assert np.corrcoef(np.log(g["ipred"]), np.log(g["value"]))[0, 1] > 0.9
    n.plot()
