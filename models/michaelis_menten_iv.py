"""One-compartment intravenous pharmacokinetics with Michaelis-Menten elimination.

The drug is injected (bolus, mg) or infused (mg/h) into one well-mixed body compartment
(compartment 1) and eliminated by a saturable process: at low concentrations elimination
is first order with clearance ``Vmax/Km``, at high concentrations it approaches the
constant rate ``Vmax`` (zero order). Doubling a dose then more than doubles the exposure,
as with phenytoin, ethanol or high-dose salicylate. Nonlinear: solved by an ODE solver.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq


class MichaelisMentenIV(tq.Model):
    """IV one-compartment PK with saturable elimination: central -> Michaelis-Menten."""

    name = "michaelis_menten_iv"
    states = ("central",)
    default_dose_cmt = 1
    covariates = ("WT",)
    covariate_defaults: ClassVar = {"WT": 70.0}

    parameters = (
        tq.Parameter(
            "Vmax", "mg/h", 20.0, "maximum elimination rate (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 2000.0),
        ),
        tq.Parameter(
            "Km", "mg/L", 4.0, "concentration at half the maximum elimination rate",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.01, 500.0),
        ),
        tq.Parameter(
            "V", "L", 50.0, "volume of distribution (70 kg)",
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
    # Nonlinear: an explicit adaptive solver. The system is one state and not stiff at any
    # plausible parameters (its rate Vmax/(V·Km) is that of a linear model's CL/V).
    solver = tq.SolverSettings(method="tsit5", rtol=1e-8, atol=1e-10, max_steps=4096)

    card = tq.ModelCard(
        summary="One-compartment intravenous pharmacokinetics with Michaelis-Menten elimination.",
        equations=(
            "C = A1/V                                   (mg/L)\n"
            "dA1/dt = -Vmax·C/(Km + C) + R(t)          (central, mg; R = infusion rate, mg/h)\n"
            "concentration = C\n"
            "C << Km: first order, CL = Vmax/Km;  C >> Km: zero order, dA1/dt -> -Vmax\n"
            "bolus D at t=0 (C0 = D/V): C(t) = Km·W((C0/Km)·exp((C0 - Vmax·t/V)/Km)),\n"
            "  W = Lambert W function (principal branch)\n"
            "constant infusion R < Vmax: steady state C_ss = Km·R/(Vmax - R);\n"
            "  R >= Vmax: no steady state, C rises without bound"
        ),
        time_unit="h",
        assumptions=(
            "The body behaves as one well-mixed compartment; distribution is instantaneous.",
            "Elimination by a single saturable pathway (one enzyme or transporter) with "
            "Michaelis-Menten kinetics; no parallel first-order pathway (e.g. renal).",
            "Vmax scales with body weight to the power 0.75, V proportionally (reference "
            "70 kg); Km does not depend on size.",
        ),
        limitations=(
            "Vmax and Km are separately identifiable only when the data span concentrations "
            "around and above Km (several dose levels or a wide range in one profile); "
            "with concentrations far below Km only Vmax/Km (the clearance) is informed, far "
            "above only Vmax.",
            "No parallel linear elimination, no distribution phase, no enzyme induction or "
            "inhibition over time (Vmax constant), no protein-binding changes.",
            "Steady state is reached only while the input rate is below Vmax; a dosing "
            "rate at or above Vmax accumulates without bound, which the model shows but "
            "which is outside the data it was fitted to.",
            "Nonlinear: solved by an ODE solver (tolerance rtol 1e-8), not exactly; "
            "steady-state doses (SS=1) need a converged pre-run.",
        ),
        references=(
            "Wagner JG. Properties of the Michaelis-Menten equation and its integrated form "
            "which are useful in pharmacokinetics. J Pharmacokinet Biopharm. "
            "1973;1(2):103-121.",
            "Ludden TM, Allen JP, Valutsky WA, et al. Individualization of phenytoin dosage "
            "regimens. Clin Pharmacol Ther. 1977;21(3):287-293.",
            "Beal SL. On the solution to the Michaelis-Menten equation. J Pharmacokinet "
            "Biopharm. 1982;10(1):109-119.",
            "Schnell S, Mendoza C. Closed form solution for time-dependent enzyme kinetics. "
            "J Theor Biol. 1997;187(2):207-212 (the Lambert W solution).",
            "Holford NHG. A size standard for pharmacokinetics. Clin Pharmacokinet. "
            "1996;30(5):329-332.",
        ),
    )

    def rhs(self, t, y, theta, inputs, covariates):
        c = y[0] / theta["V"]
        return jnp.stack([-theta["Vmax"] * c / (theta["Km"] + c)])

    def observe(self, y, theta):
        return y[0:1] / theta["V"]
