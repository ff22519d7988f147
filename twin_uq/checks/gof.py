"""Goodness-of-fit data: observed against population and individual predictions, residuals.

* ``PRED``: the population prediction (typical patient with the patient's covariates,
  random effects 0, at the posterior median of the population mean;
  :func:`~twin_uq.checks.simulate.simulate_design`).
* ``IPRED``: the posterior median of the patient's own noise-free prediction (the fit's
  ``posterior_predictive/f``).
* ``IWRES``: ``(DV - IPRED) / SD``, with ``SD`` the residual SD of the residual contract
  (:func:`twin_uq.inference.residual.residual_sd`) at ``IPRED`` and the posterior median
  residual parameters; on the log scale for ``lognormal`` outputs. Censored points get none.
* ``npde`` when an :class:`~twin_uq.checks.npde.NPDEResult` is given.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.checks.simulate import DesignSimulation, observed_design, simulate_design
from twin_uq.inference.residual import ErrorKind, residual_sd
from twin_uq.posterior.population import population_scale

__all__ = ["gof"]


def _ipred(post) -> np.ndarray:
    """``(P, N)`` posterior median of every observation's noise-free prediction."""
    tree = post.idata
    if "posterior_predictive" in tree.children and "f" in tree["posterior_predictive"]:
        f = tree["posterior_predictive"]["f"].transpose("chain", "draw", "patient", "obs")
        return np.nanmedian(np.asarray(f.values, float), axis=(0, 1))
    return np.full(np.shape(post.arrays.obs_time), np.nan)


def gof(post, *, sims: DesignSimulation | None = None, npde=None, seed: int = 0) -> pd.DataFrame:
    """Goodness-of-fit table of a fit: one row per observation.

    Columns ``patient``, ``output``, ``time``, ``tad``, ``value``, ``censored``, ``pred``,
    ``ipred``, ``iwres`` (and ``npde`` when ``npde`` is given).

    ``sims`` (for ``PRED``) is reused when given; otherwise a small simulation (2
    replicates) computes ``PRED`` only.
    """
    if sims is None:
        sims = simulate_design(post, 2, seed=seed)
    d = observed_design(post)
    ipred = _ipred(post)
    _, add, prop, _ = population_scale(post, post.population_draws())
    a_med, b_med = np.median(add, axis=0), np.median(prop, axis=0)  # (O,)
    code = np.asarray(post.error_codes)[d["output"]]
    out = d["output"]
    sd = np.asarray(residual_sd(jnp.asarray(code), jnp.asarray(ipred), jnp.asarray(a_med[out]),
                                jnp.asarray(b_med[out])))  # fmt: skip
    is_log = code == ErrorKind.LOGNORMAL
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = np.where(is_log, np.log(d["value"]) - np.log(ipred), d["value"] - ipred)
    cens = d["below"] | d["above"]
    iwres = np.where(cens, np.nan, resid / sd)
    m = d["mask"]
    ids = np.broadcast_to(np.asarray(post.patient_ids, dtype=object)[:, None], m.shape)
    names = np.asarray(post.model.output_names, dtype=object)
    table = pd.DataFrame(
        dict(
            patient=ids[m],
            output=names[out[m]],
            time=d["time"][m],
            tad=d["tad"][m],
            value=d["value"][m],
            censored=np.where(d["below"], "below", np.where(d["above"], "above", ""))[m],
            pred=sims.pred[m],
            ipred=ipred[m],
            iwres=iwres[m],
        )
    )
    if npde is not None:
        # Both tables list observations patient by patient in data order.
        table["npde"] = npde.table["npde"].to_numpy()
    table.attrs["approximate"] = bool(post.approximate)
    return table
