"""The population model as a NumPyro program (used by NUTS, SVI and Laplace).

The program is built from a hashable :class:`ProgramStructure` (model, solver, sizes, which
residual parameters exist) and receives every number — data *and* prior constants — as a
pytree argument. Two fits with the same structure and array shapes therefore share one
compiled sampler (NumPyro's ``jit_model_args``): only the first pays for compilation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import random
from jaxtyping import Array, Float

from twin_uq.data import CohortArrays
from twin_uq.errors import InputError
from twin_uq.inference.likelihood import (
    FitData,
    ResidualParams,
    cohort_loglik,
    likelihood_theta,
)
from twin_uq.inference.population import PopulationModel
from twin_uq.inference.random_effects import (
    all_random,
    embed_columns,
    embed_omega,
    occasion_shift,
    random_columns,
)
from twin_uq.inference.reparam import Centering, individual_log_theta
from twin_uq.inference.residual import ERROR_CODES, per_output_residuals
from twin_uq.inference.whitening import solve_upper_transposed
from twin_uq.model.base import Model, SolverSettings
from twin_uq.model.scales import random_index, to_natural

__all__ = [
    "PriorArrays",
    "ProgramStructure",
    "WhitenedNormal",
    "cohort_program",
    "default_tau_median",
    "tau_per_output",
]

_NEEDS_ADD = {ERROR_CODES[k] for k in ("additive", "combined", "student_t")}
_NEEDS_PROP = {ERROR_CODES[k] for k in ("proportional", "combined", "lognormal", "student_t")}


@dataclass(frozen=True)
class ProgramStructure:
    """Static (shape- and branch-determining) facts of a population model."""

    model: Model
    settings: SolverSettings
    n_params: int
    n_effects: int
    add_outputs: tuple[int, ...]
    prop_outputs: tuple[int, ...]
    correlated: bool
    student_t: bool
    with_likelihood: bool = True
    """``False``: the program has the priors only. Mapping values between the constrained
    and unconstrained spaces needs only the sites' supports; the prior-only program spares
    those maps a trace of the ODE solve (about a second each on the Bergman model)."""
    iov: tuple[int, ...] = ()
    """Model indices of the parameters with inter-occasion variability (``J``)."""
    n_occasions: int = 0
    """The most occasions of one patient ``M`` (with ``iov``)."""
    ou_outputs: tuple[int, ...] = ()
    """Outputs with an Ornstein-Uhlenbeck residual (a sampled correlation time ``tau``)."""

    def prior_only(self) -> ProgramStructure:
        """The same structure without the likelihood term."""
        return dataclasses.replace(self, with_likelihood=False)

    @classmethod
    def from_spec(
        cls,
        spec: PopulationModel,
        n_effects: int,
        settings: SolverSettings,
        n_occasions: int = 0,
    ) -> ProgramStructure:
        """Derive the structure of a population model (``n_occasions``: with ``spec.iov``)."""
        codes = spec.error_codes()
        return cls(
            model=spec.model,
            settings=settings,
            n_params=len(spec.model.parameters),
            n_effects=n_effects,
            add_outputs=tuple(int(i) for i, c in enumerate(codes) if c in _NEEDS_ADD),
            prop_outputs=tuple(int(i) for i, c in enumerate(codes) if c in _NEEDS_PROP),
            correlated=spec.correlation == "lkj",
            student_t=spec.uses_student_t(),
            iov=spec.iov_index(),
            n_occasions=int(n_occasions) if spec.iov else 0,
            ou_outputs=spec.correlated_outputs(),
        )


class PriorArrays(eqx.Module):
    """Prior constants as arrays (so they are arguments, not compiled-in constants)."""

    mu_loc: Float[Array, " K"]
    mu_scale: Float[Array, " K"]
    omega_scale: Float[Array, " R"]  # the R parameters with between-patient variability
    beta_scale: Float[Array, " E"]
    add_scale: Float[Array, " A"]
    prop_scale: Float[Array, " B"]
    omega_occ_scale: Float[Array, " J"] | None = None  # inter-occasion SDs (with iov)
    tau_loc: Float[Array, " T"] | None = None  # log-normal prior of tau (OU outputs only)
    tau_scale: Float[Array, " T"] | None = None

    @classmethod
    def from_spec(
        cls,
        spec: PopulationModel,
        structure: ProgramStructure,
        effects: tuple[tuple[str, str], ...],
        arrays: CohortArrays | None = None,
    ) -> PriorArrays:
        """Collect the prior constants of a population model.

        ``arrays`` (the cohort's): where the default prior of an OU correlation time is
        centred (:func:`default_tau_median`); needed only with ``residual_correlation``.
        """
        tau = {}
        if structure.ou_outputs:
            tau = _tau_prior(spec, structure.ou_outputs, arrays)
        mu_loc, mu_scale = spec.mu_prior()
        add, prop = spec.sigma_prior()
        beta = np.array([float(spec.priors.get(f"beta.{p}.{t}", 1.0)) for p, t in effects])
        return cls(
            mu_loc=jnp.asarray(mu_loc),
            mu_scale=jnp.asarray(mu_scale),
            omega_scale=jnp.asarray(spec.omega_prior()[random_index(spec.model)]),
            beta_scale=jnp.asarray(beta, dtype=float).reshape(-1),
            add_scale=jnp.asarray(add[list(structure.add_outputs)]).reshape(-1),
            prop_scale=jnp.asarray(prop[list(structure.prop_outputs)]).reshape(-1),
            omega_occ_scale=jnp.asarray(spec.omega_occ_prior()) if structure.iov else None,
            **tau,
        )


#: SD on the log scale of the default prior of an OU correlation time: a factor ~20 either
#: way at two SDs, because the data-informed centre is only a guess of the time scale.
TAU_PRIOR_SD = 1.5


def default_tau_median(arrays: CohortArrays, output: int) -> float:
    """Default prior median of an output's OU correlation time (time units of the data).

    The geometric mean of the median interval between consecutive observations of that
    output and the median span of a patient's record of it: a correlation that is
    neither shorter than the sampling nor longer than the record (CGM every 5 min over a
    day: about 85 min). 1.0 when no patient has two observations of it.
    """
    gaps, spans = [], []
    for t, o, m in zip(
        np.asarray(arrays.obs_time),
        np.asarray(arrays.obs_output),
        np.asarray(arrays.obs_mask),
        strict=True,
    ):
        ts = np.sort(t[m & (o == output)])
        if ts.size > 1:
            gaps.append(np.diff(ts))
            spans.append(ts[-1] - ts[0])
    gap = np.concatenate(gaps) if gaps else np.zeros(0)
    gap = gap[gap > 0]
    if not gap.size:
        return 1.0
    return float(np.sqrt(np.median(gap) * max(np.median(spans), np.median(gap))))


def _tau_prior(spec: PopulationModel, outputs: tuple[int, ...], arrays) -> dict[str, Array]:
    """``tau_loc`` (log median) and ``tau_scale`` (log SD) of the OU outputs' priors."""
    loc, scale = [], []
    for k in outputs:
        name = spec.model.output_names[k]
        given = spec.priors.get(f"tau.{name}")
        if given is None:
            if arrays is None:
                raise ValueError(f"the default prior of tau.{name} needs the cohort's arrays.")
            given = (default_tau_median(arrays, k), TAU_PRIOR_SD)
        median, sd = (float(v) for v in given)
        if median <= 0 or sd <= 0:
            raise InputError(
                f"Prior tau.{name} = {given}: (median, sd_log) must both be > 0 (median in the "
                "time units of the data)."
            )
        loc.append(np.log(median))
        scale.append(sd)
    return {"tau_loc": jnp.asarray(loc), "tau_scale": jnp.asarray(scale)}


def population_mean(
    mu: Float[Array, " K"],
    beta: Float[Array, " E"],
    data: FitData,
    n_params: int,
) -> Float[Array, "P K"]:
    """Each patient's expected log parameters given covariates: ``mu + X beta + allometric``."""
    shift = data.allometric + mu
    if beta.shape[0]:
        contrib = data.design[:, data.effect_term] * beta  # (P, E)
        onehot = jnp.eye(n_params)[data.effect_param]  # (E, K)
        shift = shift + contrib @ onehot
    return shift


class WhitenedNormal(dist.Distribution):
    """``N(loc, Uᵀ U)`` over the last axis, for an upper-triangular ``U`` (``scale_tril = Uᵀ``).

    NumPyro's ``MultivariateNormal`` would do, but its batched triangular solves are LAPACK
    calls per patient; this one uses the unrolled solves of
    :mod:`twin_uq.inference.whitening` (see there why).
    """

    arg_constraints: ClassVar[dict] = {"loc": dist.constraints.real_vector}
    support = dist.constraints.real_vector
    reparametrized_params: ClassVar[list[str]] = ["loc", "upper"]
    pytree_data_fields = ("loc", "upper")

    def __init__(self, loc, upper, *, validate_args=None):
        self.loc, self.upper = loc, upper
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        """``loc + Uᵀ ε`` with standard normal ``ε``."""
        eps = random.normal(key, sample_shape + self.batch_shape + self.event_shape)
        return self.loc + jnp.einsum("...lk,...l->...k", self.upper, eps)

    def log_prob(self, value):
        """``-½ |U⁻ᵀ (value - loc)|² - Σ log U_kk - K/2 log 2π``."""
        white = solve_upper_transposed(self.upper, value - self.loc)
        log_det = jnp.sum(jnp.log(jnp.diagonal(self.upper, axis1=-2, axis2=-1)), -1)
        K = self.event_shape[0]
        return -0.5 * jnp.sum(white**2, -1) - log_det - 0.5 * K * jnp.log(2 * jnp.pi)


# Where NumPyro runs the program outside ``jit`` (the guide's set-up and its search for valid
# initial parameters at the start of SVI and Laplace, which stay eager so that they can raise
# "Cannot find valid initial parameters"; the draws' post-processing), the cohort likelihood
# ran operation by operation: hundreds of small XLA compilations (guide set-up of an SVI fit
# of 6 oral patients: 568 compilations and 50 s on the loaded 2-core machine; 201 and 27 s
# with this, 2026-12-07). Outside a trace it runs as one compiled program.
# Inside one (NUTS, the SVI and Laplace updates, the Laplace Hessian) it is traced inline as
# before, so the samplers' programs and their draws are unchanged to the bit (checked for
# NUTS, SVI and Laplace fits of 6 oral patients, same seed, before and after).
_compiled_loglik = jax.jit(cohort_loglik, static_argnums=(0, 1))


def _staged() -> bool:
    """Whether the program is being traced into a compiled program (``jit``, ``scan``).

    Eager ``grad`` and ``vmap`` evaluate operations on constants at once, so a new
    constant is a tracer only while a program is being staged out.
    """
    return isinstance(jnp.zeros(()), jax.core.Tracer)


def _loglik(structure: ProgramStructure, theta, data: FitData, residual: ResidualParams):
    fn = cohort_loglik if _staged() else _compiled_loglik
    return fn(structure.model, structure.settings, theta, data, residual)


def cohort_program(
    structure: ProgramStructure, data: FitData, priors: PriorArrays, centering: Centering
) -> None:
    """NumPyro model of the cohort: priors, random effects, ODE likelihood.

    ``centering`` parameterises the diagonal random effects (chosen when the fit was
    prepared; unused for correlated ones).
    """
    K, P = structure.n_params, data.n_patients
    model = structure.model
    # Sites cover the R parameters with between-patient variability (random_effects).
    R = len(random_index(model))
    mu = numpyro.sample("mu", dist.Normal(priors.mu_loc, priors.mu_scale).to_event(1))
    if R:
        omega = numpyro.sample("omega", dist.HalfNormal(priors.omega_scale).to_event(1))
    if structure.n_effects:
        beta = numpyro.sample("beta", dist.Normal(0.0, priors.beta_scale).to_event(1))
    else:
        beta = jnp.zeros(0)
    mean = population_mean(mu, beta, data, K)
    residual = residual_params(structure, priors, data.error_code.shape[0])
    if not R:
        log_theta = mean
    elif structure.correlated:
        chol = numpyro.sample("corr_chol", dist.LKJCholesky(R, concentration=2.0))
        with numpyro.plate("patient", P, dim=-1):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([R]).to_event(1))
        log_theta = embed_columns(model, mean, random_columns(model, mean) + (z @ chol.T) * omega)
        numpyro.deterministic("corr", chol @ chol.T)
    elif centering.whitened:
        full = embed_omega(model, omega)
        loc, upper = centering.latent_prior(mean, full, residual.add, residual.prop)
        with numpyro.plate("patient", P, dim=-1):
            z = numpyro.sample(
                "z", WhitenedNormal(random_columns(model, loc), _random_block(model, upper))
            )
        log_theta = centering.log_theta(mean, full, embed_columns(model, loc, z), (loc, upper))
    else:
        w = random_columns(model, centering.weights)
        mean_r = random_columns(model, mean)
        with numpyro.plate("patient", P, dim=-1):
            z = numpyro.sample("z", dist.Normal(w * mean_r, omega**w).to_event(1))
        log_theta = embed_columns(model, mean, individual_log_theta(mean_r, omega, z, w))
    theta = numpyro.deterministic("theta", to_natural(model, log_theta))
    shift = occasion_effects(structure, priors, data)
    if not structure.with_likelihood:
        return
    if data.arrays.change_time is not None:  # time-varying covariates, occasions: (P, S, K)
        theta = likelihood_theta(model, log_theta, beta, data, shift)
    ll, _ = _loglik(structure, theta, data, residual)
    numpyro.factor("loglik", jnp.sum(ll))


