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
# # Write your own model
#
# A model is a subclass of `tq.Model`: states, parameters with units and priors, outputs,
# a right-hand side `rhs(t, y, theta, inputs, covariates)` and an `observe(y, theta)`,
# both written for one patient in JAX (`observe` has no default: a model says which
# states it measures). Here: one-compartment intravenous kinetics with saturable
# (Michaelis–Menten) elimination, written to a file and loaded exactly as
# `twin-uq fit data.csv --model saturable_iv.py` would load it.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

import twin_uq as tq

tq.configure()  # float64 and parallel chains, before the first JAX computation

MAX_DRAWS = int(os.environ.get("TWIN_UQ_MAX_DRAWS", "1000"))
OUT = Path(os.environ.get("TWIN_UQ_NOTEBOOK_OUT", tempfile.mkdtemp(prefix="twin_uq_")))
OUT.mkdir(parents=True, exist_ok=True)

# %%
SOURCE = '''
import jax.numpy as jnp

import twin_uq as tq


class SaturableIV(tq.Model):
    """One-compartment IV kinetics with Michaelis-Menten elimination."""

    name = "saturable_iv"
    states = ("central",)
    parameters = (
        tq.Parameter("Vmax", "mg/h", 10.0, "maximum elimination rate", prior_sd=0.7),
        tq.Parameter("Km", "mg/L", 2.0, "concentration at half-maximal elimination", prior_sd=0.7),
        tq.Parameter("V", "L", 40.0, "volume of distribution", prior_sd=0.5),
    )
    outputs = (tq.Output("concentration", "mg/L", "plasma concentration", error="combined"),)
    card = tq.ModelCard(
        summary="One-compartment IV kinetics with Michaelis-Menten elimination.",
        equations="dA/dt = -Vmax*C/(Km + C), C = A/V",
        time_unit="h",
    )

    def rhs(self, t, y, theta, inputs, covariates):
        c = y[0] / theta["V"]
        return jnp.stack([-theta["Vmax"] * c / (theta["Km"] + c)])

    def observe(self, y, theta):
        return y[:1] / theta["V"]
'''
path = OUT / "saturable_iv.py"
path.write_text(SOURCE)
model = tq.load_model(path)
model

# %% [markdown]
# `load_model` has already run the model checks (shapes, declared names, units, priors,
# a finite right-hand side at the typical values); `tq.fit` and `tq.simulate` run them on
# any model they are given, and a model's own tests can call them directly:

# %%
from twin_uq.testing import check_model

check_model(model)

# %% [markdown]
# ## Simulate one patient
# A 200 mg bolus: at high concentration elimination runs near `Vmax` (a straight decline),
# at low concentration it becomes first order (exponential).

# %%
times = np.linspace(0.0, 24.0, 13)
schedule = tq.Schedule.build([tq.Bolus(0.0, 200.0)])
traj = tq.simulate(model, {"Vmax": 10.0, "Km": 2.0, "V": 40.0}, schedule, times)
print(np.round(np.asarray(traj.outputs)[:, 0], 3))

# %% [markdown]
# ## A synthetic cohort with known truth, and a fit
# Recovering known values is the first check of a new model.

# %%
design = tq.Design(times=[0.5, 2.0, 4.0, 8.0, 12.0, 24.0], doses=[tq.Bolus(0.0, 200.0, 1)])
sim = tq.simulate_cohort(model, 8, design, seed=1, omega=0.2)
draws = min(500, MAX_DRAWS)
post = tq.fit(model, sim.cohort, chains=2, warmup=draws, draws=draws, seed=0, progress=False)
print(post.diagnostics())

# %%
# Population estimates (median and 90% interval) next to the values the cohort was drawn from.
print("truth:", sim.truth.typical)
post.population_summary()
