"""Insulin policies evaluated in closed loop on every posterior draw of a twin.

A *policy* is a rule, not a schedule: at every control time (default every 5 minutes, the
CGM cadence) it sees what the twin's draw says now (glucose, its trend, the meal being
eaten, insulin in the subcutaneous depot) and decides an insulin bolus (U) and a basal
rate (U/h) until the next control time. Each posterior draw of the patient's parameters is
one plausible patient; the policy is run against each, so the outcomes carry the twin's
uncertainty:

* time in range (70-180 mg/dL), time below range (< 70, < 54), time above (> 180), as the
  fraction of control times after the start, per draw; reported as the mean over draws,
  a central interval over draws (where this patient's outcome may lie) and the Monte Carlo
  standard error of the mean;
* P(hypo): the probability that glucose falls below 70 (and 54) mg/dL at any control time.

The simulation starts from each draw's state at ``start`` (its history of meals and
insulin solved by the package's solver) and integrates the model's own right-hand side
with fixed RK4 steps no longer than the model's ``fixed_step`` (``control_interval``
split into equal steps), as the model's solver does. From ``start`` on the policy owns all
insulin: the schedule's basal infusion after ``start`` is replaced by the policy's rate.

The policy sees the draw's noise-free glucose: sensor noise and the residual deviation the
model does not explain are not simulated (a caveat of every comparison).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.errors import InputError, UnavailableError
from twin_uq.simulate.solve import solve
from twin_uq.twin.engine import covering_in_buckets
from twin_uq.twin.forecast import _mcse

__all__ = [
    "BasalBolus",
    "ForecastPID",
    "PolicyComparison",
    "PolicyInput",
    "PolicyOutcome",
    "compare_policies",
]

#: Model states the closed loop doses: meals into the gut, insulin into the SC depot.
MEAL_STATE, INSULIN_STATE = "gut_1", "insulin_sc"


@dataclass(frozen=True)
class PolicyInput:
    """What a policy sees at a control time (JAX scalars, one posterior draw).

    ``time`` min since the start; ``glucose`` mg/dL; ``trend`` mg/dL/min (the model's
    rate of change, with the current basal); ``carbs`` g eaten now; ``depot`` U of insulin
    in the subcutaneous depot; ``dt`` min to the next control time.
    """

    time: jax.Array
    glucose: jax.Array
    trend: jax.Array
    carbs: jax.Array
    depot: jax.Array
    dt: float


def _traced(policy) -> bool:
    """Whether JAX is rebuilding ``policy`` from traced fields (inside the compiled loop)."""
    return any(isinstance(v, jax.core.Tracer) for v in vars(policy).values())


def _as_pytree(cls):
    """Register a policy dataclass as a pytree of its fields.

    Then one compiled closed loop serves every instance of the class, whatever its numbers
    (a policy passed as a static argument compiles once per instance).
    """
    names = [f.name for f in dataclasses.fields(cls)]
    return jax.tree_util.register_dataclass(cls, data_fields=names, meta_fields=[])


@_as_pytree
@dataclass(frozen=True)
class BasalBolus:
    """Basal-bolus therapy: a constant basal, a meal bolus by carb ratio, a correction.

    At a meal: ``carbs / carb_ratio + max(0, glucose - target) / correction_factor`` U
    (no insulin-on-board deduction). ``BasalBolus(0.0, math.inf)`` gives no insulin.

    Parameters: ``basal`` U/h; ``carb_ratio`` g/U; ``correction_factor`` mg/dL per U
    (``inf``: no correction); ``target`` mg/dL.
    """

    basal: float
    carb_ratio: float
    correction_factor: float = math.inf
    target: float = 120.0

    def __post_init__(self):
        if _traced(self):
            return
        if not (self.basal >= 0 and self.carb_ratio > 0 and self.correction_factor > 0):
            raise InputError(
                f"BasalBolus needs basal >= 0, carb_ratio > 0, correction_factor > 0; got {self}."
            )

    def decide(self, inp: PolicyInput, memory: jax.Array):
        """``(bolus U, basal U/h, memory)``."""
        correction = jnp.maximum(inp.glucose - self.target, 0.0) / self.correction_factor
        bolus = jnp.where(inp.carbs > 0, inp.carbs / self.carb_ratio + correction, 0.0)
        return bolus, jnp.asarray(self.basal, float), memory


@_as_pytree
@dataclass(frozen=True)
class ForecastPID:
    """A PID-like basal rule on the forecast glucose ``glucose + lead * trend``.

    ``rate = basal + kp e + ki (integral of e, mg/dL h) + kd trend`` with ``e`` the forecast
    minus ``target``, clipped to ``[0, max_rate]`` U/h (the integral stops growing while
    clipped: anti-windup). ``carb_ratio``: also a meal bolus (hybrid closed loop).

    Parameters: ``basal`` U/h at target; ``kp`` U/h per mg/dL; ``ki`` U/h per mg/dL h;
    ``kd`` U/h per mg/dL/min; ``lead`` min; ``target`` mg/dL; ``max_rate`` U/h.
    """

    basal: float
    kp: float
    ki: float = 0.0
    kd: float = 0.0
    lead: float = 30.0
    target: float = 120.0
    carb_ratio: float | None = None
    max_rate: float = 10.0

    def __post_init__(self):
        if _traced(self):
            return
        if not (self.basal >= 0 and self.max_rate > 0 and self.lead >= 0):
            raise InputError(f"ForecastPID needs basal >= 0, max_rate > 0, lead >= 0; got {self}.")
        if self.carb_ratio is not None and not self.carb_ratio > 0:
            raise InputError(f"ForecastPID carb_ratio must be > 0, got {self.carb_ratio}.")

    def decide(self, inp: PolicyInput, memory: jax.Array):
        """``(bolus U, basal U/h, memory)``; memory is the integral of the error (mg/dL h)."""
        e = inp.glucose + self.lead * inp.trend - self.target
        raw = self.basal + self.kp * e + self.ki * memory + self.kd * inp.trend
        rate = jnp.clip(raw, 0.0, self.max_rate)
        saturated = (raw != rate) & (jnp.sign(e) == jnp.sign(raw - rate))
        memory = jnp.where(saturated, memory, memory + e * inp.dt / 60.0)
        bolus = 0.0 if self.carb_ratio is None else inp.carbs / self.carb_ratio
        return jnp.asarray(bolus, float), rate, memory


@dataclass(frozen=True)
class PolicyOutcome:
    """One policy on every draw.

    ``glucose`` ``(S, N + 1)`` at ``times`` (min); ``bolus`` (U) and ``basal`` (U/h)
    ``(S, N)`` per control time; per-draw ``metrics`` (``(S,)`` each: tir, tbr70, tbr54,
    tar180, hypo70, hypo54, insulin_u).
    """

    name: str
    times: np.ndarray
    glucose: np.ndarray
    bolus: np.ndarray
    basal: np.ndarray
    metrics: dict[str, np.ndarray]


#: Rows of the comparison table: metric -> (label, kind) with kind "fraction" or "probability".
METRICS = {
    "tir": "time in range 70-180 mg/dL",
    "tbr70": "time below 70 mg/dL",
    "tbr54": "time below 54 mg/dL",
    "tar180": "time above 180 mg/dL",
    "hypo70": "P(glucose < 70 mg/dL at any time)",
    "hypo54": "P(glucose < 54 mg/dL at any time)",
    "insulin_u": "insulin given (U)",
}


@dataclass(frozen=True)
class PolicyComparison:
    """Closed-loop outcomes of several policies on the same posterior draws."""

    patient_id: str
    start: float
    horizon: float
    meals: tuple[tuple[float, float], ...]
    outcomes: dict[str, PolicyOutcome]
    level: float
    n_chains: int
    all_draws: bool
    trust: object | None = None
    caveats: tuple[str, ...] = ()

    def table(self) -> pd.DataFrame:
        """One row per (policy, metric): mean over draws, MCSE and interval.

        The interval is the central ``level`` interval over draws (where this patient's
        outcome may lie); for P(hypo) it is mean -/+ 1.645 MCSE, clipped to [0, 1].
        """
        a = (1 - self.level) / 2
        rows = []
        for name, out in self.outcomes.items():
            for key, label in METRICS.items():
                x = out.metrics[key]
                mean, se = _mcse(x, self.n_chains, self.all_draws)
                if key.startswith("hypo"):
                    lo, hi = max(0.0, mean - 1.645 * se), min(1.0, mean + 1.645 * se)
                else:
                    lo, hi = (float(v) for v in np.quantile(x, [a, 1 - a]))
                rows.append(
                    dict(
                        policy=name, metric=key, label=label, mean=mean, mcse=se, lower=lo, upper=hi
                    )
                )
        return pd.DataFrame(rows).set_index(["policy", "metric"])

    def __str__(self) -> str:
        t = self.table()
        lines = [
            f"Insulin policies for {self.patient_id}, {self.horizon:g} min from t={self.start:g}:"
        ]
        for name in self.outcomes:
            r = t.loc[name]
            lines.append(
                f"  {name}: time in range {100 * r.loc['tir', 'mean']:.0f}% "
                f"({100 * r.loc['tir', 'lower']:.0f}-{100 * r.loc['tir', 'upper']:.0f}), "
                f"below 70 {100 * r.loc['tbr70', 'mean']:.1f}%, P(<70) "
                f"{r.loc['hypo70', 'mean']:.2f} (MCSE {r.loc['hypo70', 'mcse']:.2f})"
            )
        status = getattr(self.trust, "status", None)
        lines.append(f"  Trust: {'not assessed' if self.trust is None else status}")
        lines += [f"  caveat: {c}" for c in self.caveats]
        return "\n".join(lines)


def _closed_loop(model, policy, k_out, n_steps, n_sub, dt, theta, cov, y0, carbs):
    """Glucose ``(S, N + 1)``, boluses and basal rates ``(S, N)`` of ``policy`` on each draw.

    ``theta`` ``(S, K)``, ``cov`` ``(C,)``, ``y0`` ``(S, n)`` start states, ``carbs``
    ``(N,)`` g eaten at each control time.
    """
    states = list(model.states)
    i_meal, i_ins = states.index(MEAL_STATE), states.index(INSULIN_STATE)
    cov_d = {n: cov[j] for j, n in enumerate(model.covariates)}
    h = dt / n_sub
    unit = jnp.zeros(len(states)).at[i_ins].set(1.0)

    def one(theta_s, y_start):
        th = model.theta_dict(theta_s)

        def f(t, y, rate):  # rate in U/min into the depot, as an infusion
            return jnp.asarray(model.rhs(t, y, th, {}, cov_d)) + rate * unit

        def glucose(y):
            return jnp.asarray(model.observe(y, th))[k_out]

        def control(carry, x):
            y, rate, memory = carry
            k, meal = x
            t = k * dt
            _, trend = jax.jvp(glucose, (y,), (f(t, y, rate),))
            inp = PolicyInput(t, glucose(y), trend, meal, y[i_ins], dt)
            y = y.at[i_meal].add(meal)
            bolus, basal, memory = policy.decide(inp, memory)
            y = y.at[i_ins].add(bolus)
            rate = basal / 60.0

            def rk4(y, j):
                s = t + j * h
                k1 = f(s, y, rate)
                k2 = f(s + h / 2, y + h / 2 * k1, rate)
                k3 = f(s + h / 2, y + h / 2 * k2, rate)
                k4 = f(s + h, y + h * k3, rate)
                return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

            g_now = inp.glucose
            y, _ = jax.lax.scan(rk4, y, jnp.arange(n_sub))
            return (y, rate, memory), (g_now, bolus, basal)

        start = (y_start, jnp.asarray(0.0), jnp.asarray(0.0))
        (y_end, _, _), (g, bolus, basal) = jax.lax.scan(
            control, start, (jnp.arange(n_steps), carbs)
        )
        return jnp.append(g, glucose(y_end)), bolus, basal

    return jax.vmap(one)(theta, y0)


#: The closed loop compiled with the policy as data (a registered pytree, such as the
#: built-in policies) or as a static argument (any other object with ``decide``).
_loop_pytree = jax.jit(_closed_loop, static_argnums=(0, 2, 3, 4, 5))
_loop_static = jax.jit(_closed_loop, static_argnums=(0, 1, 2, 3, 4, 5))


def _is_pytree(policy) -> bool:
    leaves = jax.tree_util.tree_leaves(policy)
    return not (len(leaves) == 1 and leaves[0] is policy)


def _start_states(twin, start: float, idx: np.ndarray) -> np.ndarray:
    """``(S, n)`` each draw's state at ``start`` after its recorded meals and insulin."""
    times = jnp.asarray([start])
    settings = covering_in_buckets(twin.settings, [start])
    sched, cov = twin.schedule, jnp.asarray(twin.covariates)

    def one(th):
        traj = solve(twin.model, th, cov, sched, times, settings)
        return traj.states[0]

    y = jax.vmap(one)(jnp.asarray(twin.theta[idx]))
    y = np.asarray(y, float)
    if not np.all(np.isfinite(y)):
        raise UnavailableError(
            f"Patient {twin.patient_id}: the state at t={start:g} could not be solved."
        )
    return y