def occasion_effects(
    structure: ProgramStructure, priors: PriorArrays, data: FitData
) -> Float[Array, "P S K"] | None:
    """Sample the inter-occasion SDs and random effects; their latent shift per segment.

    ``omega_occ`` ``(J,)`` and non-centred ``kappa`` ``(P, M, J)`` (occasion indices
    beyond a patient's own are unused: their ``kappa`` stays at its prior). ``None``
    without ``iov``.
    """
    if not structure.iov:
        return None
    J, P, M = len(structure.iov), data.n_patients, structure.n_occasions
    omega_occ = numpyro.sample("omega_occ", dist.HalfNormal(priors.omega_occ_scale).to_event(1))
    kappa = numpyro.sample("kappa", dist.Normal(0.0, 1.0).expand([P, M, J]).to_event(3))
    return occasion_shift(
        kappa, omega_occ, data.segment_occasion, structure.iov, structure.n_params
    )


def _random_block(model: Model, upper: Float[Array, "P K K"]) -> Float[Array, "P R R"]:
    """The block of the whitening factor ``U`` of the parameters with variability.

    With ``omega = 0`` at a fixed effect, ``I + Ω F Ω`` and its factor ``U`` are the
    identity in that row and column, so this block is the factor of the random effects'
    own matrix and the fixed effect's latent is its ``loc`` (0: the population mean).
    """
    if all_random(model):
        return upper
    r = random_index(model)
    return upper[:, r][:, :, r]


