"""PyMC backend: the same population model, compiled to a PyMC model around the JAX likelihood.

:func:`build_pymc_model` writes the :class:`~twin_uq.inference.population.PopulationModel`
of a :class:`~twin_uq.inference.prepare.PreparedFit` as a ``pm.Model`` with exactly the
priors and parameterisation of the NumPyro program
(:func:`twin_uq.inference.numpyro_model.cohort_program`):

* ``mu ~ Normal(mu_loc, mu_scale)``, ``omega ~ HalfNormal(omega_scale)``,
  ``beta ~ Normal(0, beta_scale)``;
* diagonal random effects as the fit's :class:`~twin_uq.inference.reparam.Centering`
  parameterises them: fixed weights ``w``, ``z ~ Normal(w·mean, omega**w)``,
  ``log theta = mean + omega**(1-w)·(z - w·mean)``; with ``"auto"`` the whitened latents
  ``z ~ MvNormal(loc, Uᵀ U)``, ``log theta = mean + Ω U⁻ᵀ (z - loc)``
  (:mod:`twin_uq.inference.centering`);
* correlated random effects: ``corr_chol ~ LKJCorr(K, eta=2)`` (a Cholesky factor),
  ``z ~ Normal(0, 1)``, ``log theta = mean + (z @ corr_chol.T)·omega``;
* ``sigma_add``, ``sigma_prop ~ HalfNormal``, ``nu ~ Gamma(2, 0.1)`` (Student-t);
* ``theta = exp(log theta)`` (the logistic function for a logit-normal parameter); the
  random effects ``omega``, ``z`` cover the parameters with between-patient variability
  only (dimension ``random_parameter`` when some are fixed effects, ``bsv=False``);
* the ODE likelihood, covariates' allometric offsets, residual models and censoring as
  one PyTensor Op wrapping the JAX cohort log-likelihood
  (:mod:`twin_uq.inference.pymc_op`), added as ``pm.Potential("loglik", ...)``.

:func:`run_pymc` samples it with nutpie (the default, as ``pm.sample`` itself picks
nutpie when it is installed), PyMC's NUTS, or PyMC's JAX samplers and returns
a :class:`~twin_uq.inference.backends.BackendResult` with the same site names and shapes
as the NumPyro backend, so :func:`twin_uq.fit` post-processes it unchanged.

Samplers
--------
``"nutpie"`` (default)
    ``nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")``: the Op is
    translated to its JAX function, so the log density and its gradient are one JAX
    program; chains run in nutpie's threads, no new processes. (nutpie's default Numba
    backend would run the Op in Numba's object mode, slowly and with a warning; it is not
    used.) Measured on a 12-patient oral PK cohort: PyMC's own NUTS did not finish in 15
    minutes where NumPyro takes about one.
``"pymc"``
    ``pm.sample`` (NUTS) with PyTensor's C/VM linker (``mode="CVM"``; its default Numba
    linker would run the Op in object mode), chains in worker processes (``forkserver``:
    JAX is not fork-safe); the Op runs its jitted JAX value and VJP functions. Worker
    processes import the user's script again, so a script that calls ``tq.fit`` outside
    ``if __name__ == "__main__":`` gets its chains run one after another in this process
    instead, with a warning that says so (see :mod:`twin_uq._processes`).
``"numpyro"``, ``"blackjax"``
    ``pm.sample(nuts_sampler=...)``: PyTensor's JAX linker translates the Op to its JAX
    function (no Python callback); ``blackjax`` needs the ``blackjax`` package.
"""

from __future__ import annotations

import importlib
import os
import time
import warnings
from typing import Any, Protocol

import jax
import numpy as np

from twin_uq._processes import unguarded_main_script
from twin_uq.errors import DependencyError, InputError
from twin_uq.inference.backends import BackendResult
from twin_uq.inference.prepare import PreparedFit
from twin_uq.inference.pytensor_blas import link_blas
from twin_uq.inference.whitening import whitened_log_theta
from twin_uq.model.scales import logit_mask, random_index

__all__ = ["PYMC_SAMPLERS", "SamplerSettings", "build_pymc_model", "require_pymc", "run_pymc"]

#: Samplers the PyMC method can run the PyMC model with (the default first).
PYMC_SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
_INSTALL = "pip install 'twin-uq[pymc]'"


