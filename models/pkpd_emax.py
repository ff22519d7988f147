"""One-compartment oral pharmacokinetics with an effect compartment and an Emax response.

A drug taken by mouth is absorbed first-order from the gut (depot) into plasma (central),
eliminated linearly, and acts through a hypothetical effect site that lags plasma
(``ke0``); the response follows the Emax (hyperbolic) law of the effect-site
concentration. Doses are boluses (mg) into compartment 1 (depot), or infusions (mg/h) into
compartment 2 (central) for intravenous administration.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq


class PKPDEmax(tq.Model):
    """Oral one-compartment PK + effect compartment + Emax pharmacodynamics."""

    name = "pkpd_emax"
    states = ("depot", "central", "effect_site")
    default_dose_cmt = 1
    covariates = ("WT",)
    covariate_defaults: ClassVar = {"WT": 70.0}
    #: Hill coefficient of the Emax law. Fixed at 1 (hyperbolic Emax): a Hill coefficient is
    #: rarely identifiable from sparse clinical data. Subclass and override to change it.
    hill: ClassVar[float] = 1.0

    parameters = (
        tq.Parameter(
            "KA", "1/h", 1.0, "first-order absorption rate constant from the gut",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(0.05, 10.0),
        ),
        tq.Parameter(
            "CL", "L/h", 5.0, "clearance from plasma (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 100.0),
        ),
        tq.Parameter(
            "V", "L", 50.0, "apparent volume of distribution (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(2.0, 500.0),
        ),
        tq.Parameter(
            "KE0", "1/h", 0.5, "equilibration rate constant between plasma and effect site",
            prior_sd=1.0, bsv_prior_scale=0.5, valid_range=(0.01, 20.0),
        ),
        tq.Parameter(
            "E0", "response units", 10.0, "baseline response without drug",
            prior_sd=0.5, bsv_prior_scale=0.3, valid_range=(0.1, 1000.0),
        ),
        tq.Parameter(
            "EMAX", "response units", 50.0, "largest possible drug-induced change in response",
            prior_sd=0.7, bsv_prior_scale=0.3, valid_range=(0.1, 1000.0),
        ),
        tq.Parameter(
            "EC50", "mg/L", 1.0, "effect-site concentration giving half the largest effect",
            prior_sd=1.0, bsv_prior_scale=0.5, valid_range=(0.01, 100.0),
        ),
    )
    outputs = (
        tq.Output(
            "concentration", "mg/L", "drug concentration in plasma",
            error="combined", clinical_range=(0.0, 4.0), sigma_prior_scale=(0.05, 0.2),
        ),
        tq.Output(
            "effect", "response units", "measured response (e.g. a biomarker or score)",
            error="additive", clinical_range=(10.0, 60.0), sigma_prior_scale=(5.0, 0.2),
        ),
    )
    allometric = (
        tq.Allometric("CL", "WT", 0.75, 70.0),
        tq.Allometric("V", "WT", 1.0, 70.0),
    )
    # Non-stiff: the rate constants (KA, CL/V, KE0) lie within two orders of magnitude of
    # each other, so the explicit Tsit5 takes few steps. Amounts are in mg; atol 1e-9 mg is
    # far below any measurable amount, rtol 1e-6 keeps sensitivities accurate for NUTS.
    solver = tq.SolverSettings(method="tsit5", rtol=1e-6, atol=1e-9, max_steps=4096)

    card = tq.ModelCard(
        summary="Oral one-compartment PK with an effect compartment and an Emax drug response.",
        equations=(
            "dA1/dt = -KA·A1                         (depot, mg)\n"
            "dA2/dt =  KA·A1 - (CL/V)·A2             (central, mg)\n"
            "dCe/dt =  KE0·(A2/V - Ce)               (effect site, mg/L)\n"
            "concentration = A2/V\n"
            "effect = E0 + EMAX·Ce^h / (EC50^h + Ce^h),  h = 1 (fixed)"
        ),
        time_unit="h",
        assumptions=(
            "The body behaves as one well-mixed compartment for the drug.",
            "Absorption and elimination are first order (no saturation).",
            "The effect lags plasma concentration through a single effect compartment "
            "that holds a negligible amount of drug.",
            "The response is hyperbolic in the effect-site concentration (Hill "
            "coefficient fixed at 1) and returns to baseline E0 when the drug is gone.",
            "Clearance scales with body weight to the power 0.75, volume proportionally.",
        ),
        limitations=(
            "Does not describe drugs whose levels fall in two clearly different phases, "
            "or whose elimination saturates at high doses.",
            "Does not include tolerance, rebound or disease progression: the same "
            "concentration always gives the same effect.",
            "Ignores absorption delays (lag time) and food effects.",
            "The effect-site concentration cannot be measured; it is inferred from the "
            "time lag between concentration and effect.",
        ),
        references=(
            "Sheiner LB, Stanski DR, Vozeh S, Miller RD, Ham J. Simultaneous modeling of "
            "pharmacokinetics and pharmacodynamics: application to d-tubocurarine. "
            "Clin Pharmacol Ther. 1979;25(3):358-371.",
            "Holford NHG, Sheiner LB. Understanding the dose-effect relationship. "
            "Clin Pharmacokinet. 1981;6(6):429-453.",
            "Gabrielsson J, Weiner D. Pharmacokinetic and Pharmacodynamic Data Analysis, "
            "5th ed. Swedish Pharmaceutical Press; 2016.",
        ),
    )

    def rhs(self, t, y, theta, inputs, covariates):
        depot, central, ce = y[0], y[1], y[2]
        conc = central / theta["V"]
        return jnp.stack(
            [
                -theta["KA"] * depot,
                theta["KA"] * depot - theta["CL"] / theta["V"] * central,
                theta["KE0"] * (conc - ce),
            ]
        )

    def observe(self, y, theta):
        conc = y[1] / theta["V"]
        # Solver round-off can make a vanishing concentration slightly negative; the Emax
        # law is only defined for Ce >= 0.
        ce = jnp.maximum(y[2], 0.0)
        ce_h = ce**self.hill
        effect = theta["E0"] + theta["EMAX"] * ce_h / (theta["EC50"] ** self.hill + ce_h)
        return jnp.stack([conc, effect])
