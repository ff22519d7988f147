"""Glucose and insulin in daily life with type 1 diabetes: meals, insulin boluses and basal.

A reduced model in the spirit of the identifiable virtual patient (IVP) model of Kanderian
et al. (2009), with the two-compartment gut absorption of Hovorka et al. (2004):

* carbohydrate of a meal (g, bolus into compartment 1) passes two gut compartments and
  appears in plasma as glucose;
* subcutaneously injected insulin (U; boluses into compartment 2, basal insulin as an
  infusion in U/min into compartment 2) is absorbed into plasma with a delay;
* plasma insulin acts on glucose disposal through a remote compartment.

The patient starts at the steady state of the basal insulin rate ``BASAL`` (covariate,
U/h): give the same basal insulin as an infusion into compartment 2 (``BASAL/60`` U/min),
otherwise insulin falls from its starting level and glucose drifts upwards.

Parameterisation. Glucose data determine only some combinations of the textbook
parameters, and the sampler pays for every combination they leave open:

* insulin sensitivity ``SI`` and insulin clearance ``CI`` act only through ``SI/CI``
  (plasma insulin scales as ``1/CI`` and its action as ``SI`` times insulin), so ``CI`` is
  fixed at a population value (``CI_70KG`` x (WT/70)^0.75) and ``SI`` is the sensitivity
  *at that clearance*: a person who clears insulin twice as fast shows half the ``SI``;
* endogenous production ``EGP`` is replaced by the basal (fasting) glucose ``GB`` at the
  person's basal insulin, which a fasting value measures almost directly:
  ``EGP = GB·(GEZI + SI·I_basal)``. With ``EGP`` as a parameter, the posterior of each
  person was a curved ridge along ``EGP/(GEZI + SI·I_basal)`` = fasting glucose; a default
  fit of 10 people then took ~50 leapfrog steps per iteration against ~31 with ``GB``
  (same data and settings, 2026-12-07; ``benchmarks/RESULTS_glucose.md``).
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq

#: Fraction of meal carbohydrate that reaches plasma as glucose (Hovorka et al. 2004).
CARB_BIOAVAILABILITY = 0.8
#: Subcutaneous and plasma insulin absorption time constants (min), fixed at population
#: values (Kanderian et al. 2009): with meal and CGM data they are not identifiable per
#: patient together with insulin sensitivity.
TAU_SC = 49.0
TAU_PLASMA = 47.0
#: Rate constant of remote insulin action (1/min), fixed for the same reason.
P2 = 0.0106
#: µU per U, for converting insulin amounts (U) to concentrations (µU/mL).
MICRO_UNITS_PER_UNIT = 1e6
#: Plasma insulin clearance (mL/min) of a 70 kg person, scaled by (WT/70)^0.75: a
#: population value, because glucose data determine only SI/CI (see the module doc).
CI_70KG = 2000.0


def insulin_clearance(covariates) -> jnp.ndarray:
    """Plasma insulin clearance (mL/min) at the person's weight ``WT`` (kg)."""
    return CI_70KG * (jnp.asarray(covariates["WT"]) / 70.0) ** 0.75


def basal_plasma_insulin(covariates) -> jnp.ndarray:
    """Plasma insulin (µU/mL) at the steady state of the basal rate ``BASAL`` (U/h)."""
    basal = jnp.asarray(covariates["BASAL"]) / 60.0  # U/h -> U/min
    return MICRO_UNITS_PER_UNIT * basal / insulin_clearance(covariates)


def endogenous_production(theta, covariates) -> jnp.ndarray:
    """Endogenous glucose production (mg/dL/min) that holds glucose at ``GB`` on basal."""
    return theta["GB"] * (theta["GEZI"] + theta["SI"] * basal_plasma_insulin(covariates))