def require_pymc(module: str = "pymc"):
    """Import an optional dependency of the PyMC backend or say how to install it.

    Raises
    ------
    ImportError
        Naming the extra ``twin-uq[pymc]``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise DependencyError(
            f"The PyMC backend needs {module!r}, which is not installed. "
            f"Install the optional extra: {_INSTALL} (pymc, pytensor, nutpie)."
        ) from err


def _residual_sd(kind: str, outputs: tuple[int, ...], scale, n_out: int):
    """``(n_out,)`` residual SDs of one kind (``"add"``, ``"prop"``) for the PyMC model.

    A half-normal site ``sigma_<kind>`` over the outputs that have this error term (dims
    ``<kind>_output``), zero at the others; no site when no output has it.
    """
    pm = require_pymc()
    pt = require_pymc("pytensor.tensor")
    sd = pt.zeros(n_out)
    if outputs:
        site = pm.HalfNormal(f"sigma_{kind}", np.asarray(scale), dims=f"{kind}_output")
        sd = pt.set_subtensor(sd[list(outputs)], site)
    return sd


def build_pymc_model(prepared: PreparedFit):
    """The population model of a prepared fit as a ``pm.Model`` (extend it by hand).

    Coordinates: ``parameter``, ``patient`` and, where present, ``effect``,
    ``add_output``, ``prop_output``. Free variables: ``mu``, ``omega``, ``beta``, ``z``,
    ``corr_chol``, ``sigma_add``, ``sigma_prop``, ``nu`` (as in the NumPyro program);
    deterministic ``theta`` (patient, parameter); potential ``loglik``.

    Returns
    -------
    pymc.Model
    """
    pm = require_pymc("pymc")
    pt = require_pymc("pytensor.tensor")
    from twin_uq.inference.pymc_op import CohortLoglikOp

    link_blas()  # before PyTensor's own search warns that it found none

    s = prepared.structure
    data = prepared.data
    priors = prepared.priors
    model = s.model
    K, P = s.n_params, data.n_patients
    n_out = int(data.error_code.shape[0])
    coords: dict[str, list] = {
        "parameter": list(model.parameter_names),
        "patient": list(prepared.cohort.ids),
    }
    if s.n_effects:
        coords["effect"] = list(prepared.design.effect_labels)
    if s.add_outputs:
        coords["add_output"] = [model.output_names[i] for i in s.add_outputs]
    if s.prop_outputs:
        coords["prop_output"] = [model.output_names[i] for i in s.prop_outputs]
    # The random effects cover the parameters with between-patient variability only (as in
    # the NumPyro program); a fixed effect's latent value is its population mean.
    r = random_index(model)
    every = len(r) == K
    rdim = "parameter" if every else "random_parameter"
    if not every:
        coords[rdim] = [model.parameter_names[k] for k in r]

    def cols(x):
        return x if every else x[:, r]

    def embed(base, values):
        return values if every else pt.set_subtensor(base[:, r], values)

    allometric = np.asarray(data.allometric)
    with pm.Model(coords=coords) as pmodel:
        mu = pm.Normal(
            "mu",
            np.asarray(priors.mu_loc),
            np.asarray(priors.mu_scale),
            dims="parameter",
        )
        if len(r):
            omega = pm.HalfNormal("omega", np.asarray(priors.omega_scale), dims=rdim)
            full = omega if every else pt.set_subtensor(pt.zeros(K)[r], omega)
        mean = pt.as_tensor_variable(allometric) + mu
        if s.n_effects:
            beta = pm.Normal("beta", 0.0, np.asarray(priors.beta_scale), dims="effect")
            contrib = np.asarray(data.design)[:, np.asarray(data.effect_term)] * beta  # (P, E)
            onehot = np.eye(K)[np.asarray(data.effect_param)]  # (E, K)
            mean = mean + pt.dot(contrib, onehot)
        add = _residual_sd("add", s.add_outputs, priors.add_scale, n_out)
        prop = _residual_sd("prop", s.prop_outputs, priors.prop_scale, n_out)
        if s.student_t:
            nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
        else:
            nu = pt.constant(1e6, dtype="float64")
        if not len(r):
            log_theta = mean
        elif s.correlated:
            chol = pm.LKJCorr("corr_chol", n=len(r), eta=2.0)
            z = pm.Normal("z", 0.0, 1.0, dims=("patient", rdim))
            log_theta = embed(mean, cols(mean) + pt.dot(z, chol.T) * omega)
        else:
            auto = prepared.centering.auto
            if auto is None:
                w = cols(np.asarray(prepared.centering.weights))
                mean_r = cols(mean)
                z = pm.Normal("z", w * mean_r, omega**w, dims=("patient", rdim))
                log_theta = embed(mean, mean_r + omega ** (1.0 - w) * (z - w * mean_r))
            else:  # the whitened latents of the NumPyro program, in PyTensor
                auto = jax.tree.map(np.asarray, auto)
                loc, upper = auto.latent_prior(mean, full, add, prop, xp=pt)
                block = upper if every else upper[:, r][:, :, r]
                z = pm.MvNormal(
                    "z", mu=cols(loc), chol=block.swapaxes(-1, -2), dims=("patient", rdim)
                )
                log_theta = whitened_log_theta(mean, full, embed(loc, z), loc, upper, xp=pt)
        logit = logit_mask(model)
        if logit.any():  # logit-normal parameters (twin_uq.model.scales.to_natural)
            natural = pt.where(
                logit, pt.sigmoid(log_theta), pt.exp(pt.where(logit, 0.0, log_theta))
            )
        else:
            natural = pt.exp(log_theta)
        theta = pm.Deterministic("theta", natural, dims=("patient", "parameter"))
        op = CohortLoglikOp(s, data)
        pm.Potential("loglik", op(theta, add, prop, nu))
    del P
    return pmodel


def _latent_names(prepared: PreparedFit) -> list[str]:
    s = prepared.structure
    names = ["mu", "omega", "z"] if len(random_index(s.model)) else ["mu"]
    if s.n_effects:
        names.append("beta")
    if s.correlated and len(random_index(s.model)):
        names.append("corr_chol")
    if s.add_outputs:
        names.append("sigma_add")
    if s.prop_outputs:
        names.append("sigma_prop")
    if s.student_t:
        names.append("nu")
    return names


def _group(trace, name: str):
    # PyMC 6 returns an xarray.DataTree; nutpie may return an arviz InferenceData.
    try:
        return trace[name]
    except (KeyError, TypeError):
        return getattr(trace, name)


def _stats(trace, sampler: str) -> dict[str, np.ndarray]:
    """Map each sampler's sample_stats onto the NumPyro backend's names and signs."""
    ss = _group(trace, "sample_stats")
    have = set(ss.data_vars) if hasattr(ss, "data_vars") else set(ss.keys())

    def get(*names):
        for n in names:
            if n in have:
                return np.asarray(ss[n].values)
        return None

    out: dict[str, np.ndarray] = {}
    out["diverging"] = get("diverging")
    out["energy"] = get("energy")
    out["n_steps"] = get("n_steps")
    out["tree_depth"] = get("tree_depth", "depth")
    out["acceptance_rate"] = get("acceptance_rate", "mean_tree_accept")
    out["step_size"] = get("step_size")
    lp = get("lp", "logp")
    if lp is not None and sampler in ("numpyro", "blackjax"):
        # PyMC's JAX samplers store the potential energy (-log density) under "lp".
        lp = -lp
    out["lp"] = lp
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise RuntimeError(
            f"Sampler {sampler!r} returned no {missing} in sample_stats (have {sorted(have)})."
        )
    out["diverging"] = out["diverging"].astype(bool)
    out["n_steps"] = out["n_steps"].astype(int)
    out["tree_depth"] = out["tree_depth"].astype(int)
    return out


def _sampling_seconds(trace, sampler: str, total: float, warmup: int, draws: int) -> float:
    """Seconds spent drawing post-warm-up samples (chains in parallel: the slowest chain)."""
    ss = _group(trace, "sample_stats")
    if sampler == "pymc" and "perf_counter_diff" in ss.data_vars:
        return float(np.asarray(ss["perf_counter_diff"].values).sum(axis=1).max())
    # Other samplers report no per-draw time: share the wall time pro rata by iterations.
    return total * draws / max(warmup + draws, 1)


class SamplerSettings(Protocol):
    """What :func:`run_pymc` reads of a ``PyMC`` method object.

    (A protocol: the method objects sit above this module, in ``inference/methods.py``.)
    """

    sampler: str
    chains: int
    warmup: int
    draws: int
    target_accept: float
    max_tree_depth: int


def run_pymc(
    prepared: PreparedFit,
    method: SamplerSettings,
    *,
    seed: int = 0,
    progress: bool = False,
    cores: int | None = None,
) -> BackendResult:
    """Sample the PyMC model of a prepared fit; latent draws named as the NumPyro backend's.

    Parameters
    ----------
    method
        The ``PyMC`` method object: ``sampler`` is ``"nutpie"``, ``"pymc"`` (PyMC NUTS),
        ``"numpyro"`` or ``"blackjax"`` (PyMC's JAX samplers; see the module docstring for
        how each runs the JAX likelihood), and the NUTS settings ``chains``, ``warmup``,
        ``draws``, ``target_accept``, ``max_tree_depth``.
    cores
        Worker processes for ``sampler="pymc"`` (default: ``min(chains, cpu count)``;
        1, chains in this process, when the calling script has no ``__main__`` guard).

    Returns
    -------
    BackendResult
        ``samples`` with ``(chain, draw, ...)`` arrays of ``mu``, ``omega``, ``z``, and
        ``beta``, ``corr_chol``, ``sigma_add``, ``sigma_prop``, ``nu`` where the model has
        them; NUTS ``sample_stats``; ``info`` with ``backend="pymc"`` and the sampler.
    """
    if method.sampler not in PYMC_SAMPLERS:
        raise InputError(f"Unknown PyMC sampler {method.sampler!r}; choose one of {PYMC_SAMPLERS}.")
    sampler, chains, warmup, draws = method.sampler, method.chains, method.warmup, method.draws
    target_accept, max_tree_depth = method.target_accept, method.max_tree_depth
    pm = require_pymc("pymc")
    pmodel = build_pymc_model(prepared)
    names = _latent_names(prepared)
    # All chains start at the population median, without jitter (as the NumPyro backend).
    # They are passed to the samplers, not set on the variables: a model with initvals
    # cannot be transformed by PyMC (do, observe, remove_value_transforms).
    init = prepared.init_values()
    t0 = time.perf_counter()
    info: dict[str, Any] = {"backend": "pymc", "sampler": sampler}
    if sampler == "pymc":
        n_cores = cores or min(chains, os.cpu_count() or 1)
        if n_cores > 1 and (script := unguarded_main_script()) is not None:
            warnings.warn(
                f"sampler='pymc' runs its {chains} chains one after another in this process: "
                f"{script} calls tq.fit outside 'if __name__ == \"__main__\":', and PyMC's "
                "chain processes would run the script again. Put the script's code under "
                "that guard to run chains in parallel.",
                RuntimeWarning,
                stacklevel=2,
            )
            n_cores = 1
        with pmodel:
            trace = pm.sample(
                draws=draws,
                tune=warmup,
                chains=chains,
                cores=n_cores,
                random_seed=seed,
                init="adapt_diag",
                initvals=init,
                target_accept=target_accept,
                max_treedepth=max_tree_depth,
                progressbar=progress,
                compute_convergence_checks=False,
                mp_ctx="forkserver" if n_cores > 1 else None,
                var_names=names,
                # PyTensor's default Numba linker would run the Op in object mode.
                compile_kwargs={"mode": "CVM"},
            )
        info.update(
            cores=n_cores, mp_ctx="forkserver" if n_cores > 1 else "none", pytensor_mode="CVM"
        )
    elif sampler == "nutpie":
        nutpie = require_pymc("nutpie")
        compiled = nutpie.compile_pymc_model(
            pmodel,
            backend="jax",
            gradient_backend="jax",
            var_names=names,
            initial_points=init,
            jitter_rvs=set(),
        )
        trace = nutpie.sample(
            compiled,
            draws=draws,
            tune=warmup,
            chains=chains,
            seed=seed,
            target_accept=target_accept,
            maxdepth=max_tree_depth,
            progress_bar=progress,
        )
        info.update(nutpie_backend="jax", gradient_backend="jax")
    else:
        if sampler == "blackjax":
            require_pymc("blackjax")
        import jax
        from pymc.sampling.jax import sample_jax_nuts

        chain_method = "parallel" if chains <= jax.local_device_count() else "vectorized"
        trace = sample_jax_nuts(
            draws=draws,
            tune=warmup,
            chains=chains,
            target_accept=target_accept,
            random_seed=seed,
            jitter=False,
            initvals=init,
            model=pmodel,
            var_names=names,
            nuts_kwargs={"max_tree_depth": max_tree_depth},
            progressbar=progress,
            chain_method=chain_method,
            compute_convergence_checks=False,
            nuts_sampler=sampler,
        )
        info.update(chain_method=chain_method)
        info.update(pytensor_linker="jax")
    total = time.perf_counter() - t0
    posterior = _group(trace, "posterior")
    samples = {n: np.asarray(posterior[n].values, dtype=np.float64) for n in names}
    stats = _stats(trace, sampler)
    sampling = _sampling_seconds(trace, sampler, total, warmup, draws)
    return BackendResult(
        samples=samples,
        sample_stats=stats,
        timings={"compile_and_warmup": total - sampling, "sampling": sampling, "total": total},
        info=info,
    )
