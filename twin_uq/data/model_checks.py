"""Questions a model asks of a cohort's rows before it takes them (nothing silent).

:meth:`~twin_uq.data.cohort.Cohort.for_model` runs these on the normalised table:

* :func:`check_observation_compartments`: an observation whose ``CMT`` names no state of
  the model is refused (a mistyped ``CMT=99`` is not read as "the default output");
* :func:`check_modelled_doses`: ``RATE=-1`` / ``RATE=-2`` doses need the model's rate /
  duration declared for their compartment, and a ``DUR`` given beside a model's declared
  duration is refused as ambiguous;
* :func:`warn_depot_infusions`: an infusion (``RATE > 0``) into a compartment that no
  output observes, such as the absorption depot of an oral model, looks like an
  intravenous record written with the wrong ``CMT``; it is questioned by a warning that
  names the row.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from twin_uq.data.problems import CohortError, CohortWarning, Problem

if TYPE_CHECKING:
    from twin_uq.model.base import Model

__all__ = [
    "DepotInfusionWarning",
    "check_modelled_doses",
    "check_observation_compartments",
    "observed_states",
    "warn_depot_infusions",
]


class DepotInfusionWarning(CohortWarning):
    """An infusion goes into a compartment that no output observes (e.g. an oral depot)."""


def _target_cmt(model: Model, cmt: np.ndarray) -> np.ndarray:
    """1-based target compartment of each row: ``CMT``, or the model's default for 0."""
    return np.where(cmt == 0, model.default_dose_cmt, cmt)


def check_observation_compartments(
    model: Model, table: pd.DataFrame, *, source: str, row_word: str
) -> None:
    """Refuse observation rows (``EVID=0``) whose ``CMT`` is beyond the model's states."""
    if "cmt" not in table:
        return
    n = len(model.states)
    bad = table[(table["evid"] == 0) & (table["cmt"] > n)]
    problems = [
        Problem(
            lab,
            "cmt",
            str(pid),
            f"observation with CMT={c}, but model {model.name!r} has {n} states "
            f"({', '.join(model.states)}); give the compartment observed (or 0), and name "
            f"the output in DVID/output (outputs: {', '.join(model.output_names)}).",
        )
        for lab, pid, c in zip(bad.index, bad["id"], bad["cmt"], strict=True)
    ]
    if problems:
        raise CohortError.from_problems(source, problems, row_word)


def check_modelled_doses(model: Model, table: pd.DataFrame, *, source: str, row_word: str) -> None:
    """Refuse ``RATE=-1/-2`` doses the model cannot resolve, and ``DUR`` beside a model's D."""
    if "rate" not in table:
        return
    t = table[np.isin(table["evid"].to_numpy(), (1, 4)) & (table["rate"] < 0)]
    if t.empty:
        return
    cmt = _target_cmt(model, t["cmt"].to_numpy() if "cmt" in t else np.zeros(len(t), int))
    dur = t["dur"].to_numpy() if "dur" in t else np.zeros(len(t))
    declared = dict(model.dose_parameters)
    problems = []
    for lab, pid, rate, c, d in zip(t.index, t["id"], t["rate"], cmt, dur, strict=True):
        dp = declared.get(int(c))
        role = "rate" if rate == -1 else "duration"
        has = dp is not None and getattr(dp, role) is not None
        if rate == -2 and d > 0:
            if has:
                problems.append(
                    Problem(
                        lab,
                        "dur",
                        str(pid),
                        f"RATE=-2 with DUR={d:g}, but model {model.name!r} declares the "
                        f"duration {dp.duration!r} for compartment {c}: leave DUR empty to use "
                        "the model's, or give RATE = AMT/DUR to use the data's.",
                    )
                )
            continue
        if not has:
            letter = "R" if role == "rate" else "D"
            problems.append(
                Problem(
                    lab,
                    "rate",
                    str(pid),
                    f"RATE={int(rate)} takes the infusion {role} from the model, but model "
                    f"{model.name!r} declares no {role} ({letter}) for compartment {c}: declare "
                    f"one with tq.with_dose_parameters(model, {c}, {role}=tq.Parameter(...))"
                    + (", or give DUR." if role == "duration" else ", or give RATE > 0."),
                )
            )
    if problems:
        raise CohortError.from_problems(source, problems, row_word)


def observed_states(model: Model) -> np.ndarray | None:
    """Which states some output depends on, shape ``(n_states,)`` bool (``None``: unknown).

    Read from the Jacobian of ``model.observe`` at a state of ones and the typical
    parameters; ``None`` when ``observe`` cannot be differentiated there.
    """
    theta = {p.name: jnp.asarray(float(p.typical)) for p in model.parameters}
    y = jnp.ones(len(model.states))
    try:
        jac = np.asarray(jax.jacfwd(lambda y_: jnp.asarray(model.observe(y_, theta)))(y))
    except Exception:  # a model's observe may need more than (y, theta); then we cannot tell
        return None
    if not np.all(np.isfinite(jac)):
        return None
    return np.any(jac.reshape(-1, len(model.states)) != 0, axis=0)


def warn_depot_infusions(model: Model, table: pd.DataFrame, *, source: str, row_word: str) -> None:
    """Warn about infusions (``RATE > 0``) into a compartment no output observes.

    Compartments the model declares in ``infusion_compartments`` (inputs by design, such
    as a basal insulin rate into a subcutaneous depot) are not questioned.
    """
    if "rate" not in table:
        return
    t = table[np.isin(table["evid"].to_numpy(), (1, 4)) & (table["rate"] > 0)]
    if t.empty:
        return
    seen = observed_states(model)
    if seen is None or not seen.any():
        return
    cmt = _target_cmt(model, t["cmt"].to_numpy() if "cmt" in t else np.zeros(len(t), int))
    valid = (cmt >= 1) & (cmt <= len(seen))
    unseen = valid & ~seen[np.clip(cmt - 1, 0, len(seen) - 1)]
    unseen &= ~np.isin(cmt, model.infusion_compartments)
    if not unseen.any():
        return
    rows = [
        f"{row_word} {lab} (patient {pid!r})" for lab, pid in zip(t.index, t["id"], strict=True)
    ]
    hits = [r for r, u in zip(rows, unseen, strict=True) if u]
    c = int(cmt[unseen][0])
    observed = [f"{k + 1} ({s})" for k, s in enumerate(model.states) if seen[k]]
    shown = "; ".join(hits[:5]) + (f"; and {len(hits) - 5} more" if len(hits) > 5 else "")
    warnings.warn(
        f"{source}: {len(hits)} infusion(s) (RATE > 0) go into compartment {c} "
        f"({model.states[c - 1]!r}) of model {model.name!r}, which no output observes (an "
        f"absorption depot?): {shown}. An intravenous infusion goes into an observed "
        f"compartment ({', '.join(observed)}); check CMT.",
        DepotInfusionWarning,
        stacklevel=4,
    )
