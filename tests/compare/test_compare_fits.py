"""tq.compare, tq.average and twin-uq compare on two fits of one cohort (NUTS and Laplace).

The fits are the session's shared ``oral_fit`` and ``oral_laplace`` (tests/conftest.py).
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from marginal_checks import check_marginal

import twin_uq as tq
from twin_uq.compare import CohortMismatchError, check_same_cohort
from twin_uq.compare.refit import fit_method_of

COLUMNS = ["rank", "elpd", "se", "elpd_diff", "dse", "p_loo", "n_high_k", "max_k", "n_refits",
           "weight", "method", "approximate"]  # fmt: skip


@pytest.fixture(scope="module")
def pair(oral_fit, oral_laplace):
    return {"nuts": oral_fit, "laplace": oral_laplace}


@pytest.mark.parametrize("by", [pytest.param("patient", marks=pytest.mark.slow), "observation"])
def test_compare_table(pair, by):
    table = tq.compare(pair, by=by, n_inner=32)
    assert list(table.columns) == COLUMNS
    assert set(table.index) == {"nuts", "laplace"}
    assert table["elpd"].is_monotonic_decreasing
    assert table["elpd_diff"].iloc[0] == 0 and table["elpd_diff"].iloc[1] < 0
    assert table["dse"].iloc[1] > 0
    np.testing.assert_allclose(
        table["elpd_diff"].iloc[1], table["elpd"].iloc[1] - table["elpd"].iloc[0]
    )
    assert table["weight"].sum() == pytest.approx(1.0)
    assert table.loc["laplace", "approximate"] and not table.loc["nuts", "approximate"]
    assert table.attrs["by"] == by and table.attrs["approximate"]
    n = 16 if by == "patient" else int(pair["nuts"].cohort.obs_mask.sum())
    assert table.attrs["n_units"] == n


def _loglik(f, y, a, b):
    """Combined-error Normal log density summed over observations, written out."""
    sd = np.sqrt(a**2 + (b * f) ** 2)
    return np.sum(-0.5 * np.log(2 * np.pi * sd**2) - 0.5 * ((y - f) / sd) ** 2, axis=-1)


def test_marginal_likelihood_agrees_with_plain_monte_carlo(oral_fit):
    # log p(y_i | phi_s) by the posterior-fitted importance sampler vs by 20 000 draws of
    # the patient's parameters from the population at phi_s (an independent estimator),
    # within their combined Monte Carlo error.
    pid = oral_fit.patient_ids[0]
    pop = oral_fit.patient(pid).population
    mask = np.asarray(oral_fit.arrays.obs_mask[0])
    y = np.asarray(oral_fit.arrays.obs_value[0])[mask]

    def loglik(s, f):
        return _loglik(f[:, mask], y, pop.add[s, 0], pop.prop[s, 0])

    check_marginal(oral_fit, pid, loglik, (0, 777, 1500), 20000, np.random.default_rng(5))


def test_mismatched_cohorts_are_refused(oral_sim):
    cohort = oral_sim.cohort
    fewer = SimpleNamespace(cohort=cohort.select(list(cohort.ids[:15])))
    with pytest.raises(CohortMismatchError, match="P16"):
        check_same_cohort({"a": SimpleNamespace(cohort=cohort), "b": fewer})
    table = oral_sim.table.drop(columns=["sampling"]).copy()
    row = table.index[(table["id"] == "P03") & (table["evid"] == 0)][0]
    table.loc[row, "dv"] *= 1.5
    changed = SimpleNamespace(cohort=tq.read_cohort(table))
    with pytest.raises(CohortMismatchError, match="patient P03's observations"):
        check_same_cohort({"a": SimpleNamespace(cohort=cohort), "b": changed})
    with pytest.raises(tq.InputError, match="at least two"):
        tq.compare({"a": SimpleNamespace(cohort=cohort)})


def test_fit_method_is_rebuilt_from_provenance():
    method = tq.Laplace(steps=123, learning_rate=0.02, draws=77)
    record = json.dumps(method.record())
    fake = SimpleNamespace(idata=SimpleNamespace(attrs={"fit_method": record}))
    assert fit_method_of(fake) == method
    nuts = tq.NUTS(chains=2, warmup=10, draws=20, dense_mass=True)
    fake = SimpleNamespace(idata=SimpleNamespace(attrs={"fit_method": json.dumps(nuts.record())}))
    assert fit_method_of(fake) == nuts


def test_averaged_twin(pair):
    avg = tq.average(pair, weights={"nuts": 0.75, "laplace": 0.25}, n_draws=200, seed=3)
    twin = avg.twin("P02")
    assert twin.draws == {"nuts": 150, "laplace": 50}
    ds = twin.predict([1.0, 4.0, 12.0], interval=0.8)
    assert ds.sizes["draw"] == 200
    assert (ds["model"].values == "nuts").sum() == 150
    assert np.all(ds["lower"] < ds["median"]) and np.all(ds["median"] < ds["upper"])
    assert ds.attrs["approximate"] == 1
    assert set(json.loads(ds.attrs["trust"])) == {"nuts", "laplace"}
    text = twin.describe()
    assert "nuts (one_compartment_oral) 75% (150 draws)" in text and "approximate" in text
    assert list(twin.contributions["draws"]) == [150, 50]
    # The same seed picks the same draws.
    again = tq.average(pair, weights=[0.75, 0.25], n_draws=200, seed=3).twin("P02")
    np.testing.assert_array_equal(again.twins["nuts"].theta, twin.twins["nuts"].theta)
    with pytest.raises(tq.InputError, match="weights must name"):
        tq.average(pair, weights={"nuts": 1.0})


def test_cli_compare(pair, cli, tmp_path):
    paths = []
    for name, post in pair.items():
        paths.append(post.save(tmp_path / f"{name}.nc"))
    out = tmp_path / "table.csv"
    result = cli("compare", *paths, "--by", "observation", "--out", out)
    assert result.exit_code == 0, result.output
    assert "Leave-one-observation-out comparison" in result.output
    assert "nuts" in result.output and "laplace" in result.output
    assert "Approximate fits" in result.output
    assert out.exists()
    bad = cli("compare", paths[0], "--by", "visit")
    assert bad.exit_code != 0
