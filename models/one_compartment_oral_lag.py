"""One-compartment oral pharmacokinetics with absorption lag time and bioavailability.

``one_compartment_oral`` (NONMEM ADVAN2) with NONMEM's dose parameters on the gut depot
(compartment 1): a dose record of amount AMT at time t enters the depot at ``t + ALAG1``
as ``F1·AMT``. The dynamics are those of ``one_compartment_oral`` (this class derives from
it); the engine applies ALAG1 and F1 to the doses, the right-hand side never sees them.
Intravenous doses into compartment 2 are not lagged and not scaled.
"""

from __future__ import annotations

from typing import ClassVar

import twin_uq as tq

_Oral = type(tq.load_model("one_compartment_oral"))


class OneCompartmentOralLag(_Oral):
    """Oral one-compartment PK with lag time ALAG1 and bioavailability F1 on the depot."""

    name = "one_compartment_oral_lag"
    parameters = (
        *_Oral.parameters,
        tq.Parameter(
            "ALAG1", "h", 0.5, "absorption lag time: delay from intake to the start of absorption",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(0.0, 6.0),
        ),
        tq.Parameter(
            "F1", "1", 0.8, "bioavailability: fraction of an oral dose reaching the circulation",
            prior_sd=1.0, valid_range=(0.0, 1.0), scale="logit", bsv=False,
        ),
    )
    dose_parameters: ClassVar = {1: tq.DoseParameters(lag="ALAG1", bioavailability="F1")}

    card = tq.ModelCard(
        summary=(
            "One-compartment oral pharmacokinetics with absorption lag time (ALAG1) and "
            "bioavailability (F1) (ADVAN2)."
        ),
        equations=(
            "dA1/dt = -ka·A1                 (depot, mg)\n"
            "dA2/dt =  ka·A1 - (CL/V)·A2     (central, mg)\n"
            "concentration = A2/V            (mg/L)\n"
            "a dose AMT into the depot at time t enters at t + ALAG1 as F1·AMT\n"
            "  (infusions into the depot: start t + ALAG1, amount F1·AMT, NONMEM rules)\n"
            "single dose D at t=0, s = t - ALAG1, k = CL/V:\n"
            "  C(t) = 0 for s <= 0,  F1·D·ka/(V·(ka-k))·(exp(-k·s) - exp(-ka·s)) for s > 0"
        ),
        time_unit="h",
        assumptions=(
            "The body behaves as one well-mixed compartment for the drug.",
            "Nothing is absorbed during the lag time, then absorption is first order; "
            "elimination is first order (no saturation).",
            "A fraction F1 of every oral dose reaches the circulation, the same for every "
            "patient (F1 is a population value without between-patient variability); "
            "F1 is logit-normal, so it stays in (0, 1).",
            "Clearance scales with body weight to the power 0.75, volume proportionally "
            "(reference 70 kg).",
        ),
        limitations=(
            "F1 is identifiable only together with intravenous data (or a known F from the "
            "literature as its prior): from oral data alone only CL/F1 and V/F1 are "
            "determined, F1's posterior is its prior, and CL and V inherit its uncertainty.",
            "The lag time is a sharp switch: the concentration has a kink at ALAG1, and "
            "between-patient variability of ALAG1 is informed only by samples in the first "
            "hours. A gradual, delayed absorption is better described by transit "
            "compartments (one_compartment_transit).",
            "ALAG1 is log-normal: it cannot be exactly 0 (a typical lag far below the "
            "first sample time is not identifiable and is held by its prior).",
            "Does not describe drugs whose levels fall in two clearly different phases "
            "(use two_compartment_lag); no saturable elimination, no food effects.",
        ),
        references=(
            "Gibaldi M, Perrier D. Pharmacokinetics, 2nd ed. Marcel Dekker; 1982 (Bateman "
            "function with lag time, bioavailability).",
            "Beal SL, Sheiner LB, Boeckmann AJ, Bauer RJ. NONMEM User's Guides (ADVAN2; "
            "ALAGn and Fn additional PK parameters). Icon Development Solutions; 1989-2009.",
            "Holford NHG. A size standard for pharmacokinetics. Clin Pharmacokinet. "
            "1996;30(5):329-332.",
        ),
    )
