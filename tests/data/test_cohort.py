"""Cohort views and sub-cohorts: select, split_at, schedule, xarray; padding properties."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from twin_uq.data import Cohort, CohortError, read_cohort
from twin_uq.simulate.schedule import Bolus

HOSPITAL = Path(__file__).parent / "files" / "hospital_cohort.csv"


@pytest.fixture(scope="module")
def hospital() -> Cohort:
    return read_cohort(HOSPITAL)


def observed(c: Cohort, k: int) -> list[tuple[float, float]]:
    m = c.obs_mask[k]
    return list(zip(c.obs_time[k][m].tolist(), c.obs_value[k][m].tolist(), strict=True))


# ---- select ------------------------------------------------------------------------------------


def test_select_keeps_given_order(hospital):
    sub = hospital.select(["H-0388", "H-0042"])
    assert sub.ids == ("H-0388", "H-0042")
    assert observed(sub, 0) == observed(hospital, hospital.index("H-0388"))
    assert sub.boluses[1] == hospital.boluses[0]
    assert sub.covariates.loc["H-0388", "WT"] == 101.0
    # categories stay those of the whole cohort
    assert list(sub.covariates["SEX"].cat.categories) == ["F", "M"]
    assert sub.obs_mask.shape == (2, 4)


def test_select_unknown_ids_suggest_close_matches(hospital):
    with pytest.raises(CohortError, match=r"no patient 'H-0024' \(did you mean 'H-0042'"):
        hospital.select(["H-0042", "H-0024"])
    with pytest.raises(CohortError, match="given twice"):
        hospital.select(["H-0042", "H-0042"])


# ---- split_at ----------------------------------------------------------------------------------


def test_split_at_keeps_doses_and_splits_observations(hospital):
    train, holdout = hospital.split_at(11.5)
    assert train.ids == holdout.ids == hospital.ids
    assert train.boluses == holdout.boluses == hospital.boluses
    assert train.infusions == holdout.infusions == hospital.infusions
    for k in range(hospital.n_patients):
        before = [o for o in observed(hospital, k) if o[0] <= 11.5]
        after = [o for o in observed(hospital, k) if o[0] > 11.5]
        assert observed(train, k) == before
        assert observed(holdout, k) == after
    assert observed(train, 0) == [(1.0, 4.1), (4.0, 6.8), (11.5, 2.2)]
    assert holdout.obs_censored[0, 0]  # the censored t=36 row went to holdout
    # non-observation rows (MDV, EVID=2) stay in both
    assert len(train.excluded) == len(holdout.excluded) == 3


# ---- schedule ----------------------------------------------------------------------------------


def test_schedule_of_one_patient(hospital):
    s = hospital.schedule("H-0501")
    assert s.boluses() == [Bolus(t, 500.0, 1) for t in (0.0, 12.0, 24.0, 36.0)]
    (inf,) = s.infusions()
    assert (inf.start, inf.rate, inf.cmt) == (0.0, 400.0, 2)
    assert inf.duration == pytest.approx(0.5)
    assert s.bolus_time.ndim == 1


def test_schedule_with_signal_knots_from_covariate(hospital):
    s = hospital.schedule("H-0213", signals=["wt"])  # column match is case-insensitive
    m = np.asarray(s.signal_mask)
    np.testing.assert_array_equal(np.asarray(s.signal_time)[m], [0, 2, 10, 26, 48])
    np.testing.assert_array_equal(np.asarray(s.signal_value)[m, 0], [55, 55, 57, 57, 57])


def test_signals_with_different_knots_share_union_grid():
    df = pd.DataFrame(
        {
            "ID": ["a"] * 4,
            "TIME": [0.0, 1.0, 2.0, 4.0],
            "DV": [1.0, 2.0, 3.0, 4.0],
            "INS": [10.0, np.nan, 30.0, np.nan],
            "GLU": [np.nan, 5.0, np.nan, 9.0],
        }
    )
    s = read_cohort(df).schedule("a", signals=["INS", "GLU"])
    np.testing.assert_array_equal(np.asarray(s.signal_time), [0, 1, 2, 4])
    # each signal keeps its own piecewise-linear shape (constant outside its knots)
    np.testing.assert_allclose(np.asarray(s.signal_value)[:, 0], [10, 20, 30, 30])
    np.testing.assert_allclose(np.asarray(s.signal_value)[:, 1], [5, 5, 5 + 4 / 3, 9])


def test_schedule_errors(hospital):
    with pytest.raises(CohortError, match="no signal column 'insulin'"):
        hospital.schedule("H-0042", signals=["insulin"])
    with pytest.raises(CohortError, match="not numeric"):
        hospital.schedule("H-0042", signals=["SEX"])
    with pytest.raises(CohortError, match="Patient 'H-0777' has no value of signal 'AGE'"):
        hospital.schedule("H-0777", signals=["AGE"])
    with pytest.raises(CohortError, match="no patient 'nobody'"):
        hospital.schedule("nobody")


def test_signal_with_two_values_at_one_time():
    df = pd.DataFrame({"ID": ["a", "a"], "TIME": [0.0, 0.0], "DV": [1.0, 2.0], "INS": [1.0, 2.0]})
    with pytest.raises(CohortError, match=r"different values at the same time 0 \(indexs?"):
        read_cohort(df).schedule("a", ["INS"])


# ---- xarray ------------------------------------------------------------------------------------


def test_to_xarray(hospital):
    ds = hospital.to_xarray()
    assert dict(ds.sizes) == {"patient": 6, "obs": 4}
    assert list(ds["patient"].values) == list(hospital.ids)
    np.testing.assert_array_equal(ds["obs_value"].values, hospital.obs_value)
    np.testing.assert_array_equal(ds["obs_mask"].values, hospital.obs_mask)
    assert ds["WT"].dims == ("patient",)
    assert ds["SEX"].sel(patient="H-0107").item() == "F"
    assert ds["n_bolus"].values.tolist() == [3, 0, 6, 2, 4, 2]
    assert ds.attrs["outputs"] == ["conc", "effect"]


def test_repr_and_str(hospital):
    assert "6 patients" in repr(hospital)
    assert "censored obs:          3" in str(hospital)


# ---- property: padding never mixes patients ---------------------------------------------------

ROW = st.tuples(
    st.sampled_from(["obs", "obs", "dose", "mdv", "blq"]),
    st.integers(0, 50),  # time step (0 allows ties)
    st.floats(0.01, 100, allow_nan=False),
)


@st.composite
def tables(draw):
    n_pat = draw(st.integers(1, 5))
    ids = draw(
        st.lists(
            st.one_of(st.integers(0, 999), st.text("ABCXYZ-_0123", min_size=1, max_size=6)),
            min_size=n_pat,
            max_size=n_pat,
            unique_by=lambda v: str(v),
        )
    )
    per_patient = []
    for pid in ids:
        rows = draw(st.lists(ROW, min_size=1, max_size=8))
        t = 0.0
        out = []
        for j, (kind, step, value) in enumerate(rows):
            t += step / 4
            # j makes every row unique, so no row duplicates another
            out.append((str(pid), t, kind, value + j * 1e-3))
        per_patient.append(out)
    # interleave patients while keeping each patient's row order
    order = draw(st.permutations([k for k, rows in enumerate(per_patient) for _ in rows]))
    cursors = [0] * len(per_patient)
    records = []
    for k in order:
        pid, t, kind, value = per_patient[k][cursors[k]]
        cursors[k] += 1
        records.append(
            {
                "ID": pid,
                "TIME": t,
                "DV": np.nan if kind in ("dose", "blq") else value,
                "AMT": value if kind == "dose" else np.nan,
                "EVID": 1 if kind == "dose" else 0,
                "MDV": 1 if kind in ("dose", "mdv") else 0,
                # a BLQ row has no DV: its (unique) value goes into LLOQ to keep it unique
                "LLOQ": value if kind == "blq" else np.nan,
            }
        )
    return pd.DataFrame.from_records(records), per_patient


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_padding_never_mixes_patients(data):
    df, per_patient = data
    c = read_cohort(df)
    assert c.ids == tuple(dict.fromkeys(df["ID"]))
    assert c.obs_time.shape == (len(per_patient), max(1, int(c.n_obs.max())))
    for rows in per_patient:
        k = c.index(rows[0][0])
        want_obs = [(t, v) for _, t, kind, v in rows if kind == "obs"]
        want_cens = [(t, 0.0) for _, t, kind, _ in rows if kind == "blq"]
        m = c.obs_mask[k]
        got = list(zip(c.obs_time[k][m].tolist(), c.obs_value[k][m].tolist(), strict=True))
        cens = c.obs_censored[k][m]
        assert [g for g, cz in zip(got, cens, strict=True) if not cz] == want_obs
        assert [g for g, cz in zip(got, cens, strict=True) if cz] == want_cens
        # padding: masked, zero value, -inf lloq, never-decreasing times
        assert not c.obs_censored[k][~m].any()
        assert (c.obs_value[k][~m] == 0).all()
        assert np.isneginf(c.obs_lloq[k][~m]).all()
        assert (np.diff(c.obs_time[k]) >= 0).all()
        assert [b.amount for b in c.boluses[k]] == [v for _, _, kind, v in rows if kind == "dose"]
        n_mdv = sum(kind == "mdv" for _, _, kind, _ in rows)
        assert (c.excluded["id"] == rows[0][0]).sum() == n_mdv
    assert read_cohort(c.to_dataframe()) == c
