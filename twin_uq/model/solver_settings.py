"""How the engine integrates a model: the solver, its tolerances and its step grid.

A model declares its default as ``Model.solver`` (a :class:`SolverSettings`); ``tq.fit``,
``tq.simulate`` and the twins take another one per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from twin_uq.errors import InputError

__all__ = ["SolverSettings"]


@dataclass(frozen=True)
class SolverSettings:
    """How the engine integrates the model.

    Parameters
    ----------
    method
        ``"tsit5"`` (explicit, non-stiff), ``"dopri5"``, ``"kvaerno5"`` (implicit, stiff)
        — adaptive diffrax solvers —, ``"rk4"`` (classical Runge–Kutta on a fixed grid, see
        :mod:`twin_uq.simulate.fixed_step`) or ``"exact"`` (linear models:
        matrix-exponential superposition, no ODE solver).
    rtol, atol
        Step-size controller tolerances (adaptive methods). For ``"rk4"`` they are the
        tolerances of the adaptive reference solve that checks a fit's fixed-step
        predictions afterwards.
    max_steps
        Step budget per integration segment; exceeding it flags the solve as failed.
    dt0
        Initial step (model time unit); ``None`` lets diffrax choose.
    fixed_step
        ``"rk4"`` only: the largest step of the grid (model time unit). The grid also has a
        point at every observation, dose and signal knot, so no step straddles one.
    horizon
        ``"rk4"`` only: the latest time the grid reaches (model time unit); it fixes the
        number of steps, which compiled code needs to know. twin_uq's entry points set it
        from the times they are asked for (:meth:`covering`); a solve asked for a later
        time fails with ``SolveStatus.beyond_horizon`` instead of stretching the steps.
    precision
        ``"rk4"`` only: the floating-point type of the solve, ``"float64"`` (default) or
        ``"float32"``. Parameters go in and states come out in the caller's type (float64
        in a fit), so the likelihood and its sums stay float64; only the integration runs
        in single precision (100-patient Bergman cohort on CPU: the solve's gradient 1.6x,
        the whole log density's 1.4x and a NUTS step 2.1x cheaper). Its rounding
        (relative ~1e-6 over a few hundred steps) is of the order of RK4's own error at a
        1-minute step, and a fit's check against the float64 adaptive reference measures
        both together. Not for stiff or badly scaled models, where float32 loses the
        small states.
    max_ss_tails
        Steady-state doses only: how many of the earlier doses of a steady state may still
        act after the dose's time (a lag or an infusion longer than the interdose
        interval): at most ``max_ss_tails`` intervals are resolved as separate events, a
        static number; a dose that needs more gives
        ``SolveStatus.ss_tails_exceeded``, never a truncated steady state.
    """

    method: Literal["tsit5", "dopri5", "kvaerno5", "rk4", "exact"] = "tsit5"
    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 4096
    dt0: float | None = None
    fixed_step: float | None = None
    horizon: float | None = None
    precision: Literal["float64", "float32"] = "float64"
    max_ss_tails: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.max_ss_tails, bool) or not (
            isinstance(self.max_ss_tails, int) and self.max_ss_tails >= 1
        ):
            raise InputError(
                f"SolverSettings.max_ss_tails must be a whole number >= 1; got {self.max_ss_tails!r}."
            )
        if self.precision not in ("float64", "float32"):
            raise InputError(
                f"SolverSettings.precision must be 'float64' or 'float32'; got {self.precision!r}."
            )
        if self.precision == "float32" and self.method != "rk4":
            raise InputError(
                f"precision='float32' applies to method='rk4' only; method={self.method!r} "
                "solves in float64 (adaptive step control and sensitivities need it)."
            )
        if self.method == "rk4":
            if self.fixed_step is None or not self.fixed_step > 0:
                raise InputError(
                    f"SolverSettings(method='rk4') needs fixed_step > 0 (the largest step, "
                    f"model time unit); got fixed_step={self.fixed_step!r}."
                )
            if self.horizon is not None and not self.horizon >= 0:
                raise InputError(f"SolverSettings.horizon must be >= 0; got {self.horizon!r}.")
        elif self.fixed_step is not None or self.horizon is not None:
            raise InputError(
                f"fixed_step and horizon apply to method='rk4' only; method={self.method!r} "
                "chooses its own steps."
            )

    @property
    def is_fixed_step(self) -> bool:
        """Whether the solve runs on a fixed grid (``"rk4"``)."""
        return self.method == "rk4"

    def adaptive_reference(self) -> SolverSettings:
        """An adaptive solver at these tolerances: Tsit5 in place of ``"rk4"``, else self.

        What a fixed-step fit is checked against afterwards and what synthetic cohorts are
        simulated with, so that known-truth data do not share the fit's discretisation.
        """
        if not self.is_fixed_step:
            return self
        return SolverSettings(
            method="tsit5",
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
            max_ss_tails=self.max_ss_tails,
        )

    def covering(self, *times: object) -> SolverSettings:
        """These settings with a fixed-step horizon reaching the latest of ``times``.

        ``times`` are concrete arrays (numpy, lists, scalars; NaN ignored). The horizon is
        rounded up to a whole number of ``fixed_step`` so that nearby requests share one
        compiled solve, and never shrinks. Adaptive and exact settings are returned as
        they are.
        """
        if not self.is_fixed_step:
            return self
        latest = max(
            (float(np.nanmax(np.asarray(t, dtype=float))) for t in times if np.size(t)),
            default=0.0,
        )
        needed = math.ceil(latest / self.fixed_step - 1e-9) * self.fixed_step
        if self.horizon is not None and self.horizon >= needed:
            return self
        return replace(self, horizon=float(needed))
