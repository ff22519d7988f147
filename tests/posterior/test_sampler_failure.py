"""A sampler that did not sample is reported, never turned into numbers (issue #26).

Found on the lag + F recovery (docs/data.md): a NaN gradient left NUTS at its starting
point with every transition divergent, and the constant draws came back as a posterior
flagged only by ``diagnostics().converged == False`` (R-hat NaN, bulk ESS = the number of
draws). The fit now raises :class:`twin_uq.FitFailedError`, and the failed posterior
refuses every summary, view, twin, trust status and report, also after saving and loading.
"""

import numpy as np
import pytest
import xarray as xr
from nan_gradient_iv import NaNGradientIV

import twin_uq as tq
from twin_uq.posterior.failure import MIN_DRAWS, sampler_failure


def _tree(mu: np.ndarray, diverging: np.ndarray | None = None) -> xr.DataTree:
    """A fit's DataTree with ``mu`` ``(chain, draw, parameter)`` and ``theta`` following it."""
    theta = np.exp(mu)[:, :, None, :] * np.ones((1, 1, 3, 1))
    post = xr.Dataset(
        {
            "mu": (("chain", "draw", "parameter"), mu),
            "theta": (("chain", "draw", "patient", "parameter"), theta),
        }
    )
    groups = {"posterior": post}
    if diverging is not None:
        groups["sample_stats"] = xr.Dataset({"diverging": (("chain", "draw"), diverging)})
    return xr.DataTree.from_dict(groups)


def test_a_healthy_fit_is_no_failure():
    mu = np.random.default_rng(0).normal(size=(4, 50, 2))
    div = np.zeros((4, 50), bool)
    div[1, :7] = True  # some divergences: a fit that needs attention, not a failed one
    assert sampler_failure(_tree(mu, div), "nuts") is None


def test_a_chain_that_never_moves_is_a_failure_named_by_chain():
    mu = np.random.default_rng(1).normal(size=(4, MIN_DRAWS, 2))
    mu[2] = mu[2, 0]  # chain 2 repeats its first draw, without any divergence
    failure = sampler_failure(_tree(mu, np.zeros((4, MIN_DRAWS), bool)), "nuts")
    assert failure.stuck == (2,) and failure.all_divergent == () and failure.non_finite == ()
    assert "chain 2 never moved" in failure.message()


def test_every_transition_divergent_is_a_failure_even_if_the_chain_moved():
    mu = np.random.default_rng(2).normal(size=(2, 30, 2))
    div = np.zeros((2, 30), bool)
    div[0] = True
    failure = sampler_failure(_tree(mu, div), "nuts")
    assert failure.all_divergent == (0,) and failure.stuck == ()
    assert "every one of the 30 transitions after warm-up diverged in chain 0" in failure.message()


def test_short_chains_are_judged_only_by_a_stuck_and_divergent_chain():
    # With fewer than MIN_DRAWS draws a working chain may repeat a draw by chance: only
    # a chain that never moved AND always diverged is a failure there.
    rng = np.random.default_rng(3)
    n = MIN_DRAWS - 1
    mu = rng.normal(size=(2, n, 2))
    mu[0] = mu[0, 0]
    assert sampler_failure(_tree(mu, np.zeros((2, n), bool)), "nuts") is None
    div = np.zeros((2, n), bool)
    div[1] = True  # chain 1 moved: always divergent but short, not judged
    assert sampler_failure(_tree(mu, div), "nuts") is None
    div[0] = True
    failure = sampler_failure(_tree(mu, div), "nuts")
    assert failure.stuck == (0,) and failure.all_divergent == (0,)


def test_non_finite_draws_are_a_failure_in_any_method():
    mu = np.random.default_rng(4).normal(size=(1, 40, 2))
    mu[0, 5, 1] = np.nan
    failure = sampler_failure(_tree(mu), "svi")
    assert failure.non_finite == ("mu", "theta") and failure.stuck == ()
    assert failure.message().startswith("The svi fit did not sample the posterior")


@pytest.fixture(scope="module")
def failed_fit():
    model = NaNGradientIV()
    design = tq.Design(times=[0.5, 2.0, 8.0], doses=[tq.Bolus(0.0, 100.0, 1)])
    cohort = tq.simulate_cohort("one_compartment_iv", 3, design, seed=1).cohort
    # prior_check="off": the pooled pre-fit would meet the same NaN gradient first
    population = tq.PopulationModel(model, prior_check="off", centering=0)
    with pytest.raises(tq.FitFailedError) as info:
        tq.fit(
            model,
            cohort,
            population=population,
            method=tq.NUTS(chains=2, warmup=5, draws=MIN_DRAWS),
            seed=0,
        )
    return model, info.value


def test_a_fit_whose_sampler_never_moved_raises_and_refuses_every_number(failed_fit, tmp_path):
    model, err = failed_fit
    assert isinstance(err, tq.TwinUQError)
    assert err.failure.stuck == (0, 1) and err.failure.all_divergent == (0, 1)
    assert "err.posterior.diagnostics()" in str(err)
    post = err.posterior
    # What the fit gave back really is one point per chain: the failure is not invented.
    mu = post.idata["posterior"]["mu"].values
    assert np.ptp(mu, axis=1).max() == 0.0
    diag = post.diagnostics()
    assert not diag.converged
    assert diag.reasons[0].startswith("sampler failure: every one of the")
    assert any("R-hat undefined (NaN)" in r for r in diag.reasons)
    assert "FAILED" in repr(post)
    pid = post.patient_ids[0]
    path = post.save(tmp_path / "failed.nc")
    back = tq.load_posterior(path, model=model)
    assert back.idata.attrs["sampler_failure"] == post.idata.attrs["sampler_failure"]
    uses = (
        lambda fit: fit.population_summary(),
        lambda fit: fit.patient_summary(),
        lambda fit: fit.posterior,
        lambda fit: fit.twin(pid),
        lambda fit: fit.trust(),
        lambda fit: fit.new_patient({"WT": 70.0}, [tq.Bolus(0.0, 100.0, 1)]),
    )
    for fit in (post, back):
        for use in uses:
            with pytest.raises(tq.FitFailedError, match="did not sample the posterior"):
                use(fit)
