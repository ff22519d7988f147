"""Test models with a logit-normal bioavailability and a fixed-effect parameter.

``IvOralF``: one-compartment PK with first-order absorption where a fraction ``F`` of what
leaves the gut depot reaches the plasma (the rest is lost). Giving each patient an
intravenous dose (compartment 2) and later an oral one (compartment 1) makes ``F``
identifiable patient by patient: the IV dose fixes ``CL`` and ``V``, the oral AUC then
fixes ``F``. ``ka`` is a fixed effect (``bsv=False``), ``F`` logit-normal.
"""

from __future__ import annotations

import jax.numpy as jnp

import twin_uq as tq

#: A = [[-ka, 0], [ka, -CL/V]]: the same matrix as below up to the factor F.
_ORAL = tq.load_model("one_compartment_oral")


class IvOralF(tq.Model):
    """depot --ka--> (fraction F) central --CL/V--> out."""

    name = "iv_oral_logit_F"
    states = ("depot", "central")
    default_dose_cmt = 1
    parameters = (
        tq.Parameter("ka", "1/h", 1.0, "absorption rate constant", prior_sd=0.5, bsv=False),
        tq.Parameter("CL", "L/h", 5.0, "clearance", prior_sd=0.7, bsv_prior_scale=0.4),
        tq.Parameter("V", "L", 50.0, "volume", prior_sd=0.7, bsv_prior_scale=0.3),
        tq.Parameter(
            "F", "1", 0.6, "oral bioavailability", prior_sd=1.0, bsv_prior_scale=0.6, scale="logit"
        ),
    )
    outputs = (
        tq.Output("concentration", "mg/L", error="proportional", sigma_prior_scale=(0.05, 0.2)),
    )
    solver = tq.SolverSettings(method="exact", rtol=1e-8, atol=1e-10)
    card = tq.ModelCard(
        summary="One-compartment PK, IV and oral doses, logit-normal bioavailability F.",
        equations="dA1/dt = -ka A1; dA2/dt = F ka A1 - CL/V A2; C = A2/V",
        time_unit="h",
    )

    def linear_system(self, theta):
        ka, k, F = theta["ka"], theta["CL"] / theta["V"], theta["F"]
        zero = jnp.zeros_like(ka)
        return jnp.stack([jnp.stack([-ka, zero]), jnp.stack([F * ka, -k])])

    def transition(self, theta, dt):
        """The oral model's closed form with the depot-to-plasma terms scaled by ``F``.

        (``check_model`` compares it with the matrix exponential.)
        """
        phi, psi = _ORAL.transition(theta, dt)
        scale = jnp.stack([jnp.ones(2), jnp.stack([theta["F"], jnp.ones_like(theta["F"])])])
        return phi * scale, psi * scale

    def observe(self, y, theta):
        return y[1:2] / theta["V"]


#: Each patient: 100 mg IV at 0 h, 200 mg oral at 24 h, sampled after each.
DESIGN = tq.Design(
    times=[0.25, 1.0, 3.0, 8.0, 23.5, 24.5, 25.0, 26.0, 28.0, 32.0, 40.0, 48.0],
    doses=[tq.Bolus(0.0, 100.0, 2), tq.Bolus(24.0, 200.0, 1)],
)

#: The true population behind the recovery cohort.
TRUTH = {
    "typical": {"ka": 1.2, "CL": 4.0, "V": 40.0, "F": 0.55},
    "omega": {"ka": 0.0, "CL": 0.3, "V": 0.25, "F": 0.7},
    "sigma_prop": {"concentration": 0.1},
}
