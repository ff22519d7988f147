"""Why a solve failed, in words a user can act on: :class:`SolveStatus`.

Every solve (exact, adaptive ODE, fixed-step RK4) returns one :class:`SolveStatus`, an
``equinox.Enumeration`` (as ``diffrax.RESULTS``): it passes through ``jit``, ``vmap`` and
``custom_vjp`` like an array, compares with ``==`` inside compiled code, and outside it
each member has a message (what happened) and a remedy (what to change), for one solve or
counted over many (:func:`explain`, :func:`count_statuses`, :func:`describe_failures`).

Members and their integer values (stable; the values the bare status codes had before):

============================  =====  ===================================================
member                        value  produced by
============================  =====  ===================================================
successful                    0      every path, when all states and outputs are finite
max_steps_reached             1      adaptive ODE path: ``SolverSettings.max_steps`` used up
nonfinite                     2      any path: NaN/inf in a state, output or the ``rhs``
beyond_horizon                3      fixed-step path: a time past ``SolverSettings.horizon``
solver_failed                 4      adaptive ODE path: any other diffrax failure
ss_tails_exceeded             5      any path: a steady-state dose's past doses reach
                                     further past its time than
                                     ``SolverSettings.max_ss_tails`` intervals
no_steady_state               6      steady-state dose: the system has none (singular)
steady_state_not_reached      7      steady-state dose, nonlinear model: pre-run did not
                                     converge within its interval budget
============================  =====  ===================================================
"""

from __future__ import annotations

import dataclasses
import types

import equinox as eqx
import numpy as np

from twin_uq.errors import InputError

__all__ = [
    "STATUS_INFO",
    "SolveStatus",
    "StatusInfo",
    "count_statuses",
    "describe_failures",
    "explain",
]


@dataclasses.dataclass(frozen=True)
class StatusInfo:
    """One :class:`SolveStatus` member in words.

    Attributes
    ----------
    name
        The member's name (``SolveStatus.<name>``).
    message
        What happened (empty for ``successful``).
    remedy
        What a user can change to avoid it (empty for ``successful``).
    """

    name: str
    message: str
    remedy: str

    @property
    def text(self) -> str:
        """``message`` then ``remedy``, one paragraph."""
        return f"{self.message} {self.remedy}".strip()


_INFO: dict[str, StatusInfo] = {
    info.name: info
    for info in (
        StatusInfo("successful", "", ""),
        StatusInfo(
            "max_steps_reached",
            "The adaptive ODE solver used its whole step budget (SolverSettings.max_steps) "
            "before reaching the last requested time: the model is stiff, or its solution "
            "grows without bound, at these parameters.",
            "Raise SolverSettings.max_steps, or use the stiff solver "
            "SolverSettings(method='kvaerno5'); if the solution blows up, check the "
            "parameter values (and the priors that produced them).",
        ),
        StatusInfo(
            "nonfinite",
            "The solve gave NaN or infinite values: the model's rhs, y0 or observe is not "
            "finite at these parameters (or the solution overflowed).",
            "Check the model's rhs, y0 and observe for division by zero, log or sqrt of "
            "negative values and exp overflow at these parameter values, and keep the "
            "priors in a physiological range; with method='rk4', a smaller fixed_step "
            "(an explicit step too large for a fast process also diverges).",
        ),
        StatusInfo(
            "beyond_horizon",
            "A requested time lies past the fixed grid's horizon (SolverSettings.horizon, "
            "method='rk4'): the fixed-step solve does not stretch its steps to reach it.",
            "Pass settings.covering(times), or a SolverSettings.horizon at least the latest "
            "requested time.",
        ),
        StatusInfo(
            "solver_failed",
            "The adaptive ODE solver stopped before the last requested time for a reason "
            "other than its step budget (e.g. the Newton iteration of the implicit solver "
            "diverged or met a singular Jacobian).",
            "Check that the model's rhs is finite and smooth at these parameters; try "
            "tighter rtol/atol or a smaller dt0, or another method ('tsit5' for non-stiff, "
            "'kvaerno5' for stiff models).",
        ),
        StatusInfo(
            "ss_tails_exceeded",
            "A steady-state dose's earlier doses still act after its time beyond the number "
            "of dosing intervals resolved (SolverSettings.max_ss_tails): its lag time or "
            "infusion duration is longer than max_ss_tails interdose intervals at these "
            "parameters; the solve is not continued with a truncated steady state.",
            "Raise SolverSettings.max_ss_tails above (lag + duration) / II, or keep the lag "
            "and modelled duration priors in a range shorter than that many intervals.",
        ),
        StatusInfo(
            "no_steady_state",
            "A steady-state dose (SS=1 or SS=2) has no steady state at these parameters: "
            "the dosing-interval map I - Φ(II) (or, for a constant infusion with II = 0, the "
            "system matrix A) is singular, e.g. a compartment without elimination keeps "
            "accumulating, or a bolus was given with II = 0.",
            "Check that every compartment the dose reaches is eliminated (no pure sink "
            "state), that the elimination parameters are not zero, and that steady-state "
            "boluses have II > 0 (II = 0 is for a constant infusion, RATE > 0).",
        ),
        StatusInfo(
            "steady_state_not_reached",
            "A steady-state dose into a nonlinear model: repeating the dosing interval did "
            "not bring the state at the interval start to a fixed point within the "
            "pre-run's interval budget (tolerances SolverSettings.rtol/atol), or the "
            "steady state does not exist (e.g. a dosing rate above the maximal elimination "
            "rate of saturable elimination).",
            "Check that the dose rate can be eliminated at these parameters (for "
            "Michaelis-Menten elimination: average rate F·AMT/II below Vmax); raise the "
            "pre-run budget (max_intervals of twin_uq.simulate.steady_state) or loosen "
            "SolverSettings.rtol for slowly approached steady states.",
        ),
    )
}


