"""Autocorrelated residuals count for fewer measurements in the trust rules."""

from types import SimpleNamespace

from twin_uq.trust import Status, TrustThresholds
from twin_uq.trust.assess import _data_rules


def _rules(**row):
    contraction = {"CL": 0.9, "V": 0.8, "ka": 0.7}
    row = dict(n_censored=0, span_fraction=1.0, contraction_median=0.8) | row
    return _data_rules(row, contraction, (), SimpleNamespace(model=None), TrustThresholds())


def test_a_dense_autocorrelated_trace_worth_few_measurements_is_limited():
    # 40 points worth 2.4 independent ones for 3 parameters
    v = _rules(n_obs=40, n_eff=2.4)
    assert v.status is Status.LIMITED
    assert "Only 40 measurement(s) (worth 2.4 independent ones) for 3 parameters" in v.reasons[0]


def test_independent_residuals_count_every_measurement():
    assert _rules(n_obs=40, n_eff=40.0).status is not Status.LIMITED
    assert _rules(n_obs=40).status is not Status.LIMITED  # tables without the column
    v = _rules(n_obs=2, n_eff=2.0)
    assert v.reasons == [
        "Only 2 measurement(s) for 3 parameters; the simulation relies partly on the population average."
    ]
