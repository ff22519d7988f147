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
# # Clinician: read a twin, compare regimens, choose a dose
#
# A fitted cohort (synthetic here) gives every patient a twin. We look at one
# well-observed patient and one with only two measurements.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

import twin_uq as tq

tq.configure()  # float64 and parallel chains, before the first JAX computation

MAX_DRAWS = int(os.environ.get("TWIN_UQ_MAX_DRAWS", "1000"))
DRAWS = min(1000, MAX_DRAWS)
OUT = Path(os.environ.get("TWIN_UQ_NOTEBOOK_OUT", tempfile.mkdtemp(prefix="twin_uq_")))
OUT.mkdir(parents=True, exist_ok=True)

design = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    sparse_fraction=0.25,
    sparse_times=[2.0, 24.0],
    covariates={"WT": ("lognormal", 70.0, 0.2)},
)
sim = tq.simulate_cohort("one_compartment_oral", 16, design, seed=5)
post = tq.fit("one_compartment_oral", sim.cohort, chains=2, warmup=DRAWS, draws=DRAWS, seed=0, progress=False)

# %% [markdown]
# ## Can I trust this twin?

# %%
trust = post.trust()
print(trust)
sparse = sorted(sim.table.loc[sim.table["sampling"] == "sparse", "id"].unique())
rich_id = next(p for p in post.patient_ids if p not in sparse)
poor_id = sparse[0]
for pid in (rich_id, poor_id):
    print(trust[pid])

# %% [markdown]
# ## Predictions always come with intervals
# The data-poor patient's interval is wider: the twin is honest about what it does not know.

# %%
times = np.array([12.0, 36.0, 48.0])
for pid in (rich_id, poor_id):
    pred = post.twin(pid).predict(times, interval=0.9)
    for t in times:
        p = pred.sel(time=t, output="concentration")
        print(f"{pid} at {t:g} h: {float(p['median']):.2f} mg/L (90% interval {float(p['lower']):.2f}-{float(p['upper']):.2f})")

# %% [markdown]
# ## What if? Two regimens for the same patient
# Both are simulated on the same posterior draws, so the comparison is paired.

# %%
twin = post.twin(rich_id)
once = [tq.Bolus(0.0, 100.0, 1)]
split = [tq.Bolus(0.0, 50.0, 1), tq.Bolus(12.0, 50.0, 1)]
crit = tq.Criterion("concentration", "min", goal="maximize")
result = twin.what_if({"100 mg once": once, "50 mg twice": split}, np.linspace(1.0, 24.0, 47), crit)
print(result.summary())

# %% [markdown]
# ## Probability of an event, and a dose choice
# Probability that the concentration exceeds 2.5 mg/L in the first day, and the
# probability that the 24 h trough lies in 0.3–1.0 mg/L for candidate doses.

# %%
print(twin.probability(tq.Event("concentration", above=2.5, within=(0.0, 24.0))).summary())
rec = twin.recommend_dose(tq.Event("concentration", above=0.3, below=1.0, at=24.0), [50.0, 100.0, 150.0])
print(rec.summary())

# %% [markdown]
# ## The clinician report (one HTML file)

# %%
path = tq.report.patient(post, rich_id, OUT / f"report_{rich_id}.html", schedules={"once": once, "twice": split})
print("report:", path)
