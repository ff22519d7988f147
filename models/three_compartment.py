"""Three-compartment intravenous pharmacokinetics (NONMEM ADVAN11, TRANS4 parameters).

The drug is injected (bolus, mg) or infused (mg/h) into the central compartment
(compartment 1: plasma and well-perfused organs), which exchanges drug with a shallow
(2) and a deep (3) peripheral compartment and eliminates it linearly. Concentrations after
a dose fall in three phases (rapid distribution, slow distribution, elimination): the
tri-exponential of anaesthetics such as propofol, remifentanil or fentanyl, and of many
antibiotics and cytotoxics given intravenously.

The solution is exact: the model is linear and the engine uses the matrix exponential of
``linear_system``. No closed-form ``transition`` is declared; see the card's "Solution"
section for why.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq


class ThreeCompartment(tq.Model):
    """IV three-compartment PK: central <-> shallow, central <-> deep, elimination from central."""

    name = "three_compartment"
    states = ("central", "peripheral1", "peripheral2")
    default_dose_cmt = 1
    covariates = ("WT",)
    covariate_defaults: ClassVar = {"WT": 70.0}

    parameters = (
        tq.Parameter(
            "CL", "L/h", 5.0, "clearance from the central compartment (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 200.0),
        ),
        tq.Parameter(
            "V1", "L", 10.0, "central volume of distribution (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(0.5, 300.0),
        ),
        tq.Parameter(
            "Q2", "L/h", 10.0, "inter-compartmental clearance, central <-> shallow (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 500.0),
        ),
        tq.Parameter(
            "V2", "L", 20.0, "shallow peripheral volume (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(0.5, 1000.0),
        ),
        tq.Parameter(
            "Q3", "L/h", 2.0, "inter-compartmental clearance, central <-> deep (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.01, 200.0),
        ),
        tq.Parameter(
            "V3", "L", 100.0, "deep peripheral volume (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(1.0, 5000.0),
        ),
    )
    outputs = (
        tq.Output(
            "concentration", "mg/L", "drug concentration in plasma (central compartment)",
            error="combined", clinical_range=(0.0, 10.0), sigma_prior_scale=(0.05, 0.2),
        ),
    )
    allometric = (
        tq.Allometric("CL", "WT", 0.75, 70.0),
        tq.Allometric("Q2", "WT", 0.75, 70.0),
        tq.Allometric("Q3", "WT", 0.75, 70.0),
        tq.Allometric("V1", "WT", 1.0, 70.0),
        tq.Allometric("V2", "WT", 1.0, 70.0),
        tq.Allometric("V3", "WT", 1.0, 70.0),
    )
    # Linear: exact matrix-exponential solution, no stiffness problems when distribution
    # (minutes) is much faster than terminal elimination (days).
    solver = tq.SolverSettings(method="exact", rtol=1e-8, atol=1e-10)

    card = tq.ModelCard(
        summary="Three-compartment intravenous pharmacokinetics, bolus or infusion (ADVAN11).",
        equations=(
            "k10 = CL/V1, k12 = Q2/V1, k21 = Q2/V2, k13 = Q3/V1, k31 = Q3/V3   (1/h)\n"
            "dA1/dt = -(k10 + k12 + k13)·A1 + k21·A2 + k31·A3 + R(t)   (central, mg)\n"
            "dA2/dt =  k12·A1 - k21·A2                                 (shallow, mg)\n"
            "dA3/dt =  k13·A1 - k31·A3                                 (deep, mg)\n"
            "concentration = A1/V1                                     (mg/L)\n"
            "R(t) = infusion rate (mg/h); a bolus D adds D to A1.\n"
            "Bolus D at t=0: C(t) = (D/V1)·Σ_i c_i·exp(-λ_i·t),\n"
            "  c_i = (k21 - λ_i)(k31 - λ_i) / Π_{j≠i}(λ_j - λ_i),\n"
            "  λ_1 > λ_2 > λ_3 > 0 the roots of\n"
            "  λ³ - (k10+k12+k13+k21+k31)·λ² + (k10·k21 + k10·k31 + k12·k31 + k13·k21\n"
            "      + k21·k31)·λ - k10·k21·k31 = 0\n"
            "Infusion R for T h: C(t) = (R/V1)·Σ_i (c_i/λ_i)·(1 - exp(-λ_i·min(t,T)))\n"
            "  ·exp(-λ_i·max(t-T, 0));  steady state R/CL."
        ),
        time_unit="h",
        assumptions=(
            "Plasma and well-perfused organs form one well-mixed central compartment; two "
            "groups of tissues (shallow, deep) equilibrate with it at different speeds.",
            "Distribution and elimination are first order (no saturation); elimination only "
            "from the central compartment; doses enter the central compartment.",
            "Clearances scale with body weight to the power 0.75, volumes proportionally "
            "(reference 70 kg).",
        ),
        limitations=(
            "Intravenous only: there is no absorption compartment (an oral dose into "
            "compartment 1 would be treated as an injection).",
            "No saturable elimination or binding, no time-varying clearance, no "
            "effect-site compartment (a PD link must be added as a separate model).",
            "Peripheral parameters (Q2, V2, Q3, V3) need rich early and late sampling; from "
            "sparse or routine samples they are poorly identifiable and the fit leans on "
            "the priors, whose typical values are generic, not drug specific.",
            "The concentration is the arterial/venous plasma concentration of the "
            "central compartment; front-end kinetics in the first minutes after a rapid "
            "bolus (mixing, recirculation) are not described.",
        ),
        references=(
            "Gibaldi M, Perrier D. Pharmacokinetics, 2nd ed. Marcel Dekker; 1982 "
            "(multicompartment models, poly-exponential solutions).",
            "Beal SL, Sheiner LB, Boeckmann AJ, Bauer RJ. NONMEM User's Guides (ADVAN11, "
            "TRANS4). Icon Development Solutions; 1989-2009.",
            "Schnider TW, Minto CF, Gambus PL, et al. The influence of method of "
            "administration and covariates on the pharmacokinetics of propofol in adult "
            "volunteers. Anesthesiology. 1998;88(5):1170-1182.",
            "Holford NHG. A size standard for pharmacokinetics. Clin Pharmacokinet. "
            "1996;30(5):329-332.",
        ),
        extra={
            "Solution": (
                "Exact, by the engine's generic matrix exponential of the 3x3 system "
                "(one 6x6 Padé exponential per time step, giving Φ and its integral Ψ). "
                "No closed-form transition() is declared: the tri-exponential needs the "
                "roots of the cubic above (NONMEM's trigonometric formula) and partial "
                "fractions dividing by root differences; the roots of this mammillary "
                "system are distinct but come arbitrarily close when the couplings are "
                "weak (small Q2, Q3) and rates coincide, where both the coefficients and "
                "the derivative of the trigonometric root formula lose accuracy without "
                "bound. The matrix exponential is accurate and differentiable everywhere; "
                "the tests check it against the tri-exponential at well-separated roots."
            ),
        },
    )

    def linear_system(self, theta):
        k10 = theta["CL"] / theta["V1"]
        k12 = theta["Q2"] / theta["V1"]
        k21 = theta["Q2"] / theta["V2"]
        k13 = theta["Q3"] / theta["V1"]
        k31 = theta["Q3"] / theta["V3"]
        z = jnp.zeros_like(k10)
        return jnp.stack(
            [
                jnp.stack([-(k10 + k12 + k13), k21, k31]),
                jnp.stack([k12, -k21, z]),
                jnp.stack([k13, z, -k31]),
            ]
        )

    def rhs(self, t, y, theta, inputs, covariates):
        return self.linear_system(theta) @ y

    def observe(self, y, theta):
        return y[0:1] / theta["V1"]
