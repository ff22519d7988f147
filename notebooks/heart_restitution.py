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
# # A heart electrophysiology twin: APD restitution and alternans
#
# Per patient: steady-state action potential durations (APD90) measured at several
# pacing cycle lengths. The twin predicts the restitution curve with intervals and the
# probability of APD alternans (restitution slope > 1) at a faster rate, with its trust
# status. **The model's "time" axis is the pacing cycle length in ms.** Test data come from
# a more detailed cell model (Fenton-Karma), so the truth is known.

# %%
import os
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import twin_uq as tq
from twin_uq.report.heart import restitution_report
from twin_uq.testing.fenton_karma import simulate_restitution_cohort

tq.configure()
MAX_DRAWS = int(os.environ.get("TWIN_UQ_MAX_DRAWS", "1000"))
OUT = Path(os.environ.get("TWIN_UQ_NOTEBOOK_OUT", tempfile.mkdtemp(prefix="twin_uq_")))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Virtual patients paced down a restitution protocol
# 20 beats at each cycle length, slowest first; the APD90 of the last beats is measured
# with noise (SD 4 ms). The truth of alternans at 400 ms comes from the cell model itself.

# %%
BCLS = (1000.0, 850.0, 700.0, 600.0, 520.0, 460.0)
sim = simulate_restitution_cohort(12, BCLS, seed=7, alternans_bcl=400.0)
table = sim.data
# One patient is measured at two cycle lengths only: the trust report must say so.
sparse = table["id"].eq("P000") & ~table["time"].isin([1000.0, 600.0])
cohort = tq.read_cohort(table[~sparse], time_unit="ms")  # TIME = pacing cycle length (ms)
table[~sparse].head(8)

# %% [markdown]
# ## Fit the cohort (NUTS)

# %%
model = tq.load_model("mitchell_schaeffer_restitution")
draws = min(500, MAX_DRAWS)
post = tq.fit(model, cohort, chains=2, warmup=draws, draws=draws, seed=0, progress=False)
print(post.diagnostics())

# %% [markdown]
# ## The restitution curve of one patient, with 90 % intervals

# %%
pid = "P003"
twin = post.twin(pid)
grid = np.linspace(400.0, 1000.0, 25)
curve = twin.predict(grid, interval=0.9)
obs = twin.observations
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.fill_between(
    grid,
    curve["lower"].values[0],
    curve["upper"].values[0],
    alpha=0.3,
    label="90 % predictive interval",
)
ax.plot(grid, curve["median"].values[0], label="median")
ax.plot(obs["time"], obs["value"], "o", label="measured")
ax.set_xlabel("pacing cycle length (ms)")
ax.set_ylabel("steady-state APD90 (ms)")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "restitution_curve.png", dpi=100)

# %% [markdown]
# ## Probability of alternans at 400 ms, with its Monte Carlo error and the twin's trust

# %%
restitution = sys.modules[type(model).__module__]
trust = post.trust()
for p in ("P000", pid):
    a = restitution.alternans_probability(post.twin(p), 400.0)
    truth = bool(sim.truth.set_index("id").loc[p, "alternans"])
    print(
        f"{p}: P(slope > 1 at 400 ms) = {a['probability']:.2f} ± {a['mcse']:.2f} (MCSE); "
        f"slope {a['slope_median']:.2f} [{a['slope_lower']:.2f}, {a['slope_upper']:.2f}]; "
        f"cell model alternates: {truth}; trust: {trust[p].status}"
    )
print(trust["P000"])

# %% [markdown]
# ## The clinician report's restitution section
# The restitution curve with its intervals, the alternans probability at 400 ms with its
# MCSE and the slope's interval, under the twin's trust status.

# %%
page = restitution_report(twin, OUT / f"{pid}-restitution.html", trust=trust[pid])
print(page.name, page.stat().st_size, "bytes")