def compare_policies(
    twin,
    policies: Mapping[str, BasalBolus | ForecastPID],
    *,
    meals: Sequence[tuple[float, float]] = (),
    horizon: float = 1440.0,
    start: float | None = None,
    control_interval: float = 5.0,
    output: str = "glucose",
    level: float = 0.9,
    draws: int | None = None,
    trust: object | None = None,
) -> PolicyComparison:
    """Run each insulin policy in closed loop on the twin's posterior draws (``twin.compare_policies``).

    Parameters
    ----------
    policies
        ``{"name": policy}``; a policy has ``decide(PolicyInput, memory) -> (bolus U,
        basal U/h, memory)`` written with ``jax.numpy`` (:class:`BasalBolus`,
        :class:`ForecastPID`, or your own frozen dataclass).
    meals
        ``(lead time, carbs g)`` after ``start``; lead times on the control grid.
    horizon, start, control_interval
        Minutes simulated, the start (default: the last observation) and the control
        cadence; the RK4 step is ``control_interval / ceil(control_interval / fixed_step)``.
    level
        Central interval over draws of the time-in-range metrics.
    draws
        Evenly thinned posterior draws (default all).
    """
    if not policies:
        raise InputError("compare_policies needs at least one policy.")
    model = twin.model
    missing = [s for s in (MEAL_STATE, INSULIN_STATE) if s not in model.states]
    if missing:
        raise UnavailableError(
            f"compare_policies: model {model.name!r} has no state {missing[0]!r} (needs a gut "
            f"state {MEAL_STATE!r} and a subcutaneous insulin depot {INSULIN_STATE!r})."
        )
    if output not in model.output_names:
        raise InputError(
            f"Unknown output {output!r}; the model's outputs are {list(model.output_names)}."
        )
    if not (control_interval > 0 and horizon >= control_interval):
        raise InputError(
            f"Need control_interval > 0 and horizon >= it; got {control_interval}, {horizon}."
        )
    n_steps = round(horizon / control_interval)
    if abs(n_steps * control_interval - horizon) > 1e-9:
        raise InputError(
            f"horizon {horizon:g} is not a whole number of control intervals ({control_interval:g})."
        )
    carbs = np.zeros(n_steps)
    for j, (lead, grams) in enumerate(meals):
        k = lead / control_interval
        if not (0 <= lead < horizon and abs(k - round(k)) < 1e-9 and grams >= 0):
            raise InputError(
                f"meal {j} ({lead:g} min, {grams:g} g): needs 0 <= time < horizon on the "
                f"{control_interval:g}-min control grid and carbs >= 0."
            )
        carbs[round(k)] += grams
    start = twin.last_observation_time if start is None else float(start)
    if not np.isfinite(start):
        start = 0.0
    idx = twin._draw_index(draws)
    y0 = _start_states(twin, start, idx)
    step = twin.settings.fixed_step or control_interval
    n_sub = max(1, math.ceil(control_interval / step - 1e-9))
    k_out = model.output_names.index(output)
    times = start + control_interval * np.arange(n_steps + 1)
    outcomes = {}
    for name, policy in policies.items():
        if not callable(getattr(policy, "decide", None)):
            raise InputError(f"policy {name!r} has no decide(PolicyInput, memory) method.")
        loop = _loop_pytree if _is_pytree(policy) else _loop_static
        g, bolus, basal = loop(
            model, policy, k_out, n_steps, n_sub, float(control_interval),
            jnp.asarray(twin.theta[idx], float), jnp.asarray(twin.covariates, float),
            jnp.asarray(y0), jnp.asarray(carbs),
        )  # fmt: skip
        g, bolus, basal = (np.asarray(v, float) for v in (g, bolus, basal))
        after = g[:, 1:]
        metrics = {
            "tir": ((after >= 70) & (after <= 180)).mean(axis=1),
            "tbr70": (after < 70).mean(axis=1),
            "tbr54": (after < 54).mean(axis=1),
            "tar180": (after > 180).mean(axis=1),
            "hypo70": (after < 70).any(axis=1).astype(float),
            "hypo54": (after < 54).any(axis=1).astype(float),
            "insulin_u": bolus.sum(axis=1) + basal.sum(axis=1) * control_interval / 60.0,
        }
        outcomes[name] = PolicyOutcome(name, times, g, bolus, basal, metrics)
    caveats = ["the policy sees the twin's noise-free glucose (no sensor noise or residual)"]
    if twin.approximate:
        caveats.append("approximate fit")
    return PolicyComparison(
        patient_id=twin.patient_id,
        start=start,
        horizon=float(horizon),
        meals=tuple((float(a), float(b)) for a, b in meals),
        outcomes=outcomes,
        level=level,
        n_chains=twin.n_chains,
        all_draws=idx.size == twin.n_draws,
        trust=trust,
        caveats=tuple(caveats),
    )
