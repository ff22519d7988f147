"""Two-compartment pharmacokinetics with first-order absorption (NONMEM ADVAN4).

Oral doses enter a gut depot (compartment 1, the default) and are absorbed first-order into
the central compartment (2, plasma and well-perfused tissue), which exchanges drug with a
peripheral compartment (3, slowly equilibrating tissue) and eliminates it linearly.
Intravenous boluses and infusions go to compartment 2.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq


class TwoCompartment(tq.Model):
    """Two-compartment PK with depot: depot -> central <-> peripheral, elimination from central."""

    name = "two_compartment"
    states = ("depot", "central", "peripheral")
    default_dose_cmt = 1
    covariates = ("WT",)
    covariate_defaults: ClassVar = {"WT": 70.0}

    parameters = (
        tq.Parameter(
            "ka", "1/h", 1.0, "first-order absorption rate constant from the gut",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(0.05, 10.0),
        ),
        tq.Parameter(
            "CL", "L/h", 5.0, "clearance from the central compartment (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 100.0),
        ),
        tq.Parameter(
            "V1", "L", 20.0, "central volume of distribution (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(1.0, 300.0),
        ),
        tq.Parameter(
            "Q", "L/h", 10.0, "inter-compartmental clearance (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 200.0),
        ),
        tq.Parameter(
            "V2", "L", 50.0, "peripheral volume of distribution (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(1.0, 1000.0),
        ),
    )
    outputs = (
        tq.Output(
            "concentration", "mg/L", "drug concentration in plasma (central compartment)",
            error="combined", clinical_range=(0.0, 4.0), sigma_prior_scale=(0.05, 0.2),
        ),
    )
    allometric = (
        tq.Allometric("CL", "WT", 0.75, 70.0),
        tq.Allometric("Q", "WT", 0.75, 70.0),
        tq.Allometric("V1", "WT", 1.0, 70.0),
        tq.Allometric("V2", "WT", 1.0, 70.0),
    )
    # Linear: the exact matrix-exponential solution is faster than an ODE solver and has
    # no stiffness issues even when distribution is much faster than elimination.
    solver = tq.SolverSettings(method="exact", rtol=1e-8, atol=1e-10)

    card = tq.ModelCard(
        summary="Two-compartment pharmacokinetics with first-order absorption (ADVAN4).",
        equations=(
            "dA1/dt = -ka·A1                                        (depot, mg)\n"
            "dA2/dt =  ka·A1 - (CL/V1)·A2 - (Q/V1)·A2 + (Q/V2)·A3   (central, mg)\n"
            "dA3/dt =  (Q/V1)·A2 - (Q/V2)·A3                        (peripheral, mg)\n"
            "concentration = A2/V1                                  (mg/L)\n"
            "IV bolus D into cmt 2: C(t) = A·exp(-α·t) + B·exp(-β·t)"
        ),
        time_unit="h",
        assumptions=(
            "Plasma and well-perfused tissue form one well-mixed compartment; slowly "
            "equilibrating tissue forms a second one.",
            "Absorption, distribution and elimination are first order (no saturation); "
            "elimination only from the central compartment.",
            "Clearances scale with body weight to the power 0.75, volumes proportionally "
            "(reference 70 kg).",
        ),
        limitations=(
            "Three or more distinct disposition phases are not represented.",
            "No absorption lag time, no saturable elimination or binding.",
            "Oral CL, V1, Q, V2 are apparent values confounded with bioavailability.",
            "Peripheral-compartment parameters are poorly identifiable from sparse samples.",
        ),
        references=(
            "Gibaldi M, Perrier D. Pharmacokinetics, 2nd ed. Marcel Dekker; 1982.",
            "Beal SL, Sheiner LB, Boeckmann AJ, Bauer RJ. NONMEM User's Guides (ADVAN4). "
            "Icon Development Solutions; 1989-2009.",
            "Holford NHG. A size standard for pharmacokinetics. Clin Pharmacokinet. "
            "1996;30(5):329-332.",
        ),
    )

    def linear_system(self, theta):
        ka = theta["ka"]
        k10 = theta["CL"] / theta["V1"]
        k12 = theta["Q"] / theta["V1"]
        k21 = theta["Q"] / theta["V2"]
        z = jnp.zeros_like(ka)
        return jnp.stack(
            [
                jnp.stack([-ka, z, z]),
                jnp.stack([ka, -(k10 + k12), k21]),
                jnp.stack([z, k12, -k21]),
            ]
        )

    def rhs(self, t, y, theta, inputs, covariates):
        return self.linear_system(theta) @ y

    def observe(self, y, theta):
        return y[1:2] / theta["V1"]
