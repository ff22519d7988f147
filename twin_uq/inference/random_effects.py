"""Which parameters have between-patient variability, and placing their arrays among all K.

A parameter declared ``bsv=False`` is a fixed effect shared by all patients: the fit has no
``omega`` and no random effect for it (NUTS samples no dead dimension). The sampled sites
``omega`` ``(R,)`` and ``z`` ``(P, R)`` cover the ``R`` parameters with variability only;
wherever the full ``(K,)`` between-patient SD is needed (the population distribution of
a patient, summaries, the whitening algebra) a fixed parameter has ``omega = 0``, which is
what it means: every patient's latent value equals the population mean.

For a model whose parameters all vary (the usual case) these helpers return their input
unchanged, so the arithmetic, and the numbers, are those of the fits before fixed
parameters existed.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from twin_uq.model.base import Model
from twin_uq.model.scales import random_index

__all__ = ["all_random", "embed_columns", "embed_omega", "occasion_shift", "random_columns"]


def all_random(model: Model) -> bool:
    """Whether every parameter has between-patient variability (no fixed effect)."""
    return all(p.bsv for p in model.parameters)


def embed_omega(model: Model, omega: Float[Array, "... R"], xp=jnp) -> Float[Array, "... K"]:
    """The ``(..., K)`` between-patient SD from the sampled ``(..., R)``: 0 at fixed effects."""
    if all_random(model):
        return omega
    K = len(model.parameters)
    r = random_index(model)
    if xp is np:
        out = np.zeros((*np.shape(omega)[:-1], K))
        out[..., r] = omega
        return out
    return jnp.zeros((*omega.shape[:-1], K), dtype=omega.dtype).at[..., r].set(omega)


def embed_columns(
    model: Model, base: Float[Array, "... K"], values: Float[Array, "... R"], xp=jnp
) -> Float[Array, "... K"]:
    """``base`` with the columns of the parameters with variability replaced by ``values``."""
    if all_random(model):
        return values
    r = random_index(model)
    if xp is np:
        out = np.array(base, dtype=float, copy=True)
        out[..., r] = values
        return out
    return base.at[..., r].set(values)


def random_columns(model: Model, x: Float[Array, "... K"]) -> Float[Array, "... R"]:
    """The columns of ``x`` of the parameters with variability (``x`` itself if all vary)."""
    if all_random(model):
        return x
    return x[..., random_index(model)]


def occasion_shift(
    kappa: Float[Array, "P M J"],
    omega_occ: Float[Array, " J"],
    occasion: Int[Array, "P S"],
    iov_index: tuple[int, ...],
    n_params: int,
) -> Float[Array, "P S K"]:
    """The latent shift of every segment from inter-occasion variability.

    Segment ``s`` of patient ``p`` lies in occasion ``occasion[p, s]``; its parameters
    with occasion variability (model indices ``iov_index``, ``J`` of them) move by
    ``omega_occ * kappa[p, occasion[p, s]]``, the others by 0.
    """
    per_segment = jnp.take_along_axis(kappa, occasion[:, :, None], axis=1)  # (P, S, J)
    P, S = occasion.shape
    zeros = jnp.zeros((P, S, n_params), dtype=per_segment.dtype)
    return zeros.at[..., jnp.asarray(iov_index)].set(per_segment * omega_occ)