def residual_params(
    structure: ProgramStructure, priors: PriorArrays, n_outputs: int
) -> ResidualParams:
    """Sample the residual error parameters and scatter them into per-output vectors."""
    s_add = s_prop = nu = None
    if structure.add_outputs:
        s_add = numpyro.sample("sigma_add", dist.HalfNormal(priors.add_scale).to_event(1))
    if structure.prop_outputs:
        s_prop = numpyro.sample("sigma_prop", dist.HalfNormal(priors.prop_scale).to_event(1))
    if structure.student_t:
        nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
    add, prop, nu = per_output_residuals(
        n_outputs, structure.add_outputs, s_add, structure.prop_outputs, s_prop, nu
    )
    if not structure.ou_outputs:
        return ResidualParams(add=add, prop=prop, nu=nu)
    tau = numpyro.sample("tau", dist.LogNormal(priors.tau_loc, priors.tau_scale).to_event(1))
    return ResidualParams(add=add, prop=prop, nu=nu, tau=tau_per_output(structure, tau, n_outputs))


def tau_per_output(structure: ProgramStructure, tau: Array, n_outputs: int) -> Array:
    """``(*B, O)`` correlation times from the ``tau`` site ``(*B, T)``; 0 at other outputs."""
    out = jnp.zeros((*jnp.shape(tau)[:-1], n_outputs))
    return out.at[..., jnp.asarray(structure.ou_outputs)].set(tau)
