"""Transit-compartment absorption (Savic 2007) with bioavailability F1 on the oral dose.

``one_compartment_transit`` (gut -> n transit compartments -> absorption -> central, with
``ktr = (n + 1)/MTT``, n = 3 here) with NONMEM's bioavailability on the gut (compartment
1): a dose of amount AMT enters as ``F1·AMT``. The dynamics are those of
``one_compartment_transit`` (this class derives from it); the engine applies F1 to the
doses. Another n: ``tq.load_model("one_compartment_transit_f").with_transits(n)``. No lag
time: the transit chain is the delay.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import twin_uq as tq

_Transit = type(tq.load_model("one_compartment_transit"))


def _card_with_f(card: tq.ModelCard) -> tq.ModelCard:
    """The transit model's card, with F1 in place of "bioavailability is 1"."""
    return replace(
        card,
        summary=card.summary.replace(" (Savic 2007).", " and bioavailability F1 (Savic 2007)."),
        equations=card.equations.replace(
            "(gut, cmt 1: the oral dose, mg)", "(gut, cmt 1: F1·AMT of an oral dose, mg)"
        ).replace("ktr·An(t) = D·", "ktr·An(t) = F1·D·"),
        assumptions=(
            card.assumptions[0],
            "The body behaves as one well-mixed compartment; absorption and elimination "
            "are first order (no saturation).",
            "A fraction F1 of every oral dose reaches the circulation, the same for every "
            "patient (a population value without between-patient variability); F1 is "
            "logit-normal, so it stays in (0, 1).",
            *card.assumptions[2:],
        ),
        limitations=(
            "F1 is identifiable only together with intravenous data (or a known F as its "
            "prior): from oral data alone only CL/F1 and V/F1 are determined, and F1's "
            "posterior is its prior.",
            *(s for s in card.limitations if not s.startswith("Apparent values")),
        ),
        references=(
            *card.references,
            "Beal SL, Sheiner LB, Boeckmann AJ, Bauer RJ. NONMEM User's Guides (Fn "
            "additional PK parameters). Icon Development Solutions; 1989-2009.",
        ),
        extra={
            k: v.replace('"one_compartment_transit"', '"one_compartment_transit_f"')
            for k, v in card.extra.items()
        },
    )


class OneCompartmentTransitF(_Transit):
    """Transit-compartment absorption with bioavailability F1 on the gut."""

    name = "one_compartment_transit_f"
    parameters = (
        *_Transit.parameters,
        tq.Parameter(
            "F1", "1", 0.8, "bioavailability: fraction of an oral dose reaching the circulation",
            prior_sd=1.0, valid_range=(0.0, 1.0), scale="logit", bsv=False,
        ),
    )
    dose_parameters: ClassVar = {1: tq.DoseParameters(bioavailability="F1")}
    card = _card_with_f(_Transit._card_for(_Transit.n_transit, "one_compartment_transit_f"))

    @classmethod
    def _card_for(cls, n: int, name: str) -> tq.ModelCard:
        return _card_with_f(_Transit._card_for(n, name))
