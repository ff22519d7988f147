"""One-compartment oral pharmacokinetics with Michaelis-Menten elimination.

A drug taken by mouth enters a gut depot (compartment 1, the default dose target), is
absorbed first-order into one well-mixed body compartment (compartment 2) and eliminated
by a saturable process (``Vmax``, ``Km``): first order with apparent clearance
``Vmax/Km`` at low concentrations, approaching the constant rate ``Vmax`` at high ones.
Intravenous doses go to compartment 2. Nonlinear: solved by an ODE solver.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq


class MichaelisMentenOral(tq.Model):
    """Oral one-compartment PK with saturable elimination: depot -> central -> MM."""

    name = "michaelis_menten_oral"
    states = ("depot", "central")
    default_dose_cmt = 1
    covariates = ("WT",)
    covariate_defaults: ClassVar = {"WT": 70.0}

    parameters = (
        tq.Parameter(
            "ka", "1/h", 1.0, "first-order absorption rate constant from the gut",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(0.05, 10.0),
        ),
        tq.Parameter(
            "Vmax", "mg/h", 20.0, "apparent maximum elimination rate (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 2000.0),
        ),
        tq.Parameter(
            "Km", "mg/L", 4.0, "concentration at half the maximum elimination rate",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.01, 500.0),
        ),
        tq.Parameter(
            "V", "L", 50.0, "apparent volume of distribution (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(2.0, 500.0),
        ),
    )
    outputs = (
        tq.Output(
            "concentration", "mg/L", "drug concentration in plasma",
            error="combined", clinical_range=(0.0, 20.0), sigma_prior_scale=(0.1, 0.2),
        ),
    )
    allometric = (
        tq.Allometric("Vmax", "WT", 0.75, 70.0),
        tq.Allometric("V", "WT", 1.0, 70.0),
    )
    # Nonlinear: an explicit adaptive solver (not stiff at plausible parameters).
    solver = tq.SolverSettings(method="tsit5", rtol=1e-8, atol=1e-10, max_steps=4096)

    card = tq.ModelCard(
        summary="One-compartment oral pharmacokinetics with Michaelis-Menten elimination.",
        equations=(
            "C = A2/V                                       (mg/L)\n"
            "dA1/dt = -ka·A1                                (depot, mg)\n"
            "dA2/dt =  ka·A1 - Vmax·C/(Km + C)              (central, mg)\n"
            "concentration = C\n"
            "C << Km: the one_compartment_oral model with CL = Vmax/Km;\n"
            "C >> Km: zero-order elimination at the rate Vmax\n"
            "average steady state of a dose D every tau (if D/tau < Vmax):\n"
            "  C_ss,avg ~ Km·(D/tau)/(Vmax - D/tau)"
        ),
        time_unit="h",
        assumptions=(
            "The body behaves as one well-mixed compartment; absorption is first order "
            "and complete (bioavailability 1: Vmax and V are apparent values Vmax/F, V/F).",
            "Elimination by a single saturable pathway with Michaelis-Menten kinetics; no "
            "parallel first-order pathway; no saturable first-pass metabolism.",
            "Vmax scales with body weight to the power 0.75, V proportionally (reference "
            "70 kg); Km does not depend on size.",
        ),
        limitations=(
            "Vmax and Km are separately identifiable only when concentrations span the "
            "range around Km; with concentrations far below Km only Vmax/Km is informed.",
            "ka is informed only by samples during absorption; flip-flop kinetics (ka "
            "slower than elimination) cannot be told apart without intravenous data.",
            "No lag time, no parallel linear elimination, no distribution phase, no "
            "saturable absorption or first-pass effect, no enzyme induction over time.",
            "A dosing rate at or above Vmax accumulates without bound (no steady state).",
            "Nonlinear: solved by an ODE solver (tolerance rtol 1e-8), not exactly; "
            "steady-state doses (SS=1) need a converged pre-run.",
        ),
        references=(
            "Wagner JG. Properties of the Michaelis-Menten equation and its integrated form "
            "which are useful in pharmacokinetics. J Pharmacokinet Biopharm. "
            "1973;1(2):103-121.",
            "Ludden TM, Allen JP, Valutsky WA, et al. Individualization of phenytoin dosage "
            "regimens. Clin Pharmacol Ther. 1977;21(3):287-293.",
            "Beal SL, Sheiner LB, Boeckmann AJ, Bauer RJ. NONMEM User's Guides (ADVAN6, "
            "general nonlinear models). Icon Development Solutions; 1989-2009.",
            "Holford NHG. A size standard for pharmacokinetics. Clin Pharmacokinet. "
            "1996;30(5):329-332.",
        ),
    )

    def rhs(self, t, y, theta, inputs, covariates):
        c = y[1] / theta["V"]
        absorbed = theta["ka"] * y[0]
        return jnp.stack([-absorbed, absorbed - theta["Vmax"] * c / (theta["Km"] + c)])

    def observe(self, y, theta):
        return y[1:2] / theta["V"]
