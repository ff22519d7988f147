"""The two questions of trust answered apart: can the fit be relied on, does the patient's
own data inform the twin (issue #28: one global problem must not hide the data signal)."""

from types import SimpleNamespace

import pytest

from twin_uq.trust import Status, TrustThresholds, assess_cohort
from twin_uq.trust.assess import _data_rules


def _row(**extra):
    return dict(n_obs=2, n_censored=0, span_fraction=1.0) | extra


def test_a_pinned_parameter_is_named_and_not_called_uninformative():
    # CL pinned down, V and ka not narrowed (ka even "negative", i.e. none): the old rule
    # (median contraction 0.05 < 0.2) called this "barely narrowed the parameters".
    contraction = {"CL": 0.90, "V": 0.05, "ka": -0.09}
    post = SimpleNamespace(model=None)
    v = _data_rules(_row(contraction_median=0.05), contraction, (), post, TrustThresholds())
    assert v.status is Status.LIMITED
    text = " ".join(v.reasons)
    assert "Well informed: CL (0.90)" in text
    assert "V (0.05)" in text and "ka (none: -0.09)" in text
    assert "barely" not in text


def test_no_parameter_narrowed_is_uninformed():
    contraction = {"CL": 0.10, "V": 0.05, "ka": -0.09}
    post = SimpleNamespace(model=None)
    v = _data_rules(_row(contraction_median=0.05), contraction, (), post, TrustThresholds())
    assert v.status is Status.INSUFFICIENT
    assert "narrowed none of the parameters" in v.reasons[0]


@pytest.fixture(scope="module")
def no_fit_converges(oral_fit):
    """The trust report under an R-hat bound no fit meets (shared by the two tests below)."""
    return assess_cohort(oral_fit, TrustThresholds(rhat_max=1.0))


def test_a_global_convergence_failure_keeps_the_data_verdicts(no_fit_converges, oral_sim):
    # An R-hat bound no fit meets makes every twin "unreliable"; the data verdicts still
    # tell the richly sampled patients from the data-poor ones.
    report = no_fit_converges
    table = report.table
    assert (table["status"] == "unreliable").all()
    assert (table["fit_verdict"] == "unreliable").all()
    sampling = oral_sim.table.groupby("id")["sampling"].first()
    sampling.index = sampling.index.astype(str)
    rich = table["data_verdict"][sampling.loc[table.index] == "rich"]
    poor = table["data_verdict"][sampling.loc[table.index] != "rich"]
    assert (rich == "informed").mean() > (poor == "informed").mean()
    assert (poor != "informed").all()
    a = report[table.index[0]]
    assert a.fit_reasons and set(a.fit_reasons) <= set(a.reasons)
    assert f"fit: unreliable; patient's data: {a.data_verdict}" in str(a)


def test_the_audit_compares_groups_on_data_sufficiency_when_every_twin_is_flagged(
    oral_fit, no_fit_converges
):
    import twin_uq as tq

    report = no_fit_converges
    res = tq.audit(oral_fit, by="sampling", trust=report, n_boot=400, seed=1)
    rows = res.table
    flagged = rows[rows["metric"] == "flagged"]
    data = rows[rows["metric"] == "data_flagged"]
    assert (flagged["estimate"] > 0.9).all()  # everyone flagged: no contrast left there
    by_group = data.set_index("group")["estimate"]
    assert by_group.filter(like="sparse").iloc[0] > by_group.filter(like="rich").iloc[0]
