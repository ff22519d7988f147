"""Report fixtures: doctored copies of the shared fit (no refitting) and a browser.

``doctored(post, rename=..., drop_observations=...)`` returns a CohortPosterior whose
patient ids are renamed and/or whose chosen patients lose all their measurements (the
data they no longer have are masked everywhere the trust assessment and the reports
look), so hostile ids and data-free patients are tested without another compile.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from twin_uq.data import read_cohort
from twin_uq.inference import CohortPosterior
from twin_uq.inference.prepare import prepare_fit

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def doctored(post, rename=None, drop_observations=()):
    rename = dict(rename or {})
    ids = [rename.get(p, p) for p in post.patient_ids]
    groups = {}
    for node in post.idata.subtree:
        ds = node.to_dataset(inherit=False)
        if "patient" in ds.coords:
            ds = ds.assign_coords(patient=np.asarray(ids, dtype=object))
        groups[node.path] = ds
    drop = [rename.get(p, p) for p in drop_observations]
    for name in drop:
        cd = groups["/constant_data"]
        mask = cd["obs_mask"].copy()
        mask.loc[dict(patient=name)] = False
        groups["/constant_data"] = cd.assign(obs_mask=mask)
        y = groups["/observed_data"]["y"].copy()
        y.loc[dict(patient=name)] = np.nan
        groups["/observed_data"] = groups["/observed_data"].assign(y=y)
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = dict(post.idata.attrs)
    table = post.cohort.table.copy()
    table["id"] = table["id"].map(lambda p: rename.get(p, p))
    is_obs = (table["evid"] == 0) & (table["mdv"] == 0)
    table = table[~(is_obs & table["id"].isin(drop))]
    cohort = read_cohort(table.reset_index(drop=True), name=post.cohort.source)
    prepared = prepare_fit(post.prepared.spec, cohort, post.prepared.structure.settings)
    return CohortPosterior(idata=tree, model=post.model, cohort=cohort, prepared=prepared)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by playwright (skipped when either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    import shutil

    exe = shutil.which("chromium") or "/usr/bin/chromium"
    if not shutil.os.path.exists(exe):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=BROWSER_ARGS)
        yield b
        b.close()
