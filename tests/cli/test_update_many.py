"""``twin-uq update-many``: many twins updated on Dask workers from the command line."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cli_helpers import one_error_line
from optional_deps import require


@pytest.fixture(scope="module")
def saved_fit(oral_fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    oral_fit.save(path)
    return path


def new_rows(oral_sim, ids) -> pd.DataFrame:
    """A later observation of each patient: their last one, repeated one hour later."""
    t = oral_sim.table
    obs = t[(t["evid"] == 0) & t["id"].astype(str).isin(ids)]
    last = obs.groupby("id", sort=False).tail(1).copy()
    last["time"] = last["time"] + 1.0
    return last.reset_index(drop=True)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"scheduler": "local:0"}, "write local:N with N >= 1"),
        ({"scheduler": "myhost"}, "give a scheduler address such as tcp://host:8786"),
        ({"ids": ["NOBODY"]}, "patients not in the fit"),
        ({"drop_id": True}, "needs an id column"),
        ({"bad_time": True}, "line 2, column time: time is not a number ('soon')"),
    ],
)
def test_bad_input_is_refused_before_any_work(cli, tmp_path, saved_fit, oral_sim, change, fragment):
    ids = change.get("ids", [str(oral_sim.table["id"].iloc[0])])
    rows = new_rows(oral_sim, [str(oral_sim.table["id"].iloc[0])])
    if "ids" in change:
        rows["id"] = ids[0]
    if change.get("drop_id"):
        rows = rows.drop(columns="id")
    if change.get("bad_time"):
        rows["time"] = rows["time"].astype(object)
        rows.loc[0, "time"] = "soon"
    data = tmp_path / "rows.csv"
    rows.to_csv(data, index=False)
    out = tmp_path / "updates.nc"
    scheduler = change.get("scheduler", "local:1")
    line = one_error_line(cli("update-many", saved_fit, "--data", data, "--out", out,
                              "--scheduler", scheduler))  # fmt: skip
    assert fragment in line
    assert not out.exists()


@pytest.mark.slow
def test_update_many_on_a_local_cluster(cli, tmp_path, saved_fit, oral_sim):
    """Two patients updated on a real 2-worker LocalCluster; each appears once, with draws."""
    require("distributed")
    ids = [str(i) for i in oral_sim.table["id"].unique()[:2]]
    data = tmp_path / "rows.csv"
    new_rows(oral_sim, ids).to_csv(data, index=False)
    out = tmp_path / "updates.nc"
    result = cli("update-many", saved_fit, "--data", data, "--out", out, "--scheduler", "local:2",
                 "--chains", "2", "--warmup", "200", "--draws", "200")  # fmt: skip
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert sorted(str(p) for p in ds["patient"].values) == sorted(ids)
    assert list(ds["parameter"].values) == ["ka", "CL", "V"]
    for pid in ids:
        n = int(ds["n_draws"].sel(patient=pid))
        theta = ds["theta"].sel(patient=pid).values[:n]
        assert n >= 200 and np.all(np.isfinite(theta)) and np.all(theta > 0)
    assert "2 updated twins written to" in result.output