class GlucoseMeal(tq.Model):
    """Reduced glucose-insulin model for type 1 diabetes (meals, bolus and basal insulin)."""

    name = "glucose_meal"
    states = (
        "gut_1",  # cmt 1: carbohydrate in the stomach / first gut compartment (g)
        "insulin_sc",  # cmt 2: insulin in the subcutaneous depot (U)
        "gut_2",  # cmt 3: carbohydrate in the second gut compartment (g)
        "insulin_plasma",  # cmt 4: plasma insulin concentration (µU/mL)
        "insulin_action",  # cmt 5: remote insulin action (1/min)
        "glucose",  # cmt 6: plasma glucose concentration (mg/dL)
    )
    default_dose_cmt = 1
    # Basal insulin is an infusion into the subcutaneous depot by design (an insulin pump).
    infusion_compartments = (2,)
    covariates = ("WT", "BASAL")
    covariate_defaults: ClassVar = {"WT": 70.0, "BASAL": 1.0}

    parameters = (
        tq.Parameter(
            "SI", "mL/µU/min", 8e-4,
            "insulin sensitivity: extra glucose disposal per unit of plasma insulin (at the "
            "population insulin clearance)",
            prior_sd=0.8, bsv_prior_scale=0.6, valid_range=(5e-5, 5e-3),
        ),
        tq.Parameter(
            "GEZI", "1/min", 2.2e-3,
            "glucose effectiveness at zero insulin (insulin-independent disposal)",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(1e-4, 2e-2),
        ),
        tq.Parameter(
            "GB", "mg/dL", 150.0,
            "basal (fasting) glucose on the person's basal insulin; sets the liver's "
            "glucose production",
            prior_sd=0.3, bsv_prior_scale=0.3, valid_range=(40.0, 500.0),
        ),
        tq.Parameter(
            "VG", "dL", 130.0, "glucose distribution volume (70 kg; about 1.9 dL/kg)",
            prior_sd=0.3, bsv_prior_scale=0.2, valid_range=(50.0, 300.0),
        ),
        tq.Parameter(
            "TAU_M", "min", 50.0, "time constant of carbohydrate absorption from the gut",
            prior_sd=0.5, bsv_prior_scale=0.4, valid_range=(15.0, 150.0),
        ),
    )
    outputs = (
        tq.Output(
            "glucose", "mg/dL", "plasma (or sensor) glucose concentration",
            error="combined", clinical_range=(70.0, 180.0), sigma_prior_scale=(10.0, 0.1),
        ),
    )
    allometric = (tq.Allometric("VG", "WT", 1.0, 70.0),)
    # Non-stiff: all time constants are 10-500 min, so an explicit method suffices. A fixed
    # grid of 2-minute RK4 steps (plus every fingerstick / sensor time and dose) in float32
    # is accurate to ~3e-5 relative (2e-3 mg/dL) over a day with three meals at parameters
    # up to e^±2 from the typical values, against adaptive Tsit5 at rtol 1e-10 (measured
    # 2026-12-07, benchmarks/glucose_default_fit.py's design). Adaptive Tsit5 at rtol 1e-6
    # with forward sensitivities, the earlier default, made one cohort gradient of 30 people
    # x 6 fingersticks ~6x dearer (16 ms against 2.8 ms, fastest of 15 interleaved
    # repeats), which kept a default 4 x 2000-iteration NUTS fit running for hours on 2
    # cores. Every fit re-checks its posterior draws against adaptive Tsit5 at rtol/atol
    # (twin_uq.inference.solver_check). RK4 at 2 min is stable while the fastest rate
    # (1/TAU_M, GEZI + X) stays below 1.4/min, above what the valid ranges give.
    solver = tq.SolverSettings(
        method="rk4", fixed_step=2.0, rtol=1e-6, atol=1e-9, max_steps=4096,
        precision="float32",
    )  # fmt: skip

    card = tq.ModelCard(
        summary="Type 1 diabetes glucose-insulin model for meals, insulin boluses and basal.",
        equations=(
            "dD1/dt = -D1/TAU_M                                  (gut 1, g; meals)\n"
            "dD2/dt = (D1 - D2)/TAU_M                            (gut 2, g)\n"
            "dS/dt  = -S/tau_sc                                  (SC insulin depot, U)\n"
            "dI/dt  = (1e6·S/(tau_sc·CI) - I)/tau_p              (plasma insulin, µU/mL)\n"
            "dX/dt  = -p2·X + p2·SI·I                            (insulin action, 1/min)\n"
            "dG/dt  = -(GEZI + X)·G + EGP + 1000·f·D2/(TAU_M·VG) (glucose, mg/dL)\n"
            f"fixed: f = {CARB_BIOAVAILABILITY}, tau_sc = {TAU_SC} min, "
            f"tau_p = {TAU_PLASMA} min, p2 = {P2} /min, "
            f"CI = {CI_70KG:g}·(WT/70)^0.75 mL/min\n"
            "EGP = GB·(GEZI + SI·I_b), I_b = 1e6·(BASAL/60)/CI   (GB: basal glucose)\n"
            "start: steady state of basal insulin BASAL (U/h) with an empty gut (G = GB)"
        ),
        time_unit="min",
        assumptions=(
            "The patient makes no insulin of their own (type 1 diabetes): all insulin "
            "comes from injections or the pump.",
            "Meal carbohydrate is absorbed through two gut compartments with one time "
            "constant per patient; 80% of it reaches the blood.",
            "Insulin absorption from under the skin and insulin action delays are the "
            "same for every patient (population values).",
            "Glucose production by the liver is constant over the day.",
            "Glucose volume scales with body weight, insulin clearance with weight^0.75.",
            "Insulin clearance is the population value for the person's weight: glucose "
            "data determine only sensitivity over clearance, so SI absorbs a person's own "
            "clearance.",
            "The patient starts in the fasting steady state of their basal insulin rate.",
            "BASAL is the basal rate the day starts on (it sets the starting state and the "
            "liver's production through GB); a change of basal rate during the record is "
            "given as infusion records into CMT 2, not as a change of BASAL.",
        ),
        limitations=(
            "Does not model exercise, stress, illness, alcohol or the dawn phenomenon.",
            "Meal composition (fat, protein, fibre) is ignored: only grams of "
            "carbohydrate count.",
            "Glucagon and counter-regulation during hypoglycaemia are not modelled, so "
            "predictions of very low glucose are less reliable.",
            "Insulin sensitivity is assumed constant over the prediction horizon; it "
            "really changes over days and through the day.",
            "Continuous glucose sensor delay and calibration error are not modelled.",
        ),
        references=(
            "Kanderian SS, Weinzimer S, Voskanyan G, Steil GM. Identification of intraday "
            "metabolic profiles during closed-loop glucose control in individuals with "
            "type 1 diabetes. J Diabetes Sci Technol. 2009;3(5):1047-1057.",
            "Hovorka R, Canonico V, Chassin LJ, et al. Nonlinear model predictive control "
            "of glucose concentration in subjects with type 1 diabetes. Physiol Meas. "
            "2004;25(4):905-920.",
            "Bergman RN, Ider YZ, Bowden CR, Cobelli C. Quantitative estimation of insulin "
            "sensitivity. Am J Physiol. 1979;236(6):E667-E677.",
            "Dalla Man C, Rizza RA, Cobelli C. Meal simulation model of the glucose-insulin "
            "system. IEEE Trans Biomed Eng. 2007;54(10):1740-1749.",
        ),
    )

    def rhs(self, t, y, theta, inputs, covariates):
        gut1, s, gut2, ip, x, g = (y[k] for k in range(6))
        tau_m = theta["TAU_M"]
        ra = 1000.0 * CARB_BIOAVAILABILITY * gut2 / tau_m / theta["VG"]  # mg/dL/min
        ci = insulin_clearance(covariates)
        return jnp.stack(
            [
                -gut1 / tau_m,
                -s / TAU_SC,
                (gut1 - gut2) / tau_m,
                (MICRO_UNITS_PER_UNIT * s / (TAU_SC * ci) - ip) / TAU_PLASMA,
                -P2 * x + P2 * theta["SI"] * ip,
                -(theta["GEZI"] + x) * g + endogenous_production(theta, covariates) + ra,
            ]
        )

    def y0(self, theta, covariates):
        basal = jnp.asarray(covariates["BASAL"]) / 60.0  # U/h -> U/min
        s = basal * TAU_SC
        ip = basal_plasma_insulin(covariates)
        x = theta["SI"] * ip
        g = jnp.asarray(theta["GB"]) + 0.0 * x
        zero = jnp.zeros_like(g)
        return jnp.stack([zero, s + zero, zero, ip + zero, x + zero, g])

    def observe(self, y, theta):
        return y[5:6]
