"""An R-hat that is NaN or infinite is never "at most rhat_max" (issue #26).

Constant draws give R-hat 0/0 = NaN, chains each stuck at their own point give infinity;
neither is below 1.01, and trust must not read them as converged (as
posterior.diagnostics does). Hand-built posteriors, whose R-hats are known.
"""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from twin_uq.trust import Status, TrustThresholds
from twin_uq.trust.metrics import global_fit_quality
from twin_uq.trust.stream import reassess_twin
from twin_uq.twin import UpdateRecord

C, D = 4, 200


def _post(stuck: bool = False, fixed_b: bool = False):
    """A NUTS fit with well-mixed mu, omega and corr (unit diagonal).

    ``stuck``: every chain of mu[b] at one point (R-hat NaN); ``fixed_b``: parameter b is a
    fixed effect (omega[b] = 0).
    """
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(C, D, 2))
    if stuck:
        mu[:, :, 1] = 0.3
    omega = np.abs(rng.normal(0.3, 0.05, size=(C, D, 2)))
    if fixed_b:
        omega[:, :, 1] = 0.0
    r = np.tanh(rng.normal(0.2, 0.1, size=(C, D)))
    corr = np.ones((C, D, 2, 2))
    corr[:, :, 0, 1] = corr[:, :, 1, 0] = r
    ds = xr.Dataset(
        {
            "mu": (("chain", "draw", "parameter"), mu),
            "omega": (("chain", "draw", "parameter"), omega),
            "corr": (("chain", "draw", "parameter", "parameter_b"), corr),
        },
        coords={"parameter": ["a", "b"], "parameter_b": ["a", "b"]},
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((C, D), bool))})
    idata = xr.DataTree.from_dict({"posterior": ds, "sample_stats": stats})
    idata.attrs["fixed_parameters"] = json.dumps(["b"] if fixed_b else [])
    return SimpleNamespace(posterior=ds, idata=idata, approximate=False)


def test_a_healthy_fit_with_declared_constants_passes():
    # corr's unit diagonal and a fixed effect's omega (0) have NaN R-hat by construction
    quality = global_fit_quality(_post(fixed_b=True), TrustThresholds())
    assert quality.ok, quality.reasons


def test_an_undefined_population_rhat_is_not_converged():
    # (Chains each stuck at their own point give arviz-stats' rank-normalised R-hat a huge
    # finite value, judged by the threshold as before.)
    quality = global_fit_quality(_post(stuck=True), TrustThresholds())
    assert not quality.ok
    assert quality.reasons == (
        "The population fit did not converge: R-hat is undefined (NaN or infinite) for 1 "
        "quantities (first mu[b]), whose draws do not vary within chains.",
    )


def _twin(r_hat: float, method: str = "nuts-conditional", n_chains: int = 4):
    rec = UpdateRecord(
        time="2026-12-07T23:00:00+00:00", rows_added=1, method=method, r_hat=r_hat,
        ess_bulk=1000.0, divergences=0, n_draws=2000, seconds=1.0,
        pareto_k=0.2 if method == "importance" else float("nan"),
    )  # fmt: skip
    obs = pd.DataFrame({"time": np.arange(6.0), "output": "conc", "censored": False})
    model = SimpleNamespace(parameter_names=("CL", "V"), output_names=("conc",))
    return SimpleNamespace(
        history=(rec,), observations=obs, tau=None, model=model, n_chains=n_chains,
        patient_id="P1",
    )  # fmt: skip


@pytest.mark.parametrize("r_hat", [float("nan"), float("inf")])
def test_an_update_with_undefined_rhat_is_unreliable(r_hat):
    trust = reassess_twin(_twin(r_hat))
    assert trust.status == Status.UNRELIABLE
    assert any(f"R-hat undefined ({r_hat})" in r for r in trust.fit_reasons)


@pytest.mark.parametrize(
    "twin", [_twin(1.001), _twin(float("nan"), "importance"), _twin(float("nan"), n_chains=1)]
)
def test_an_update_without_an_rhat_by_construction_is_not_judged_by_it(twin):
    # One NUTS chain or importance sampling has no R-hat (NaN by construction).
    trust = reassess_twin(twin)
    assert trust.status == Status.LIMITED  # not assessed against a cohort: limited at best
    assert not any("R-hat" in r for r in trust.fit_reasons)
