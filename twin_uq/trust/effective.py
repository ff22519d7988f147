"""Effective number of observations per patient when residuals are autocorrelated.

With an Ornstein-Uhlenbeck residual (``residual_correlation="ou"``) a dense trace of
``n`` points carries less information than ``n`` independent measurements: a CGM value
every 5 minutes with a 45-minute correlation time is worth about one independent
measurement per 50 minutes. The trust rules that count measurements count these.
"""

from __future__ import annotations

import numpy as np

from twin_uq.inference.residual import ou_effective_observations

__all__ = ["effective_observations"]


def effective_observations(post) -> np.ndarray:
    """``(P,)`` effective number of uncensored observations of each fitted patient.

    Per output with an OU residual: ``1 + sum (1 - rho_j) / (1 + rho_j)`` over consecutive
    gaps, with ``rho_j = exp(-dt_j / tau)`` at the posterior median ``tau``
    (:func:`~twin_uq.inference.residual.ou_effective_observations`); other outputs count
    each observation once. Without a residual correlation this is the plain count.
    """
    cd = post.idata["constant_data"].to_dataset()
    usable = np.asarray(cd["obs_mask"].values, bool) & ~np.asarray(cd["obs_censored"].values, bool)
    counts = usable.sum(axis=1).astype(float)
    ds = post.posterior
    if "tau" not in ds:
        return counts
    times = np.asarray(cd["obs_time"].values, float)
    outs = np.asarray(cd["obs_output"].values, int)
    names = list(post.model.output_names)
    for out in ds["ou_output"].values:
        k = names.index(str(out))
        tau = float(np.median(ds["tau"].sel(ou_output=out).values))
        for i in range(usable.shape[0]):
            here = usable[i] & (outs[i] == k)
            counts[i] += ou_effective_observations(times[i][here], tau) - here.sum()
    return counts
