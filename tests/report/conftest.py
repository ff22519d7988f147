"""Report fixtures: doctored copies of the shared fit (no refitting) and a browser.

``doctored(post, rename=..., drop_observations=...)`` returns a CohortPosterior whose
patient ids are renamed and/or whose chosen patients lose all their measurements (the
data they no longer have are masked everywhere the trust assessment and the reports
look), so hostile ids and data-free patients are tested without another compile.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from optional_deps import require, require_executable

from twin_uq.data import read_cohort
from twin_uq.inference.prepare import prepare_fit
from twin_uq.posterior import CohortPosterior
from twin_uq.validate import SBCResult

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
    """Headless Debian chromium driven by playwright (optional: see tests/optional_deps.py)."""
    sync_api = require("playwright.sync_api")
    exe = require_executable("chromium", "/usr/bin/chromium", hint="apt-get install chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=BROWSER_ARGS)
        yield b
        b.close()


HOSTILE_ID = "<script>alert(1)</script>"

#: Relaxed convergence thresholds: the data-free patient must read "insufficient" whatever
#: the short shared fit's R-hat, ESS or a few divergences (a fit-level "unreliable" would
#: otherwise take precedence).
RELAXED = {
    "rhat_max": 1.1,
    "ess_min": 50.0,
    "ess_per_chain": 25.0,
    "max_divergence_fraction": 0.02,
}


#: Made-up SBC ranks (one failed replicate) and forecast coverage for the cohort report.
SBC_EXAMPLE = SBCResult(
    ranks=pd.DataFrame({"mu[CL]": [3, 50, 97, 20, 70, 40], "omega[CL]": [10, 90, 55, 30, 60, 5]}),
    n_rank_draws=99,
    failed=((6, "solver failed"),),
)
COVERAGE_EXAMPLE = pd.DataFrame(
    {
        "nominal": [0.5, 0.8, 0.9],
        "empirical": [0.48, 0.82, 0.88],
        "lower": [0.4, 0.74, 0.82],
        "upper": [0.56, 0.88, 0.93],
    }
)


@pytest.fixture(scope="session")
def reports(oral_fit, tmp_path_factory):
    """Every report the tests look at, rendered once: paths by name (sizes printed)."""
    import twin_uq as tq

    out = tmp_path_factory.mktemp("reports")
    hostile = doctored(oral_fit, rename={"P03": HOSTILE_ID}, drop_observations=["P05"])
    paths = {
        "patient": tq.report.patient(
            oral_fit,
            "P01",
            out / "p01.html",
            forecast_times=[14.0, 30.0],
            schedules={"current": None, "double": [tq.Bolus(0.0, 200.0, 1)]},
            dose_target=tq.Event("concentration", above=0.5, below=3.0, at=12.0),
            draws=200,
        ),
        "no_data": tq.report.patient(
            hostile, "P05", out / "p05.html", thresholds=RELAXED, draws=200
        ),
        "hostile_patient": tq.report.patient(hostile, HOSTILE_ID, out / "hostile.html", draws=200),
        # with SBC ranks and forecast coverage: one cohort report serves every section test
        "cohort": tq.report.cohort(
            hostile, out / "cohort.html", sbc=SBC_EXAMPLE, coverage=COVERAGE_EXAMPLE
        ),
    }
    for name, p in paths.items():
        print(f"report {name}: {p.stat().st_size / 1024:.0f} KiB")
    paths["hostile_fit"] = hostile
    return paths


def load_in_browser(browser, path, screenshot):
    """Open ``path`` from disk; returns page text, HTML, console errors, requests, dialogs."""
    page = browser.new_page(viewport={"width": 1000, "height": 1300})
    errors, requests, dialogs = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    url = path.resolve().as_uri()
    page.goto(url, wait_until="load")
    page.screenshot(path=str(screenshot), full_page=True)
    result = dict(
        text=page.inner_text("body"),
        html=page.content(),
        errors=errors,
        requests=requests,
        dialogs=dialogs,
        url=url,
        lang=page.get_attribute("html", "lang"),
    )
    page.close()
    return result


def assert_not_blank(png):
    """The screenshot shows something: many distinct grey levels, not one flat colour."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert img.shape[0] > 800
    assert img.std() > 15.0, f"screenshot {png} looks blank (std {img.std():.1f})"
    dark = (img < 128).mean()
    assert 0.01 < dark < 0.6, f"screenshot {png}: {100 * dark:.1f}% dark pixels"
