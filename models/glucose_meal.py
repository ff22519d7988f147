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
            "insulin sensitivity: extra glucose disposal per unit of plasma insulin",
            prior_sd=0.8, bsv_prior_scale=0.6, valid_range=(5e-5, 5e-3),
        ),
        tq.Parameter(
            "GEZI", "1/min", 2.2e-3,
            "glucose effectiveness at zero insulin (insulin-independent disposal)",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(1e-4, 2e-2),
        ),
        tq.Parameter(
            "EGP", "mg/dL/min", 1.33,
            "endogenous glucose production (liver), per unit of glucose volume",
            prior_sd=0.5, bsv_prior_scale=0.3, valid_range=(0.3, 4.0),
        ),
        tq.Parameter(
            "CI", "mL/min", 2000.0, "plasma insulin clearance (70 kg)",
            prior_sd=0.5, bsv_prior_scale=0.3, valid_range=(500.0, 6000.0),
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
    allometric = (
        tq.Allometric("CI", "WT", 0.75, 70.0),
        tq.Allometric("VG", "WT", 1.0, 70.0),
    )
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
            f"tau_p = {TAU_PLASMA} min, p2 = {P2} /min\n"
            "start: steady state of basal insulin BASAL (U/h) with an empty gut"
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
            "The patient starts in the fasting steady state of their basal insulin rate.",
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
        return jnp.stack(
            [
                -gut1 / tau_m,
                -s / TAU_SC,
                (gut1 - gut2) / tau_m,
                (MICRO_UNITS_PER_UNIT * s / (TAU_SC * theta["CI"]) - ip) / TAU_PLASMA,
                -P2 * x + P2 * theta["SI"] * ip,
                -(theta["GEZI"] + x) * g + theta["EGP"] + ra,
            ]
        )

    def y0(self, theta, covariates):
        basal = jnp.asarray(covariates["BASAL"]) / 60.0  # U/h -> U/min
        s = basal * TAU_SC
        ip = MICRO_UNITS_PER_UNIT * basal / theta["CI"]
        x = theta["SI"] * ip
        g = theta["EGP"] / (theta["GEZI"] + x)
        zero = jnp.zeros_like(g)
        return jnp.stack([zero, s + zero, zero, ip + zero, x + zero, g])

    def observe(self, y, theta):
        return y[5:6]
