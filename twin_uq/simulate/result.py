"""The result of simulating one patient (or a batch, with leading axes)."""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Float

from twin_uq.errors import InputError
from twin_uq.model.base import Model
from twin_uq.simulate.status import SolveStatus, describe_failures, explain

__all__ = ["Trajectory"]


class Trajectory(eqx.Module):
    """States and outputs of a model at requested times, and how the solve ended.

    What every solve path (exact, adaptive ODE, fixed-step RK4) returns through
    :func:`twin_uq.simulate.solve`.

    Attributes
    ----------
    times
        ``(T,)`` requested times (model time unit), in the order given.
    states
        ``(T, n_states)`` state values; at a dose time, the post-dose state.
    outputs
        ``(T, n_outputs)`` noise-free outputs (``model.observe``).
    status
        :class:`~twin_uq.simulate.status.SolveStatus` (one per trajectory of a batch):
        ``SolveStatus.successful`` or why the values are not to be used.
    """

    times: Float[Array, "... T"]
    states: Float[Array, "... T n_states"]
    outputs: Float[Array, "... T n_outputs"]
    status: SolveStatus

    @property
    def ok(self) -> Bool[Array, "*batch"]:
        """The solve succeeded and every value is finite (``status == successful``).

        When ``False`` the values are not to be used (a likelihood should become ``-inf``).
        """
        return self.status == SolveStatus.successful

    def describe(self) -> str:
        """The status in words: ``"successful"``, or what failed and what to change.

        For a concrete trajectory (not inside ``jit``); for a batch, counts per status.
        """
        if np.ndim(self.times) == 1:
            info = explain(self.status)
            return info.name if info.name == "successful" else f"{info.name}: {info.text}"
        return describe_failures(self.status, "trajectory") or "successful"

    def to_xarray(self, model: Model):
        """An ``xarray.Dataset`` with ``states`` (time, state) and ``outputs`` (time, output).

        Only for an unbatched trajectory. Attributes: ``ok`` (0/1), ``status`` (the
        member's name), ``status_message`` and ``status_remedy``.
        """
        import xarray as xr

        if np.ndim(self.times) != 1:
            raise InputError("to_xarray needs an unbatched Trajectory (times of shape (T,)).")
        info = explain(self.status)
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
                # 0/1, not bool: netCDF attributes cannot hold booleans.
                "ok": int(bool(self.ok)),
                "status": info.name,
                "status_message": info.message,
                "status_remedy": info.remedy,
                "time_unit": model.card.time_unit,
            },
        )
