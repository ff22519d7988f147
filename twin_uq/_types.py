"""Named array types for the shapes that recur across twin_uq's signatures.

jaxtyping annotations (documentation: nothing checks them at run time). A name says what
an array holds where the bare ``Float[Array, " K"]`` only says its shape. The dimension
letters are the package's convention:

* ``P`` patients, ``N`` observations of a patient (padded), ``O`` model outputs;
* ``K`` model parameters, ``C`` covariates, ``n`` model states;
* ``S`` posterior draws, ``T`` prediction times.

A module with shapes of its own (events ``E``, steady-state tails ``M``) keeps writing
them out.
"""

from __future__ import annotations

from jaxtyping import Array, Bool, Float, Int

__all__ = [
    "BoolScalar",
    "CohortMatrices",
    "CohortParams",
    "CovariateVector",
    "DrawOutputs",
    "DrawPredictions",
    "ErrorCodes",
    "FloatScalar",
    "IntScalar",
    "ParamVector",
    "PerDraw",
    "PerObservation",
    "PerOutput",
    "StateVector",
    "States",
    "TimeGrid",
]

#: A real number as a 0-d array (a time, a rate, a step size, a log density).
FloatScalar = Float[Array, ""]
#: A whole number as a 0-d array (a count, a compartment index, a status code).
IntScalar = Int[Array, ""]
#: A truth value as a 0-d array (a solve succeeded, a transition diverged).
BoolScalar = Bool[Array, ""]

#: One patient's parameters in ``model.parameter_names`` order (natural or log scale).
ParamVector = Float[Array, " K"]
#: One row of parameter-space values per patient (log parameters, latents, their means).
CohortParams = Float[Array, "P K"]
#: A ``K x K`` matrix per patient (an information matrix, a Cholesky factor).
CohortMatrices = Float[Array, "P K K"]
#: One patient's covariates in ``model.covariates`` order.
CovariateVector = Float[Array, " C"]
#: A model state vector, or the input-rate vector acting on the states.
StateVector = Float[Array, " n"]
#: State-shaped arrays with any leading batch axes.
States = Float[Array, "... n"]

#: Each output's residual error model, as an ``ErrorKind`` code.
ErrorCodes = Int[Array, " O"]
#: One value per output (e.g. its additive or proportional residual SD).
PerOutput = Float[Array, " O"]
#: One value per patient and padded observation.
PerObservation = Float[Array, "P N"]

#: Prediction times (model time unit).
TimeGrid = Float[Array, " T"]
#: One value per posterior draw.
PerDraw = Float[Array, " S"]
#: One value per posterior draw and output (e.g. the draws' residual SDs).
DrawOutputs = Float[Array, "S O"]
#: Predictions of every output at every time, per posterior draw.
DrawPredictions = Float[Array, "S T O"]
