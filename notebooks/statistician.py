# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Statistician: fit, diagnose, calibrate, check coverage
#
# A synthetic one-compartment oral cohort (so the truth is known), fitted on the first
# 12 hours of data; the later observations are held out to check forecast coverage.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import twin_uq as tq
from twin_uq.validate import run_sbc

tq.configure()  # float64 and parallel chains, before the first JAX computation

MAX_DRAWS = int(os.environ.get("TWIN_UQ_MAX_DRAWS", "1000"))
DRAWS = min(1000, MAX_DRAWS)
OUT = Path(os.environ.get("TWIN_UQ_NOTEBOOK_OUT", tempfile.mkdtemp(prefix="twin_uq_")))
OUT.mkdir(parents=True, exist_ok=True)

# %%
design = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0, 36.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    covariates={"WT": ("lognormal", 70.0, 0.2), "AGE": ("uniform", 20.0, 80.0)},
)
sim = tq.simulate_cohort("one_compartment_oral", 16, design, seed=3)
train, later = sim.cohort.split_at(12.0)
print(train.summary())

# %% [markdown]
# ## Fit and diagnose

# %%
post = tq.fit("one_compartment_oral", train, chains=2, warmup=DRAWS, draws=DRAWS, seed=0, progress=False)
diag = post.diagnostics()
print(diag)
post.population_summary()

# %% [markdown]
# ## Forecast coverage on held-out observations
# For each patient, predict the held-out times; count how often the measurement falls in
# the central interval, for several interval levels. Calibrated twins give empirical
# coverage close to nominal (with 16 patients x 2 times, within a few Monte Carlo errors).

# %%
levels = [0.5, 0.8, 0.9]
hits = {level: [] for level in levels}
for i, pid in enumerate(later.ids):
    mask = later.obs_mask[i]
    t, y = later.obs_time[i][mask], later.obs_value[i][mask]
    if t.size == 0:
        continue
    pred = post.twin(pid).predict(t, interval=0.5)
    draws_y = pred["y"].isel(output=0).values  # (draw, time)
    for level in levels:
        lo, hi = np.quantile(draws_y, [(1 - level) / 2, (1 + level) / 2], axis=0)
        hits[level].extend(((y >= lo) & (y <= hi)).tolist())
coverage = pd.DataFrame(
    {
        "nominal": levels,
        "empirical": [np.mean(hits[lv]) for lv in levels],
        "n": [len(hits[lv]) for lv in levels],
    }
)
coverage["mc_se"] = np.sqrt(coverage["nominal"] * (1 - coverage["nominal"]) / coverage["n"])
coverage

# %% [markdown]
# ## Simulation-based calibration (small)
# Each replicate draws population values from the prior, simulates, refits and records the
# rank of the truth among posterior draws. A handful of replicates only shows the
# mechanics; a real check needs hundreds (`twin-uq validate --replicates 200`).

# %%
n_rep = 3 if MAX_DRAWS < 500 else 20
sbc = run_sbc(
    "one_compartment_oral",
    tq.Design(times=[0.5, 1.0, 2.0, 4.0, 8.0, 24.0], doses=[tq.Bolus(0.0, 100.0, 1)]),
    n_patients=8,
    n_replicates=n_rep,
    n_rank_draws=min(99, DRAWS),
    fit_kwargs={"chains": 1, "warmup": min(300, DRAWS), "draws": min(300, DRAWS)},
)
sbc.ranks

# %% [markdown]
# ## The cohort report

# %%
report = tq.report.cohort(post, OUT / "cohort_report.html", sbc=sbc, coverage=coverage)
print("cohort report:", report)
