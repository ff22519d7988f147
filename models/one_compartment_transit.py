"""One-compartment oral pharmacokinetics with transit-compartment absorption (Savic 2007).

An oral dose (compartment 1, the gut) passes through a chain of ``n`` transit compartments
with the same rate constant ``ktr = (n + 1) / MTT`` into an absorption compartment, from
which it is absorbed first-order (``ka``) into one well-mixed body compartment and
eliminated linearly. The chain turns the abrupt start of first-order absorption into the
gradual, delayed rise seen with many oral formulations, without a discontinuous lag time.

``n`` is fixed (not estimated): this file's model has ``n = 3``; another ``n`` is
``tq.load_model("one_compartment_transit").with_transits(n)``, a model of its own (name
``one_compartment_transit_n<n>``) with ``n + 3`` states. The model is linear and solved
exactly, so repeated doses superpose exactly (Savic's closed-form input covers the last
dose only).
"""

from __future__ import annotations

import functools
import operator
from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq

DEFAULT_TRANSITS = 3
MAX_TRANSITS = 40


def _states(n: int) -> tuple[str, ...]:
    return ("gut", *(f"transit{i}" for i in range(1, n + 1)), "absorption", "central")


def _card(n: int, name: str) -> tq.ModelCard:
    central, absorption = n + 3, n + 2
    return tq.ModelCard(
        summary=(
            f"Oral one-compartment pharmacokinetics with {n} transit compartments before "
            "first-order absorption (Savic 2007)."
        ),
        equations=(
            f"n = {n} transit compartments (fixed), ktr = (n + 1)/MTT   (1/h)\n"
            "dA0/dt = -ktr·A0                       (gut, cmt 1: the oral dose, mg)\n"
            f"dAi/dt =  ktr·A(i-1) - ktr·Ai          (transit i = 1..{n}, cmt i+1, mg)\n"
            f"dAa/dt =  ktr·A{n} - ka·Aa              (absorption, cmt {absorption}, mg)\n"
            f"dAc/dt =  ka·Aa - (CL/V)·Ac            (central, cmt {central}, mg)\n"
            "concentration = Ac/V                   (mg/L)\n"
            "Dose D into the gut at t = 0: flow into the absorption compartment\n"
            "  ktr·An(t) = D·ktr·(ktr·t)^n·exp(-ktr·t)/n!   (Erlang input, mean delay MTT)"
        ),
        time_unit="h",
        assumptions=(
            "The delay between intake and absorption is a chain of n + 1 identical "
            "first-order steps (an Erlang-distributed transit time with mean MTT), followed "
            "by first-order absorption.",
            "The body behaves as one well-mixed compartment; absorption and elimination "
            "are first order (no saturation); bioavailability is 1 (CL and V are the "
            "apparent CL/F and V/F).",
            "Clearance scales with body weight to the power 0.75, volume proportionally "
            "(reference 70 kg).",
        ),
        limitations=(
            f"The number of transit compartments is fixed at n = {n}; it is not estimated "
            "(Savic's continuous n through the gamma function is not available). Choose n "
            "by comparing fits of with_transits(n) models.",
            "MTT and ka are separable only with dense sampling during absorption; from "
            "sparse or steady-state samples they are informed by the priors.",
            "No lag time (the chain replaces it), no saturable elimination, no "
            "distribution phase (use two_compartment for biphasic decline), no "
            "enterohepatic recirculation or double peaks.",
            "Apparent values: CL and V are confounded with bioavailability.",
            f"Intravenous doses must go to the central compartment, cmt {central} (its "
            "number depends on n).",
        ),
        references=(
            "Savic RM, Jonker DM, Kerbusch T, Karlsson MO. Implementation of a transit "
            "compartment model for describing drug absorption in pharmacokinetic studies. "
            "J Pharmacokinet Pharmacodyn. 2007;34(5):711-726.",
            "Sun YN, Jusko WJ. Transit compartments versus gamma distribution function to "
            "model signal transduction processes in pharmacodynamics. J Pharm Sci. "
            "1998;87(6):732-737.",
            "Holford NHG. A size standard for pharmacokinetics. Clin Pharmacokinet. "
            "1996;30(5):329-332.",
        ),
        extra={
            "Number of transit compartments": (
                f"This model (`{name}`) has n = {n}. Another n: "
                "`tq.load_model(\"one_compartment_transit\").with_transits(n)`, "
                f"0 <= n <= {MAX_TRANSITS}."
            ),
        },
    )


