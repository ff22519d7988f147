"""One-compartment intravenous pharmacokinetics (NONMEM ADVAN1).

The drug is injected (bolus, mg) or infused (mg/h) into a single well-mixed body
compartment (compartment 1) and eliminated linearly. Repeated doses superpose.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq


class OneCompartmentIV(tq.Model):
    """IV one-compartment PK: central -> elimination."""

    name = "one_compartment_iv"
    states = ("central",)
    default_dose_cmt = 1
    covariates = ("WT",)
    covariate_defaults: ClassVar = {"WT": 70.0}

    parameters = (
        tq.Parameter(
            "CL", "L/h", 5.0, "clearance from plasma (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 100.0),
        ),
        tq.Parameter(
            "V", "L", 50.0, "volume of distribution (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(2.0, 500.0),
        ),
    )
    outputs = (
        tq.Output(
            "concentration", "mg/L", "drug concentration in plasma",
            error="combined", clinical_range=(0.0, 4.0), sigma_prior_scale=(0.05, 0.2),
        ),
    )
    allometric = (
        tq.Allometric("CL", "WT", 0.75, 70.0),
        tq.Allometric("V", "WT", 1.0, 70.0),
    )
    # Linear: exact matrix-exponential solution (here a scalar exponential).
    solver = tq.SolverSettings(method="exact", rtol=1e-8, atol=1e-10)

    card = tq.ModelCard(
        summary="One-compartment intravenous pharmacokinetics, bolus or infusion (ADVAN1).",
        equations=(
            "dA1/dt = -(CL/V)·A1 + R(t)      (central, mg; R = infusion rate, mg/h)\n"
            "concentration = A1/V            (mg/L)\n"
            "bolus D: C(t) = D/V·exp(-k·t);  infusion R: C(t) -> R/CL at steady state"
        ),
        time_unit="h",
        assumptions=(
            "The body behaves as one well-mixed compartment; distribution is instantaneous.",
            "Elimination is first order (no saturation).",
            "Clearance scales with body weight to the power 0.75, volume proportionally "
            "(reference 70 kg).",
        ),
        limitations=(
            "Does not describe a distinct distribution phase after IV doses (use "
            "two_compartment).",
            "No saturable elimination, no time-varying clearance (e.g. changing renal "
            "function).",
        ),
        references=(
            "Gibaldi M, Perrier D. Pharmacokinetics, 2nd ed. Marcel Dekker; 1982.",
            "Beal SL, Sheiner LB, Boeckmann AJ, Bauer RJ. NONMEM User's Guides (ADVAN1). "
            "Icon Development Solutions; 1989-2009.",
        ),
    )

    def linear_system(self, theta):
        return jnp.reshape(-theta["CL"] / theta["V"], (1, 1))

    def transition(self, theta, dt):
        """Closed form of ``exp(A dt)`` and its integral (replaces the matrix exponential)."""
        k = theta["CL"] / theta["V"]
        phi = jnp.exp(-k * dt).reshape(1, 1)
        psi = (-jnp.expm1(-k * dt) / k).reshape(1, 1)
        return phi, psi

    def rhs(self, t, y, theta, inputs, covariates):
        return self.linear_system(theta) @ y

    def observe(self, y, theta):
        return y[0:1] / theta["V"]
