"""The validated cohort: padded observation arrays, dose lists, covariates and the table.

A :class:`Cohort` is built from the normalised table that
:func:`twin_uq.data.validate.normalise` returns (``read_cohort`` does both). Everything in
it is derived from that table (:func:`twin_uq.data.build.cohort_fields`), so sub-cohorts
(:meth:`Cohort.select`, :meth:`Cohort.split_at`) are built by filtering the table and
building again. Schedules come from :mod:`twin_uq.data.schedules`, the arrays for a model
from :mod:`twin_uq.data.arrays`; neither knows this container.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from twin_uq.data.arrays import (
    CohortArrays,
    check_dose_compartments,
    check_signals,
    covariate_matrix,
    model_output_index,
    stack_arrays,
)
from twin_uq.data.build import cohort_fields
from twin_uq.data.covariate_path import CovariateSegments, covariate_segments
from twin_uq.data.model_checks import (
    check_modelled_doses,
    check_observation_compartments,
    warn_depot_infusions,
)
from twin_uq.data.schedules import patient_schedule_fields, patient_signal
from twin_uq.data.summary import CohortSummary
from twin_uq.data.table import covariate_column, id_text, used_obs
from twin_uq.data.time_units import check_time_unit
from twin_uq.data.validate import CohortError, Problem
from twin_uq.simulate.schedule import (
    Bolus,
    Infusion,
    ModelledInfusion,
    Reset,
    Schedule,
    Signal,
)

if TYPE_CHECKING:
    import xarray as xr

    from twin_uq.model.base import Model

__all__ = ["Cohort", "CohortSummary", "build_cohort"]

_OBS_FIELDS = (
    "obs_time",
    "obs_value",
    "obs_output",
    "obs_mask",
    "obs_censored",
    "obs_lloq",
    "obs_cens",
    "obs_limit",
    "obs_dvid",
    "obs_occ",
)


@dataclass(frozen=True, eq=False)
class Cohort:
    """A validated cohort of patients: padded observations, doses and covariates.

    Build it with :func:`twin_uq.read_cohort`. Arrays are numpy, shape ``(P, N)`` with
    ``P`` patients (in order of first appearance in the table) and ``N`` the largest number
    of observations of one patient (at least 1). Padding entries have ``obs_mask`` False,
    ``obs_value`` 0, ``obs_lloq`` -inf and ``obs_time`` equal to the patient's last
    observation time (0 without observations) so that time grids stay non-decreasing.

    Attributes
    ----------
    ids
        Patient ids (strings).
    outputs
        Output names found in the ``output`` column; ``()`` when there is none, meaning
        every observation is of the model's first output.
    obs_time, obs_value
        Observation time and value; ``obs_value`` is 0 for a censored observation without a
        value.
    obs_output
        Index into :attr:`outputs` (0 when there are none).
    obs_mask
        True for a real observation (censored ones included).
    obs_censored
        True for a censored observation (either direction; the likelihood uses the
        probability of its interval, see ``obs_cens``).
    obs_lloq
        The limit of a censored observation (LLOQ, or DV of a ``CENS`` row: the upper limit
        for ``CENS=-1``); on other observations their LLOQ; -inf where none.
    obs_cens
        Censoring direction (int): 1 below ``obs_lloq``, -1 above it, 0 not censored.
    obs_limit
        The other bound of a censored observation's interval (``LIMIT``; e.g. 0 for M4),
        NaN where none.
    obs_dvid
        The 1-based output index of a numeric ``DVID`` column (resolved against a model's
        outputs by :meth:`for_model`), 0 where there is none.
    obs_occ
        The occasion (``OCC``) of each observation, 0 without an OCC column; every row's
        occasion is in :attr:`table`.
    boluses, infusions, modelled
        Per patient (aligned with :attr:`ids`), the doses in time order, ``ADDL``
        expanded; ``cmt`` is the CMT column (1-based) or 0 without one; ``modelled`` holds
        the ``RATE=-1`` / ``RATE=-2`` (without ``DUR``) infusions.
    resets
        Per patient, the resets (``EVID=3`` and ``4``) in time order.
    covariates
        Baseline covariates (first non-missing value in time), index = ids; float or
        categorical columns.
    covariate_series
        Long table ``id, time, covariate, value`` of every recorded value of the covariates
        that change within some patient.
    table
        Normalised long table (standard columns lower case, covariates as spelled; index =
        row labels: CSV line number with the header as line 1, Parquet 1-based row,
        DataFrame index label).
    source
        File name or ``"DataFrame"``.
    excluded
        Rows of :attr:`table` that are neither an observation nor a dose, with a
        ``reason`` column.
    row_word
        How row labels are named in messages (``"line"``, ``"row"``, ``"index"``).
    understood
        ``(column as spelled, standard name)`` of the columns read with their NONMEM
        meaning (see :meth:`summary`).
    ignored
        Columns read past on request (``read_cohort(..., ignore=...)``).
    time_unit
        The declared unit of TIME (canonical spelling, e.g. ``"h"``), or ``None``: then the
        cohort is taken to be in a model's unit, which :meth:`summary` says.
    """

    ids: tuple[str, ...]
    outputs: tuple[str, ...]
    obs_time: np.ndarray
    obs_value: np.ndarray
    obs_output: np.ndarray
    obs_mask: np.ndarray
    obs_censored: np.ndarray
    obs_lloq: np.ndarray
    obs_cens: np.ndarray
    obs_limit: np.ndarray
    obs_dvid: np.ndarray
    obs_occ: np.ndarray
    boluses: tuple[tuple[Bolus, ...], ...]
    infusions: tuple[tuple[Infusion, ...], ...]
    modelled: tuple[tuple[ModelledInfusion, ...], ...]
    resets: tuple[tuple[Reset, ...], ...]
    covariates: pd.DataFrame
    covariate_series: pd.DataFrame
    table: pd.DataFrame
    source: str
    excluded: pd.DataFrame
    row_word: str = "line"
    understood: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()
    time_unit: str | None = None

    # ---- basic views -------------------------------------------------------------------
    @property
    def n_patients(self) -> int:
        """Number of patients ``P``."""
        return len(self.ids)

    @property
    def n_obs(self) -> np.ndarray:
        """Number of observations of each patient, shape ``(P,)``."""
        return self.obs_mask.sum(axis=1)

    @property
    def covariate_names(self) -> tuple[str, ...]:
        """Covariate column names, as spelled in the input."""
        return tuple(self.covariates.columns)

    @property
    def time_varying(self) -> tuple[str, ...]:
        """Covariates whose value changes within at least one patient."""
        return tuple(dict.fromkeys(self.covariate_series["covariate"]))

    def index(self, patient_id: object) -> int:
        """Position of a patient; unknown ids raise :class:`CohortError` with close matches."""
        pid = id_text(patient_id)
        try:
            return self._positions[pid]
        except KeyError:
            raise self._unknown([pid]) from None

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {pid: k for k, pid in enumerate(self.ids)}

    def _unknown(self, unknown: Sequence[str]) -> CohortError:
        parts = []
        for u in unknown:
            close = difflib.get_close_matches(u, self.ids, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            parts.append(f"{u!r}{hint}")
        return CohortError(
            f"Cohort {self.source!r} has no patient {'; '.join(parts)}. "
            f"It has {len(self.ids)} patients, e.g. {', '.join(map(repr, self.ids[:5]))}.",
            [Problem(None, "id", u, "unknown patient id") for u in unknown],
            self.source,
        )

    def summary(self, model: Model | None = None) -> CohortSummary:
        """The load summary: counts, and how every column was read (see CohortSummary).

        With ``model``, an undeclared time unit reads "assumed <the model's unit>".
        """
        n = self.n_obs
        return CohortSummary(
            source=self.source,
            patients=self.n_patients,
            obs_per_patient=(
                int(n.min()) if n.size else 0,
                float(np.median(n)) if n.size else 0.0,
                int(n.max()) if n.size else 0,
            ),
            doses=sum(
                len(b) + len(i) + len(m)
                for b, i, m in zip(self.boluses, self.infusions, self.modelled, strict=True)
            ),
            censored=int(self.obs_censored.sum()),
            excluded=len(self.excluded),
            outputs=self.outputs,
            covariates=self.covariate_names,
            time_varying=self.time_varying,
            understood=self.understood,
            ignored=self.ignored,
            time_unit=self.time_unit,
            model_time_unit=None if model is None else str(model.card.time_unit),
        )

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (
            f"<Cohort {self.source!r}: {self.n_patients} patients, "
            f"{int(self.obs_mask.sum())} observations>"
        )

    # ---- conversions -------------------------------------------------------------------
    def to_dataframe(self) -> pd.DataFrame:
        """The normalised long table with a plain ``0..n-1`` index.

        ``read_cohort(cohort.to_dataframe())`` gives an equal cohort (see :meth:`equals`).
        """
        return self.table.reset_index(drop=True)

    def to_xarray(self) -> xr.Dataset:
        """An ``xarray.Dataset`` with dims ``(patient, obs)``; covariates on ``patient``."""
        import xarray as xr

        dims = ("patient", "obs")
        data = {f: (dims, getattr(self, f)) for f in _OBS_FIELDS}
        data["n_bolus"] = ("patient", np.array([len(b) for b in self.boluses], dtype=np.int64))
        data["n_infusion"] = (
            "patient",
            np.array([len(i) for i in self.infusions], dtype=np.int64),
        )
        for name in self.covariates.columns:
            col = self.covariates[name]
            vals = (
                col.astype(object).to_numpy()
                if isinstance(col.dtype, pd.CategoricalDtype)
                else col.to_numpy(dtype=float)
            )
            data[str(name)] = ("patient", vals)
        return xr.Dataset(
            data,
            coords={
                "patient": np.array(self.ids, dtype=object),
                "obs": np.arange(self.obs_time.shape[1]),
            },
            attrs={"source": self.source, "outputs": list(self.outputs)},
        )

    # ---- sub-cohorts -------------------------------------------------------------------
    def _rebuild(self, table: pd.DataFrame) -> Cohort:
        return build_cohort(
            table,
            source=self.source,
            row_word=self.row_word,
            understood=self.understood,
            ignored=self.ignored,
            time_unit=self.time_unit,
        )

    def select(self, ids: Sequence[object]) -> Cohort:
        """The cohort of the given patients, in the order given.

        Raises
        ------
        CohortError
            For unknown ids (with close matches) or ids given twice.
        """
        wanted = [id_text(i) for i in ids]
        unknown = [i for i in wanted if i not in self.ids]
        if unknown:
            raise self._unknown(unknown)
        twice = sorted({i for i in wanted if wanted.count(i) > 1})
        if twice:
            raise CohortError(f"select(): patient id(s) given twice: {twice}.", [], self.source)
        if not wanted:
            raise CohortError("select() needs at least one patient id.", [], self.source)
        parts = [self.table[self.table["id"] == i] for i in wanted]
        return self._rebuild(pd.concat(parts))

    def split_at(self, time: float) -> tuple[Cohort, Cohort]:
        """Split observations at ``time`` for held-out forecasting.

        Returns
        -------
        train, holdout
            Both keep every patient, every dose and every non-observation row; ``train``
            keeps the observations with time ``<= time``, ``holdout`` those with time
            ``> time`` (so a forecast can be simulated with the full dosing history).
        """
        t = self.table
        used = used_obs(t)
        late = t["time"].to_numpy() > time
        return self._rebuild(t[~(used & late)]), self._rebuild(t[~(used & ~late)])

    # ---- inputs for simulation ---------------------------------------------------------
    def signal(self, patient_id: object, name: str) -> Signal:
        """The measured signal ``name`` of one patient, built from its covariate column.

        Knots are the times where the column has a value; repeated identical values at one
        time count once.
        """
        col = self._covariate_column(name, what="signal")
        pid = self.ids[self.index(patient_id)]
        return patient_signal(
            self.table, pid, name, col, source=self.source, row_word=self.row_word
        )

    def schedule(
        self,
        patient_id: object,
        signals: Sequence[str] = (),
        *,
        n_bolus: int | None = None,
        n_infusion: int | None = None,
        n_knots: int | None = None,
    ) -> Schedule:
        """An unbatched :class:`Schedule` of one patient's doses and measured signals.

        Parameters
        ----------
        patient_id
            The patient.
        signals
            Names of (time-varying) covariate columns to pass as measured signals, in the
            order of the schedule's signal axis. When several signals have different knot
            times, every signal is evaluated (linear interpolation, constant outside its
            knots) on the union of the knot times, which leaves each piecewise-linear
            signal unchanged.
        n_bolus, n_infusion, n_knots
            Optional padded sizes (see :meth:`Schedule.build`).
        """
        fields = self.schedule_fields(
            self.index(patient_id), signals, n_bolus=n_bolus, n_infusion=n_infusion, n_knots=n_knots
        )
        return Schedule.from_fields(fields)

    def schedule_fields(
        self,
        position: int,
        signals: Sequence[str] = (),
        *,
        n_bolus: int | None = None,
        n_infusion: int | None = None,
        n_knots: int | None = None,
    ) -> dict[str, np.ndarray]:
        """:meth:`schedule` of the patient at ``position`` as NumPy arrays by field name."""
        k = position
        return patient_schedule_fields(
            self.boluses[k],
            self.infusions[k],
            [self.signal(self.ids[k], s) for s in signals],
            modelled=self.modelled[k],
            resets=self.resets[k],
            n_bolus=n_bolus,
            n_infusion=n_infusion,
            n_knots=n_knots,
        )

    def for_model(self, model: Model) -> CohortArrays:
        """Padded JAX arrays of this cohort for ``model`` (see :class:`CohortArrays`).

        Raises
        ------
        CohortError
            For a declared time unit that is not the model's (with the conversion), outputs
            the model does not define (by name or DVID number, with the first rows using
            them), an observation or dose compartment beyond the model's states, a
            ``RATE=-1/-2`` dose into a compartment without the model's rate/duration, a
            model signal missing from the data, or a model covariate missing for a patient
            without a default.

        Warns
        -----
        CovariateDefaultWarning
            For a model covariate the data lack (or a patient lacks) that takes its default.
        DepotInfusionWarning
            For infusions (``RATE > 0``) into a compartment no output observes.
        """
        where = {"source": self.source, "row_word": self.row_word}
        check_time_unit(self.time_unit, model.card.time_unit, model=model.name, source=self.source)
        out_idx = model_output_index(
            model,
            self.table,
            self.outputs,
            self.obs_output,
            self.obs_mask,
            obs_dvid=self.obs_dvid,
            **where,
        )
        check_dose_compartments(model, self.table, **where)
        check_observation_compartments(model, self.table, **where)
        check_modelled_doses(model, self.table, **where)
        warn_depot_infusions(model, self.table, **where)
        check_signals(model, self.table, source=self.source)
        schedules = [self.schedule_fields(k, model.signals) for k in range(self.n_patients)]
        cov = covariate_matrix(model, self.table, self.covariates, self.ids, **where)
        obs = {f: getattr(self, f) for f in _OBS_FIELDS}
        return stack_arrays(model, obs, out_idx, schedules, cov)

    def covariate_segments(
        self, names: Sequence[str], interpolation: str = "locf"
    ) -> CovariateSegments:
        """Per-patient segments of constant ``names`` (matched without regard to case).

        ``(P, S)`` change times and ``(P, S, C)`` values, ``S`` padded over the cohort
        (1 when none of ``names`` changes within a patient); ``interpolation`` ``"locf"``
        (a value applies from its row on) or ``"nocb"`` (back to the previous row). See
        :mod:`twin_uq.data.covariate_path`.

        Raises
        ------
        CohortError
            When a name matches no covariate column.
        """
        columns = [self._covariate_column(n) for n in names]
        return covariate_segments(self.table, self.ids, columns, interpolation)

    def covariate_column(self, name: str) -> str:
        """The covariate column matching ``name`` (exact, else without regard to case).

        Raises
        ------
        CohortError
            When no covariate column has that name.
        """
        return self._covariate_column(name)

    def _covariate_column(self, name: str, what: str = "covariate") -> str:
        """The covariate column called ``name`` (exact, else case-insensitive match)."""
        return covariate_column(self.table, name, source=self.source, what=what)

    # ---- comparison --------------------------------------------------------------------
    def equals(self, other: object) -> bool:
        """Same patients, observations, doses, covariates, table and exclusions.

        The source name and row labels are ignored, so a cohort equals the one read back
        from its :meth:`to_dataframe`.
        """
        if not isinstance(other, Cohort):
            return False
        if self.ids != other.ids or self.outputs != other.outputs:
            return False
        for f in _OBS_FIELDS:
            a, b = getattr(self, f), getattr(other, f)
            same = np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
            if a.shape != b.shape or a.dtype != b.dtype or not same:
                return False
        for f in ("boluses", "infusions", "modelled", "resets"):
            if getattr(self, f) != getattr(other, f):
                return False
        frames = ("covariates", "covariate_series", "table", "excluded")
        for f in frames:
            a, b = getattr(self, f), getattr(other, f)
            if f in ("table", "excluded"):
                a, b = a.reset_index(drop=True), b.reset_index(drop=True)
            if not _frames_equal(a, b):
                return False
        return True

    def __eq__(self, other: object) -> bool:
        return self.equals(other)

    __hash__ = None  # type: ignore[assignment]  # holds arrays and DataFrames


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    except AssertionError:
        return False
    return True


def build_cohort(
    table: pd.DataFrame,
    *,
    source: str,
    row_word: str = "line",
    understood: tuple[tuple[str, str], ...] = (),
    ignored: tuple[str, ...] = (),
    time_unit: str | None = None,
) -> Cohort:
    """Build a :class:`Cohort` from a normalised, validated table (see ``normalise``)."""
    return Cohort(
        **cohort_fields(table),
        source=source,
        row_word=row_word,
        understood=understood,
        ignored=ignored,
        time_unit=time_unit,
    )