class OneCompartmentTransit(tq.Model):
    """Oral one-compartment PK: gut -> n transit compartments -> absorption -> central."""

    n_transit: ClassVar[int] = DEFAULT_TRANSITS
    name = "one_compartment_transit"
    states = _states(DEFAULT_TRANSITS)
    default_dose_cmt = 1
    covariates = ("WT",)
    covariate_defaults: ClassVar = {"WT": 70.0}

    parameters = (
        tq.Parameter(
            "MTT", "h", 1.0, "mean transit time from intake to the absorption compartment",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(0.02, 24.0),
        ),
        tq.Parameter(
            "ka", "1/h", 1.0, "first-order absorption rate constant",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(0.05, 20.0),
        ),
        tq.Parameter(
            "CL", "L/h", 5.0, "apparent clearance from plasma (70 kg)",
            prior_sd=0.7, bsv_prior_scale=0.4, valid_range=(0.1, 100.0),
        ),
        tq.Parameter(
            "V", "L", 50.0, "apparent volume of distribution (70 kg)",
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
    # Linear: exact matrix-exponential solution; the transit chain makes the system stiff
    # for small MTT, which an exact solution does not mind.
    solver = tq.SolverSettings(method="exact", rtol=1e-8, atol=1e-10)
    card = _card(DEFAULT_TRANSITS, "one_compartment_transit")

    @classmethod
    def _card_for(cls, n: int, name: str) -> tq.ModelCard:
        """The card of the ``n``-transit model (a subclass with other parameters overrides)."""
        return _card(n, name)

    def with_transits(self, n: int) -> OneCompartmentTransit:
        """The same model with ``n`` transit compartments (``ktr = (n + 1) / MTT``).

        Parameters
        ----------
        n
            Number of transit compartments, an integer in ``0 .. MAX_TRANSITS`` (40).

        Returns
        -------
        OneCompartmentTransit
            A model of its own class (compiled functions are cached per class), named
            ``<name>_n<n>``, with ``n + 3`` states: gut, transit1..transit<n>,
            absorption, central. The same ``n`` gives the same class every time; the
            ``n`` of the model this family started from gives that model itself.
        """
        if isinstance(n, bool) or int(n) != n or not 0 <= n <= MAX_TRANSITS:
            raise tq.InputError(
                f"with_transits: n must be a whole number from 0 to {MAX_TRANSITS}; got {n!r}."
            )
        root = vars(self).get("_transit_root", self)
        if int(n) == root.n_transit:
            return root
        model = _transit_class(type(root), int(n))()
        model._source_path = root._source_path
        # The model it was made from: a pickled copy is "root.with_transits(n)" (its class
        # is made at run time and cannot be found by name in another process).
        model._transit_root = root
        return model

    def linear_system(self, theta):
        n = self.n_transit
        ktr = (n + 1) / theta["MTT"]
        ka, k = theta["ka"], theta["CL"] / theta["V"]
        ones = jnp.ones(n + 1, dtype=jnp.result_type(ktr))
        diagonal = jnp.concatenate([-ktr * ones, jnp.stack([-ka, -k])])
        below = jnp.concatenate([ktr * ones, jnp.stack([ka])])
        return jnp.diag(diagonal) + jnp.diag(below, k=-1)

    def rhs(self, t, y, theta, inputs, covariates):
        return self.linear_system(theta) @ y

    def observe(self, y, theta):
        return y[-1:] / theta["V"]


def _reduce_variant(model: OneCompartmentTransit) -> tuple:
    """Pickle a ``with_transits`` model as the call that makes it again."""
    return (operator.methodcaller("with_transits", model.n_transit), (model._transit_root,))


@functools.cache
def _transit_class(root: type, n: int) -> type:
    """A subclass of ``root`` with ``n`` transit compartments, one per (root, n)."""
    name = f"{root.name}_n{n}"
    attrs = {
        "__reduce__": _reduce_variant,
        "n_transit": n,
        "name": name,
        "states": _states(n),
        "card": root._card_for(n, name),
        "__module__": root.__module__,
        "__qualname__": f"{root.__qualname__}_n{n}",
    }
    return type(f"{root.__name__}_n{n}", (root,), attrs)