STATUS_INFO = types.MappingProxyType(_INFO)
"""Every :class:`SolveStatus` member's :class:`StatusInfo`, by name, in the members' order."""


class SolveStatus(eqx.Enumeration):
    """How a solve ended: ``successful`` or why not (see the module docstring).

    Compare inside compiled code with ``status == SolveStatus.successful``; combine with
    ``SolveStatus.where(pred, a, b)``; ``SolveStatus[status]`` is the message and remedy
    of a concrete status; :func:`explain` gives them separately.
    """

    successful = _INFO["successful"].text
    max_steps_reached = _INFO["max_steps_reached"].text
    nonfinite = _INFO["nonfinite"].text
    beyond_horizon = _INFO["beyond_horizon"].text
    solver_failed = _INFO["solver_failed"].text
    ss_tails_exceeded = _INFO["ss_tails_exceeded"].text
    no_steady_state = _INFO["no_steady_state"].text
    steady_state_not_reached = _INFO["steady_state_not_reached"].text


def _members() -> list[tuple[StatusInfo, SolveStatus]]:
    return [(info, getattr(SolveStatus, name)) for name, info in _INFO.items()]


def explain(status: SolveStatus) -> StatusInfo:
    """Name, message and remedy of one concrete (unbatched, not traced) status."""
    if not isinstance(status, SolveStatus):
        raise TypeError(f"explain needs a SolveStatus; got {type(status).__name__}.")
    if status.is_traced():
        raise InputError("explain needs a concrete status, not one inside jit/vmap.")
    for info, member in _members():
        hit = np.asarray(status == member)
        if hit.shape != ():
            raise InputError(
                f"explain takes one status; got a batch of shape {hit.shape} "
                "(use count_statuses or describe_failures)."
            )
        if bool(hit):
            return info
    raise InputError(f"Unknown SolveStatus value {status!r}.")  # pragma: no cover


def count_statuses(status: SolveStatus) -> dict[str, int]:
    """How many solves of a concrete, possibly batched status ended in each member.

    Only members that occur are listed, in the members' order.
    """
    if status.is_traced():
        raise InputError("count_statuses needs a concrete status, not one inside jit/vmap.")
    counts = {info.name: int(np.sum(np.asarray(status == member))) for info, member in _members()}
    return {name: n for name, n in counts.items() if n}


def describe_failures(status: SolveStatus, unit: str = "solve") -> str:
    """One paragraph on the failed solves of a concrete status (``""`` when none failed).

    ``unit`` names what was solved, e.g. ``"posterior draw"``: "3 of 400 posterior draws
    failed: 3 max_steps_reached — <message> <remedy>".
    """
    counts = count_statuses(status)
    total = int(np.size(np.asarray(status == SolveStatus.successful)))
    failed = total - counts.get("successful", 0)
    if failed == 0:
        return ""
    plural = "" if total == 1 else "s"
    parts = [
        f"{n} {name}: {_INFO[name].text}" for name, n in counts.items() if name != "successful"
    ]
    return f"{failed} of {total} {unit}{plural} failed. " + " ".join(parts)
