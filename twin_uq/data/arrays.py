"""A cohort as padded JAX arrays for one model: what likelihoods and simulators consume.

The functions here match the pieces of a cohort (its normalised table, padded observations
and baseline covariates) to a model; they never see the :class:`~twin_uq.data.cohort.Cohort`
container, which calls them from :meth:`Cohort.for_model` (so imports point one way:
``cohort`` -> ``arrays``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Bool, Float, Int

from twin_uq.data.problems import CovariateDefaultWarning
from twin_uq.data.table import covariate_column
from twin_uq.data.validate import CohortError, Problem
from twin_uq.simulate.schedule import Schedule, stack_schedules

if TYPE_CHECKING:
    from twin_uq.model.base import Model

__all__ = [
    "CohortArrays",
    "bucket_size",
    "check_dose_compartments",
    "check_signals",
    "covariate_matrix",
    "host_slice",
    "model_output_index",
    "pad_cohort_arrays",
    "stack_arrays",
    "take_cohort_arrays",
]

#: Observation fields of :class:`CohortArrays` with shape ``(P, N)``.
OBSERVATION_FIELDS = (
    "obs_time", "obs_value", "obs_output", "obs_mask", "obs_censored", "obs_lloq", "obs_cens",
    "obs_limit",
)  # fmt: skip


class CohortArrays(eqx.Module):
    """Padded per-patient arrays of a cohort, matched to one model (a pytree).

    Every array has a leading patient axis ``P``; ``N`` is the largest number of
    observations of one patient (at least 1).

    Attributes
    ----------
    obs_time, obs_value, obs_lloq
        Shape ``(P, N)``, float64. ``obs_lloq`` is the limit of a censored observation
        (-inf where there is no limit).
    obs_output
        Shape ``(P, N)``, int: index into ``model.output_names``.
    obs_mask, obs_censored
        Shape ``(P, N)``, bool: real observation (censored included); below the LLOQ.
    schedule
        Batched :class:`Schedule` (leading axis ``P``) with the model's ``signals``.
    covariates
        Shape ``(P, C)`` float64, columns in ``model.covariates`` order (baseline values,
        ``model.covariate_defaults`` filling gaps).
    output_names, covariate_names
        Static metadata: the model's outputs and covariates. The patient ids are the
        cohort's (:attr:`Cohort.ids`, in this patient order), not a field: static fields
        key JAX's compiled programs, so a cohort of the same shapes with other ids would
        compile every program again.
    obs_cens, obs_limit
        Shape ``(P, N)``: censoring direction (int32: 1 below ``obs_lloq``, -1 above it, 0
        none) and the interval's other bound (float64, NaN: none; e.g. 0 for M4). ``None``
        unless some observation is censored above its limit or on an interval; then
        ``obs_censored`` means below ``obs_lloq`` (M3), as it always did.
    change_time
        ``(P, S)`` starts of the segments on which the individual parameters are constant
        (:class:`~twin_uq.data.covariate_path.CovariateSegments`: 0 first, ``+inf``
        padding), set by :meth:`with_change_times` when a covariate the fit uses changes
        within a patient; ``None`` otherwise (``S = 1``: one parameter vector per patient,
        the solve of before).
    """

    obs_time: Float[Array, "P N"]
    obs_value: Float[Array, "P N"]
    obs_output: Int[Array, "P N"]
    obs_mask: Bool[Array, "P N"]
    obs_censored: Bool[Array, "P N"]
    obs_lloq: Float[Array, "P N"]
    schedule: Schedule
    covariates: Float[Array, "P C"]
    output_names: tuple[str, ...] = eqx.field(static=True)
    covariate_names: tuple[str, ...] = eqx.field(static=True)
    obs_cens: Int[Array, "P N"] | None = None
    obs_limit: Float[Array, "P N"] | None = None
    change_time: Float[Array, "P S"] | None = None

    @property
    def n_patients(self) -> int:
        """Number of patients ``P``."""
        return self.obs_time.shape[0]

    @property
    def n_segments(self) -> int:
        """Static number ``S`` of parameter segments per patient (1 without change times)."""
        return 1 if self.change_time is None else self.change_time.shape[-1]

    def with_change_times(self, change_time: np.ndarray | None) -> CohortArrays:
        """These arrays with parameter change times ``(P, S)`` (``None`` or ``S = 1``: none).

        ``S = 1`` stores ``None``, so that a cohort whose covariates do not change within a
        patient compiles and solves exactly as before.
        """
        if change_time is not None and np.shape(change_time)[-1] <= 1:
            change_time = None
        value = None if change_time is None else jnp.asarray(change_time, dtype=jnp.float64)
        return eqx.tree_at(lambda a: a.change_time, self, value, is_leaf=lambda x: x is None)

    def require_lower_censoring_only(self, what: str) -> None:
        """Refuse upper-limit or interval censoring in a path that only computes M3.

        ``what`` names the path in the message (e.g. ``"a twin update"``).

        Raises
        ------
        CohortError
            When some observation is censored above its limit or on an interval.
        """
        if self.obs_cens is not None:
            msg = (
                f"{what} handles observations censored below a limit (CENS=1 / BLQ) only; "
                "these data have upper-limit (CENS=-1) or interval (LIMIT) censoring, which "
                "tq.fit handles. Leave those rows out here (or fit the cohort)."
            )
            raise CohortError(msg, [Problem(None, "CENS", None, msg)])


def model_output_index(
    model: Model,
    table: pd.DataFrame,
    outputs: tuple[str, ...],
    obs_output: np.ndarray,
    obs_mask: np.ndarray,
    *,
    source: str,
    row_word: str,
    obs_dvid: np.ndarray | None = None,
) -> np.ndarray:
    """The observed output of every observation as an index into the model's outputs.

    From a numeric ``DVID`` (``obs_dvid``, 1-based, 0 where none) when the cohort has one,
    else from the output names (``obs_output``: indices into the cohort's ``outputs``).
    Shape ``(P, N)`` int; 0 at padding, and everywhere when the cohort names no output
    (every observation is of the model's first output).

    Raises
    ------
    CohortError
        For output names the model does not define, DVID numbers beyond its outputs, or a
        DVID number and an output name that disagree, with the first rows concerned.
    """
    names = model.output_names
    used = table[(table["evid"] == 0) & (table["mdv"] == 0)]
    unknown = [o for o in outputs if o not in names]
    if unknown:
        problems, parts = [], []
        for o in unknown:
            rows = used[used["output"] == o]
            labels = list(rows.index[:3])
            problems += [
                Problem(lab, "output", str(pid), f"unknown output {o!r}")
                for lab, pid in zip(labels, rows["id"], strict=False)
            ]
            parts.append(f"{o!r} (first {row_word}s {', '.join(map(str, labels))})")
        raise CohortError(
            f"Cohort {source!r} has output(s) that model {model.name!r} does not "
            f"define: {'; '.join(parts)}. The model's outputs are {list(names)}.",
            problems,
            source,
        )
    by_name = (
        np.where(obs_mask, np.array([names.index(o) for o in outputs])[obs_output], 0)
        if outputs
        else np.zeros_like(obs_output)
    )
    if obs_dvid is None or not np.any(obs_dvid[obs_mask]):
        return by_name
    _check_dvid(model, used, source=source, row_word=row_word)
    return np.where(obs_mask, np.maximum(obs_dvid - 1, 0), 0)


def _check_dvid(model: Model, used: pd.DataFrame, *, source: str, row_word: str) -> None:
    """Refuse DVID numbers beyond the model's outputs or disagreeing with an output name."""
    names = model.output_names
    problems = []
    for lab, pid, d, name in zip(
        used.index,
        used["id"],
        used["dvid"],
        used["output"] if "output" in used else [None] * len(used),
        strict=True,
    ):
        if d > len(names):
            problems.append(
                Problem(
                    lab,
                    "dvid",
                    str(pid),
                    f"DVID={d} names no output: model {model.name!r} has {len(names)} "
                    f"({', '.join(f'{k + 1} = {n}' for k, n in enumerate(names))}).",
                )
            )
        elif isinstance(name, str) and d >= 1 and names[d - 1] != name:
            problems.append(
                Problem(
                    lab,
                    "dvid",
                    str(pid),
                    f"DVID={d} is output {names[d - 1]!r} of model {model.name!r}, but the "
                    f"output column says {name!r}; correct one.",
                )
            )
    if problems:
        raise CohortError.from_problems(source, problems, row_word)


def check_dose_compartments(
    model: Model, table: pd.DataFrame, *, source: str, row_word: str
) -> None:
    """Raise :class:`CohortError` for dose rows whose CMT is beyond the model's states."""
    t = table
    if "cmt" not in t:
        return
    n = len(model.states)
    bad = t[t["evid"].isin((1, 4)) & (t["cmt"] > n)]
    if len(bad):
        problems = [
            Problem(lab, "cmt", str(pid), f"CMT={c} but model {model.name!r} has {n} states")
            for lab, pid, c in zip(bad.index, bad["id"], bad["cmt"], strict=True)
        ]
        raise CohortError.from_problems(source, problems, row_word)


def check_signals(model: Model, table: pd.DataFrame, *, source: str) -> None:
    """Raise :class:`CohortError` when a measured signal of the model has no column."""
    for s in model.signals:
        try:
            covariate_column(table, s, source=source, what="signal")
        except CohortError as e:
            raise CohortError(
                f"Model {model.name!r} needs the measured signal {s!r}: {e}", e.problems, e.source
            ) from None


def covariate_matrix(
    model: Model,
    table: pd.DataFrame,
    baseline: pd.DataFrame,
    ids: tuple[str, ...],
    *,
    source: str,
    row_word: str,
) -> np.ndarray:
    """Baseline covariates in ``model.covariates`` order, shape ``(P, C)`` float64.

    ``baseline`` is the cohort's per-patient covariate frame (index = ids); columns match
    the model's names without regard to case. A column the table lacks, or a patient's
    missing value, takes ``model.covariate_defaults``, announced by a
    :class:`~twin_uq.data.problems.CovariateDefaultWarning` naming the covariate, the
    default and the patients.

    Raises
    ------
    CohortError
        Listing every covariate missing without a default (column or patient) and every
        categorical covariate.
    """
    out = np.zeros((len(ids), len(model.covariates)))
    problems: list[Problem] = []
    defaults = model.covariate_defaults
    for k, name in enumerate(model.covariates):
        try:
            col = covariate_column(table, name, source=source)
        except CohortError:
            if name in defaults:
                out[:, k] = defaults[name]
                warnings.warn(
                    f"{source}: model {model.name!r} uses covariate {name!r}, which the data "
                    f"do not have: every patient takes its default {name} = "
                    f"{defaults[name]:g}. Add the column (or map yours with "
                    "read_cohort(..., rename={...}))"
                    f" if {name} differs between patients.",
                    CovariateDefaultWarning,
                    stacklevel=3,
                )
                continue
            problems.append(
                Problem(
                    None,
                    name,
                    None,
                    f"model {model.name!r} needs covariate {name!r}: the table has no such "
                    f"column and the model gives no default (covariates: "
                    f"{list(baseline.columns) or 'none'}).",
                )
            )
            continue
        vals = baseline[col]
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
        gaps = np.flatnonzero(np.isnan(x))
        if gaps.size and name in defaults:
            shown = ", ".join(repr(ids[p]) for p in gaps[:5]) + (" ..." if gaps.size > 5 else "")
            warnings.warn(
                f"{source}: {gaps.size} patient(s) have no value of covariate {col!r} and take "
                f"model {model.name!r}'s default {name} = {defaults[name]:g}: {shown}.",
                CovariateDefaultWarning,
                stacklevel=3,
            )
        for p in gaps:
            if name in defaults:
                x[p] = defaults[name]
            else:
                problems.append(
                    Problem(
                        None,
                        col,
                        ids[p],
                        f"no value of covariate {name!r} and model {model.name!r} gives no "
                        "default.",
                    )
                )
        out[:, k] = x
    if problems:
        raise CohortError.from_problems(source, problems, row_word)
    return out


def stack_arrays(
    model: Model,
    obs: Mapping[str, np.ndarray],
    output_index: np.ndarray,
    schedules: Sequence[Mapping[str, np.ndarray]],
    covariates: np.ndarray,
) -> CohortArrays:
    """Wrap matched NumPy pieces as :class:`CohortArrays` (JAX arrays, float64 / int32).

    ``obs`` holds ``obs_time``, ``obs_value``, ``obs_mask``, ``obs_censored``, ``obs_lloq``,
    ``obs_cens`` and ``obs_limit`` (shape ``(P, N)``); ``output_index`` is :func:`model_output_index`; ``schedules`` the
    per-patient schedule fields (stacked along a leading patient axis); ``covariates`` is
    :func:`covariate_matrix`.
    """
    return CohortArrays(
        obs_time=jnp.asarray(obs["obs_time"], dtype=jnp.float64),
        obs_value=jnp.asarray(obs["obs_value"], dtype=jnp.float64),
        obs_output=jnp.asarray(output_index, dtype=jnp.int32),
        obs_mask=jnp.asarray(obs["obs_mask"]),
        obs_censored=jnp.asarray(obs["obs_censored"]),
        obs_lloq=jnp.asarray(obs["obs_lloq"], dtype=jnp.float64),
        schedule=stack_schedules(list(schedules)),
        covariates=jnp.asarray(covariates, dtype=jnp.float64),
        output_names=model.output_names,
        covariate_names=tuple(model.covariates),
        **_extended_censoring(obs),
    )


def _extended_censoring(obs: Mapping[str, np.ndarray]) -> dict[str, Array | None]:
    """``obs_cens`` and ``obs_limit`` when some observation is censored above or on an interval.

    ``None`` otherwise: below-limit censoring alone is ``obs_censored`` with ``obs_lloq``,
    and the likelihood then computes exactly what it always computed (M3), at no extra cost.
    """
    cens = np.asarray(obs["obs_cens"])
    limit = np.asarray(obs["obs_limit"])
    if not (np.any(cens < 0) or np.any(np.isfinite(limit) & (cens != 0))):
        return {"obs_cens": None, "obs_limit": None}
    return {
        "obs_cens": jnp.asarray(cens, dtype=jnp.int32),
        "obs_limit": jnp.asarray(np.where(cens != 0, limit, np.nan), dtype=jnp.float64),
    }


def bucket_size(n: int, smallest: int = 4) -> int:
    """The shape bucket of ``n`` (patients or observations per patient): at least ``n``.

    ``smallest`` and then four sizes per doubling, ``2^k · (1, 1.25, 1.5, 1.75)``
    (4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, ... 96, 112, 128, 160, ...): two
    neighbouring buckets differ by at most 25 %, so padding adds at most a quarter of the
    real size (a gradient costs in proportion), while every size in the bucket reuses the
    same compiled programs. Powers of two alone would waste up to 100 %.
    """
    if n <= smallest:
        return smallest
    octave = 1 << (int(n - 1).bit_length() - 1)  # the largest power of two below n
    for quarter in (5, 6, 7, 8):
        size = -(-octave * quarter // 4)
        if size >= n:
            return size
    raise AssertionError("unreachable: 2 · octave >= n")  # pragma: no cover


def pad_cohort_arrays(arrays: CohortArrays, n_patients: int, n_obs: int) -> CohortArrays:
    """``arrays`` padded to ``n_patients`` patients and ``n_obs`` observations per patient.

    Padding never observes anything (``obs_mask`` False) and keeps every value finite: a
    padded observation column holds a copy of the patient's last real observation (its
    time, so the solver's end time and fixed grids are unchanged; finite, so the gradient
    of a masked ``where`` stays finite); a ghost patient is a copy of patient 0's schedule,
    covariates and change times, without observations. :func:`take_cohort_arrays` undoes it.
    """
    P, N = arrays.obs_time.shape
    if n_patients < P or n_obs < N:
        raise ValueError(f"cannot pad {P} x {N} arrays to {n_patients} x {n_obs}.")
    n_real = np.asarray(arrays.obs_mask).sum(axis=1)
    last = np.repeat(np.maximum(n_real - 1, 0)[:, None], n_obs - N, axis=1)
    ghosts = np.zeros(n_patients - P, dtype=int)
    changes = {}
    for name in OBSERVATION_FIELDS:
        value = getattr(arrays, name)
        if value is None:
            continue
        value = np.asarray(value)
        if name in ("obs_mask", "obs_censored", "obs_cens"):
            filled = np.zeros((P, n_obs - N), value.dtype)
        else:
            filled = np.take_along_axis(value, last, axis=1)
        value = np.concatenate([value, filled], axis=1)
        value = np.concatenate([value, value[ghosts]], axis=0)
        if name in ("obs_mask", "obs_censored", "obs_cens"):
            value[P:] = 0
        changes[name] = jnp.asarray(value)
    padded = eqx.tree_at(
        lambda a: tuple(getattr(a, k) for k in changes),
        arrays,
        tuple(changes.values()),
    )
    # in NumPy: eager jnp operations would compile a small program for every cohort shape
    return _map_patients(
        padded, lambda x: jnp.asarray(np.concatenate([np.asarray(x), np.asarray(x)[ghosts]]))
    )


def take_cohort_arrays(arrays: CohortArrays, n_patients: int, n_obs: int) -> CohortArrays:
    """The first ``n_patients`` patients and ``n_obs`` observation columns of ``arrays``."""
    changes = {
        name: host_slice(getattr(arrays, name), np.s_[:n_patients, :n_obs])
        for name in OBSERVATION_FIELDS
        if getattr(arrays, name) is not None
    }
    cut = eqx.tree_at(
        lambda a: tuple(getattr(a, k) for k in changes), arrays, tuple(changes.values())
    )
    return _map_patients(cut, lambda x: host_slice(x, np.s_[:n_patients]))


def host_slice(x: Array, index: object) -> Array:
    """``x[index]`` cut in NumPy (eager JAX indexing compiles a program for every shape)."""
    return jnp.asarray(np.asarray(x)[index])


def _map_patients(arrays: CohortArrays, f) -> CohortArrays:
    """``f`` applied to every array field not along the observations (leading axis ``P``)."""
    fields = ("schedule", "covariates", "change_time")
    present = tuple(k for k in fields if getattr(arrays, k) is not None)
    new = tuple(jax.tree.map(f, getattr(arrays, k)) for k in present)
    return eqx.tree_at(lambda a: tuple(getattr(a, k) for k in present), arrays, new)
