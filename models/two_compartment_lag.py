"""Two-compartment pharmacokinetics with absorption lag time and bioavailability.

``two_compartment`` (NONMEM ADVAN4) with NONMEM's dose parameters on the gut depot
(compartment 1): a dose record of amount AMT at time t enters the depot at ``t + ALAG1``
as ``F1·AMT``. The dynamics are those of ``two_compartment`` (this class derives from it);
the engine applies ALAG1 and F1 to the doses. Intravenous doses into compartment 2 are
not lagged and not scaled.
"""

from __future__ import annotations

from typing import ClassVar

import twin_uq as tq

_TwoCompartment = type(tq.load_model("two_compartment"))


class TwoCompartmentLag(_TwoCompartment):
    """Two-compartment PK with lag time ALAG1 and bioavailability F1 on the depot."""

    name = "two_compartment_lag"
    parameters = (
        *_TwoCompartment.parameters,
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
            "Two-compartment pharmacokinetics with absorption lag time (ALAG1) and "
            "bioavailability (F1) (ADVAN4)."
        ),
        equations=(
            "dA1/dt = -ka·A1                                        (depot, mg)\n"
            "dA2/dt =  ka·A1 - (CL/V1)·A2 - (Q/V1)·A2 + (Q/V2)·A3   (central, mg)\n"
            "dA3/dt =  (Q/V1)·A2 - (Q/V2)·A3                        (peripheral, mg)\n"
            "concentration = A2/V1                                  (mg/L)\n"
            "a dose AMT into the depot at time t enters at t + ALAG1 as F1·AMT\n"
            "  (infusions into the depot: start t + ALAG1, amount F1·AMT, NONMEM rules)"
        ),
        time_unit="h",
        assumptions=(
            "Plasma and well-perfused tissue form one well-mixed compartment; slowly "
            "equilibrating tissue forms a second one.",
            "Nothing is absorbed during the lag time, then absorption is first order; "
            "distribution and elimination are first order, elimination from the central "
            "compartment only.",
            "A fraction F1 of every oral dose reaches the circulation, the same for every "
            "patient (F1 is a population value without between-patient variability); "
            "F1 is logit-normal, so it stays in (0, 1).",
            "Clearances scale with body weight to the power 0.75, volumes proportionally "
            "(reference 70 kg).",
        ),
        limitations=(
            "F1 is identifiable only together with intravenous data (or a known F as its "
            "prior): from oral data alone only CL/F1, V1/F1, Q/F1, V2/F1 are determined.",
            "The lag time is a sharp switch (a kink in the profile at ALAG1); its "
            "between-patient variability needs samples in the first hours. ALAG1 is "
            "log-normal and cannot be exactly 0.",
            "Three or more distinct disposition phases are not represented; no saturable "
            "elimination or binding.",
            "Peripheral-compartment parameters are poorly identifiable from sparse samples.",
        ),
        references=(
            "Gibaldi M, Perrier D. Pharmacokinetics, 2nd ed. Marcel Dekker; 1982.",
            "Beal SL, Sheiner LB, Boeckmann AJ, Bauer RJ. NONMEM User's Guides (ADVAN4; "
            "ALAGn and Fn additional PK parameters). Icon Development Solutions; 1989-2009.",
            "Holford NHG. A size standard for pharmacokinetics. Clin Pharmacokinet. "
            "1996;30(5):329-332.",
        ),
    )
