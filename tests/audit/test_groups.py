"""Groups from covariates, labels, escaping in HTML (no fit needed)."""

import numpy as np
import pandas as pd
import pytest

from twin_uq.audit import audit_metrics
from twin_uq.audit.groups import make_groupings


def _cov(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "AGE": rng.uniform(20, 90, n),
            "SEX": pd.Categorical(rng.choice(["F", "M"], n)),
            "STAGE": rng.choice([1.0, 2.0, 3.0], n),
        },
        index=[f"P{i:02d}" for i in range(n)],
    )


def test_bins_give_readable_bands_and_outside_groups():
    cov = _cov()
    cov.loc["P00", "AGE"] = 130.0
    (g,) = make_groupings(cov, "AGE", bins={"AGE": [0, 65, 120]})
    assert set(g.order) == {"AGE 0–65", "AGE 65–120", "AGE > 120"}
    assert g.labels["P00"] == "AGE > 120"
    young = cov.index[cov["AGE"] < 65]
    assert (g.labels[young] == "AGE 0–65").all()


def test_auto_quantile_bands_missing_values_and_discrete_numbers():
    cov = _cov()
    cov.loc["P01", "AGE"] = np.nan
    age, stage, sex = make_groupings(cov, ["AGE", "STAGE", "SEX"], n_bands=3)
    assert len(age.order) == 4 and age.order[-1] == "AGE missing"
    assert age.labels["P01"] == "AGE missing"
    assert age.sizes().sum() == 40 and age.sizes().drop("AGE missing").min() >= 12
    assert stage.order == ("STAGE = 1", "STAGE = 2", "STAGE = 3")
    assert sex.order == ("SEX = F", "SEX = M")


def test_intersections_and_errors():
    gs = make_groupings(_cov(), ["SEX", "STAGE"], intersections=True)
    assert [g.name for g in gs] == ["SEX", "STAGE", "SEX × STAGE"]
    assert gs[2].labels.iloc[0].count(" & ") == 1 and gs[2].sizes().sum() == 40
    with pytest.raises(ValueError, match=r"Unknown covariate column.*'WT'"):
        make_groupings(_cov(), "WT")
    with pytest.raises(ValueError, match="increasing edges"):
        make_groupings(_cov(), "AGE", bins={"AGE": [65, 0]})


def _metrics(ids, rng):
    return pd.DataFrame(
        {
            "n_obs": rng.integers(2, 9, len(ids)),
            "flagged": (rng.random(len(ids)) < 0.3).astype(float),
            "width": rng.lognormal(0, 0.3, len(ids)),
        },
        index=ids,
    )


def test_group_labels_are_escaped_in_html(tmp_path):
    rng = np.random.default_rng(3)
    cov = _cov(30)
    evil = "<script>alert('x')</script>"
    cov["SITE"] = np.where(rng.random(30) < 0.5, evil, "A & B")
    res = audit_metrics(_metrics(cov.index, rng), cov, by="SITE", reference="A & B", n_boot=200)
    html = res.to_html(tmp_path / "a.html")
    assert "<script" not in html
    assert "&lt;script&gt;" in html and "A &amp; B" in html
    assert any(evil in f for f in res.findings)  # plain text keeps the label as recorded


def test_reference_choice_and_unknown_reference():
    rng = np.random.default_rng(4)
    cov = _cov()
    res = audit_metrics(_metrics(cov.index, rng), cov, by="SEX", reference="M", n_boot=200)
    assert set(res.disparities["reference"]) == {"SEX = M"}
    with pytest.raises(ValueError, match="not one of its groups"):
        audit_metrics(_metrics(cov.index, rng), cov, by="SEX", reference={"SEX": "X"})
