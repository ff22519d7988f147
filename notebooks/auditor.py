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
# # Fairness auditor: do twins serve every subgroup equally well?
#
# A synthetic cohort where a third of the patients are data-poor (2 samples) and older.
# The fit sees the first 12 hours; later observations are held out, so the audit can
# compare coverage and error, not only interval widths and flags.

# %%
import os
import tempfile
from pathlib import Path

import twin_uq as tq

tq.configure()  # float64 and parallel chains, before the first JAX computation

MAX_DRAWS = int(os.environ.get("TWIN_UQ_MAX_DRAWS", "1000"))
DRAWS = min(1000, MAX_DRAWS)
OUT = Path(os.environ.get("TWIN_UQ_NOTEBOOK_OUT", tempfile.mkdtemp(prefix="twin_uq_")))
OUT.mkdir(parents=True, exist_ok=True)

design = tq.Design(
    times=[0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0, 36.0],
    doses=[tq.Bolus(0.0, 100.0, 1)],
    sparse_fraction=0.33,
    sparse_times=[2.0, 24.0, 36.0],
    covariates={
        "WT": ("lognormal", 70.0, 0.2),
        "AGE": ("uniform", 25.0, 65.0),
        "SEX": ("categorical", ("F", "M"), (0.5, 0.5)),
    },
    sparse_covariate_shift={"AGE": 15.0},
)
sim = tq.simulate_cohort("one_compartment_oral", 18, design, seed=7)
train, later = sim.cohort.split_at(12.0)
post = tq.fit("one_compartment_oral", train, chains=2, warmup=DRAWS, draws=DRAWS, seed=0, progress=False)
print(post.diagnostics())

# %% [markdown]
# ## The audit
# Groups by sampling density, sex and age band; every estimate has a Bayesian-bootstrap
# interval over patients, and a difference counts as detected only when its interval
# excludes zero and both groups are large enough.

# %%
res = tq.audit(post, by=["sampling", "SEX", "AGE"], bins={"AGE": [0.0, 60.0, 120.0]}, holdout=later, n_boot=500)
for finding in res.findings:
    print("-", finding)

# %%
res.table.head(12)

# %% [markdown]
# What the audit cannot tell:

# %%
for item in res.limitations:
    print("-", item)
res.to_html(OUT / "audit.html")
