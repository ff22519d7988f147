"""A cohort as padded JAX arrays for one model: what likelihoods and simulators consume."""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float, Int

from twin_uq.data.validate import CohortError, Problem
from twin_uq.simulate.schedule import Schedule, stack_schedules

if TYPE_CHECKING:
    from twin_uq.data.cohort import Cohort
    from twin_uq.model.base import Model

__all__ = ["CohortArrays", "cohort_arrays"]


class CohortArrays(eqx.Module):
    """Padded per-patient arrays of a cohort, matched to one model (a pytree).

    Every array has a leading patient axis ``P``; ``N`` is the largest number of
    observations of one patient (at least 1).

    Attributes
    ----------
    obs_time, obs_value, obs_lloq
        Shape ``(P, N)``, float64. ``obs_lloq`` is -inf where there is no limit.
    obs_output
        Shape ``(P, N)``, int: index into ``model.output_names``.
    obs_mask, obs_censored
        Shape ``(P, N)``, bool: real observation (censored included); below the LLOQ.
    schedule
        Batched :class:`Schedule` (leading axis ``P``) with the model's ``signals``.
    covariates
        Shape ``(P, C)`` float64, columns in ``model.covariates`` order (baseline values,
        ``model.covariate_defaults`` filling gaps).
    ids, output_names, covariate_names
        Static metadata: patient ids, the model's outputs and covariates.
    """

    obs_time: Float[Array, "P N"]
    obs_value: Float[Array, "P N"]
    obs_output: Int[Array, "P N"]
    obs_mask: Bool[Array, "P N"]
    obs_censored: Bool[Array, "P N"]
    obs_lloq: Float[Array, "P N"]
    schedule: Schedule
    covariates: Float[Array, "P C"]
    ids: tuple[str, ...] = eqx.field(static=True)
    output_names: tuple[str, ...] = eqx.field(static=True)
    covariate_names: tuple[str, ...] = eqx.field(static=True)

    @property
    def n_patients(self) -> int:
        """Number of patients ``P``."""
        return self.obs_time.shape[0]


def _output_index(cohort: Cohort, model: Model) -> np.ndarray:
    names = model.output_names
    unknown = [o for o in cohort.outputs if o not in names]
    if unknown:
        t = cohort.table
        used = t[(t["evid"] == 0) & (t["mdv"] == 0)] if "output" in t else t.iloc[:0]
        problems, parts = [], []
        for o in unknown:
            rows = used[used["output"] == o]
            labels = list(rows.index[:3])
            problems += [
                Problem(lab, "output", str(pid), f"unknown output {o!r}")
                for lab, pid in zip(labels, rows["id"], strict=False)
            ]
            parts.append(f"{o!r} (first {cohort.row_word}s {', '.join(map(str, labels))})")
        raise CohortError(
            f"Cohort {cohort.source!r} has output(s) that model {model.name!r} does not "
            f"define: {'; '.join(parts)}. The model's outputs are {list(names)}.",
            problems,
            cohort.source,
        )
    if not cohort.outputs:
        return np.zeros_like(cohort.obs_output)
    remap = np.array([names.index(o) for o in cohort.outputs], dtype=np.int64)
    return np.where(cohort.obs_mask, remap[cohort.obs_output], 0)


def _check_cmt(cohort: Cohort, model: Model) -> None:
    t = cohort.table
    if "cmt" not in t:
        return
    n = len(model.states)
    bad = t[(t["evid"] == 1) & (t["cmt"] > n)]
    if len(bad):
        problems = [
            Problem(lab, "cmt", str(pid), f"CMT={c} but model {model.name!r} has {n} states")
            for lab, pid, c in zip(bad.index, bad["id"], bad["cmt"], strict=True)
        ]
        raise CohortError.from_problems(cohort.source, problems, cohort.row_word)


def _covariates(cohort: Cohort, model: Model) -> np.ndarray:
    out = np.zeros((cohort.n_patients, len(model.covariates)))
    problems: list[Problem] = []
    defaults = model.covariate_defaults
    for k, name in enumerate(model.covariates):
        try:
            col = cohort._covariate_column(name)
        except CohortError:
            if name in defaults:
                out[:, k] = defaults[name]
                continue
            problems.append(
                Problem(
                    None,
                    name,
                    None,
                    f"model {model.name!r} needs covariate {name!r}: the table has no such "
                    f"column and the model gives no default (covariates: "
                    f"{list(cohort.covariate_names) or 'none'}).",
                )
            )
            continue
        vals = cohort.covariates[col]
        if isinstance(vals.dtype, pd.CategoricalDtype):
            problems.append(
                Problem(
                    None,
                    col,
                    None,
                    f"covariate {name!r} is categorical ({list(vals.cat.categories)[:5]}); "
                    "model covariates must be numbers, encode it (e.g. 0/1).",
                )
            )
            continue
        x = np.array(vals.to_numpy(dtype=float), copy=True)
        for p in np.flatnonzero(np.isnan(x)):
            if name in defaults:
                x[p] = defaults[name]
            else:
                problems.append(
                    Problem(
                        None,
                        col,
                        cohort.ids[p],
                        f"no value of covariate {name!r} and model {model.name!r} gives no "
                        "default.",
                    )
                )
        out[:, k] = x
    if problems:
        raise CohortError.from_problems(cohort.source, problems, cohort.row_word)
    return out


def cohort_arrays(cohort: Cohort, model: Model) -> CohortArrays:
    """Match a cohort to a model: map outputs, build schedules, gather covariates.

    Raises
    ------
    CohortError
        For outputs the model does not define (with the first rows using them), a dose
        compartment beyond the model's states, a model signal missing from the data, or a
        model covariate missing for a patient without a default.
    """
    out_idx = _output_index(cohort, model)
    _check_cmt(cohort, model)
    for s in model.signals:
        try:
            cohort._covariate_column(s, what="signal")
        except CohortError as e:
            raise CohortError(
                f"Model {model.name!r} needs the measured signal {s!r}: {e}", e.problems, e.source
            ) from None
    schedules = [cohort.schedule_fields(k, model.signals) for k in range(cohort.n_patients)]
    cov = _covariates(cohort, model)
    return CohortArrays(
        obs_time=jnp.asarray(cohort.obs_time, dtype=jnp.float64),
        obs_value=jnp.asarray(cohort.obs_value, dtype=jnp.float64),
        obs_output=jnp.asarray(out_idx, dtype=jnp.int32),
        obs_mask=jnp.asarray(cohort.obs_mask),
        obs_censored=jnp.asarray(cohort.obs_censored),
        obs_lloq=jnp.asarray(cohort.obs_lloq, dtype=jnp.float64),
        schedule=stack_schedules(schedules),
        covariates=jnp.asarray(cov, dtype=jnp.float64),
        ids=cohort.ids,
        output_names=model.output_names,
        covariate_names=tuple(model.covariates),
    )
