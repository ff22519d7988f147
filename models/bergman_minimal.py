"""Bergman minimal model of glucose kinetics for an intravenous glucose tolerance test.

Plasma insulin is not modelled: it is *measured* during the test and enters the model as
the interpolated input signal ``insulin`` (µU/mL). The glucose load is represented by the
initial glucose concentration ``G0`` (a parameter), not by a dose.

Basal insulin ``Ib`` is a patient covariate, carried in a third, constant state
(``basal_insulin``, set from the covariate at time 0 and never changing) so that the
insulin action can be driven by ``I(t) - Ib``. ``rhs`` also receives ``covariates["Ib"]``
directly; the state stays because removing it changes the adaptive solvers' step-size
control (their error norm is the RMS over all states, so the zero-error constant state
enters it): Tsit5 and Kvaerno5 trajectories, and with them synthetic cohorts and the
after-fit solver check, moved by about 3e-7 relative (measured 2026-12-07 against commit
afedc09; the fixed-step float64 path was identical to the last bit). Dropping it is a change
to the reference numbers, for its own commit.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

import twin_uq as tq


class BergmanMinimal(tq.Model):
    """Glucose minimal model driven by measured plasma insulin (IVGTT)."""

    name = "bergman_minimal"
    states = ("glucose", "insulin_action", "basal_insulin")
    # An extra glucose load during the test can be given as a bolus in mg/dL into cmt 1.
    default_dose_cmt = 1
    signals = ("insulin",)
    covariates = ("Ib",)
    covariate_defaults: ClassVar = {"Ib": 10.0}

    parameters = (
        tq.Parameter(
            "SG", "1/min", 0.025,
            "glucose effectiveness: fractional glucose disappearance at basal insulin",
            prior_sd=0.7, bsv_prior_scale=0.5, valid_range=(0.002, 0.1),
        ),
        tq.Parameter(
            "p2", "1/min", 0.025,
            "rate constant of insulin action in the remote (interstitial) compartment",
            prior_sd=0.8, bsv_prior_scale=0.5, valid_range=(0.002, 0.2),
        ),
        tq.Parameter(
            "SI", "mL/µU/min", 5e-4,
            "insulin sensitivity: increase of glucose disappearance per unit of insulin",
            prior_sd=1.0, bsv_prior_scale=0.7, valid_range=(1e-5, 3e-3),
        ),
        tq.Parameter(
            "Gb", "mg/dL", 90.0, "basal (fasting) plasma glucose",
            prior_sd=0.3, bsv_prior_scale=0.2, valid_range=(60.0, 200.0),
        ),
        tq.Parameter(
            "G0", "mg/dL", 280.0,
            "plasma glucose just after the glucose injection (extrapolated to time 0)",
            prior_sd=0.3, bsv_prior_scale=0.2, valid_range=(120.0, 600.0),
        ),
    )
    outputs = (
        tq.Output(
            "glucose", "mg/dL", "plasma glucose concentration",
            error="proportional", clinical_range=(70.0, 300.0), sigma_prior_scale=(5.0, 0.05),
        ),
    )
    # Non-stiff: time constants 1/SG, 1/p2 and 1/(SI·ΔI) are all tens of minutes, so an
    # explicit method suffices, and a fixed grid of 1-minute RK4 steps (plus every sample
    # time and insulin knot) is accurate to ~1e-6 relative over the prior's bulk (4e-6 at
    # the 100-patient benchmark cohort's parameters moved by ±0.5 on the log scale)
    # while a cohort gradient costs ~4x less than adaptive Tsit5 with sensitivities
    # (benchmarks/RESULTS.md, 2026-12-02 at 26160cb). Each fit re-checks its posterior draws against
    # adaptive Tsit5 at rtol/atol (twin_uq.inference.solver_check). RK4 at 1 min is stable
    # while the fastest rate SG + X stays below 2.8/min. The solve runs in float32
    # (parameters in and predictions out stay float64): its rounding, ~1e-6 relative over
    # the ~200 steps of a 3-hour test, is of the order of RK4's error at 1 min and far below
    # a 2 % glucose assay's noise, and it makes the cohort gradient ~1.4x cheaper; the
    # after-fit check measures both errors together against float64 Tsit5.
    solver = tq.SolverSettings(
        method="rk4", fixed_step=1.0, rtol=1e-6, atol=1e-10, max_steps=4096,
        precision="float32",
    )

    card = tq.ModelCard(
        summary="Bergman minimal model of glucose during an IVGTT, driven by measured insulin.",
        equations=(
            "dG/dt = -(SG + X)·G + SG·Gb                 (plasma glucose, mg/dL)\n"
            "dX/dt = -p2·X + p2·SI·(I(t) - Ib)           (insulin action, 1/min)\n"
            "G(0) = G0,  X(0) = 0\n"
            "I(t): measured plasma insulin (µU/mL), linearly interpolated; Ib: basal insulin "
            "(covariate)\n"
            "Classical parameterisation: p1 = SG, p3 = p2·SI."
        ),
        time_unit="min",
        assumptions=(
            "Glucose is distributed in a single well-mixed pool.",
            "Glucose disappears at a rate proportional to glucose itself (glucose "
            "effectiveness SG) plus an insulin-dependent part that acts with a delay "
            "through a remote compartment.",
            "Plasma insulin is measured well enough to be used as a known input.",
            "Before the test the patient is at a fasting steady state (Gb, Ib).",
            "The glucose injection mixes instantly (the fit starts a few minutes after it).",
        ),
        limitations=(
            "Only describes an intravenous glucose tolerance test: it does not model meals, "
            "insulin injections or the patient's own insulin secretion.",
            "Glucose measurements from the first few minutes after the injection (mixing "
            "phase) should be excluded from the fit.",
            "Insulin sensitivity and glucose effectiveness can be hard to separate in "
            "patients with little insulin response (e.g. type 2 diabetes without an "
            "insulin-modified test); the twin then reports wide uncertainty.",
            "Errors in the measured insulin profile pass directly into the predictions.",
        ),
        references=(
            "Bergman RN, Ider YZ, Bowden CR, Cobelli C. Quantitative estimation of insulin "
            "sensitivity. Am J Physiol. 1979;236(6):E667-E677.",
            "Bergman RN, Phillips LS, Cobelli C. Physiologic evaluation of factors "
            "controlling glucose tolerance in man. J Clin Invest. 1981;68(6):1456-1467.",
            "Pacini G, Bergman RN. MINMOD: a computer program to calculate insulin "
            "sensitivity and pancreatic responsivity from the frequently sampled "
            "intravenous glucose tolerance test. Comput Methods Programs Biomed. "
            "1986;23(2):113-122.",
        ),
    )

    def rhs(self, t, y, theta, inputs, covariates):
        g, x, ib = y[0], y[1], y[2]
        sg, p2 = theta["SG"], theta["p2"]
        dg = -(sg + x) * g + sg * theta["Gb"]
        dx = -p2 * x + p2 * theta["SI"] * (inputs["insulin"] - ib)
        return jnp.stack([dg, dx, jnp.zeros_like(ib)])

    def y0(self, theta, covariates):
        g0 = jnp.asarray(theta["G0"])
        return jnp.stack([g0, jnp.zeros_like(g0), jnp.asarray(covariates["Ib"], g0.dtype)])

    def observe(self, y, theta):
        return y[:1]
