"""The result of simulating one patient (or a batch, with leading axes)."""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from twin_uq.errors import InputError
from twin_uq.model.base import Model

__all__ = ["Trajectory"]


class Trajectory(eqx.Module):
    """States and outputs of a model at requested times.

    Attributes
    ----------
    times
        ``(T,)`` requested times (model time unit), in the order given.
    states
        ``(T, n_states)`` state values; at a dose time, the post-dose state.
    outputs
        ``(T, n_outputs)`` noise-free outputs (``model.observe``).
    ok
        Boolean scalar: the solve succeeded and every value is finite. When ``False`` the
        values are not to be used (a likelihood should become ``-inf``).
    status
        ``int32`` scalar: 0 ok, 1 solver failure (step budget, step-size collapse),
        2 non-finite values.
    """

    times: Float[Array, "... T"]
    states: Float[Array, "... T n_states"]
    outputs: Float[Array, "... T n_outputs"]
    ok: Bool[Array, "*batch"]
    status: Int[Array, "*batch"]

    def to_xarray(self, model: Model):
        """An ``xarray.Dataset`` with ``states`` (time, state) and ``outputs`` (time, output).

        Only for an unbatched trajectory. ``ok`` and ``status`` become attributes.
        """
        import xarray as xr

        if np.ndim(self.times) != 1:
            raise InputError("to_xarray needs an unbatched Trajectory (times of shape (T,)).")
        coords = {
            "time": np.asarray(self.times),
            "state": list(model.states),
            "output": list(model.output_names),
        }
        return xr.Dataset(
            {
                "states": (("time", "state"), np.asarray(self.states)),
                "outputs": (("time", "output"), np.asarray(self.outputs)),
            },
            coords=coords,
            attrs={
                "model": model.name,
                "ok": int(bool(self.ok)),
                "status": int(self.status),
                "time_unit": model.card.time_unit,
            },
        )
