"""The load summary of a cohort: counts, and how every column of the table was read.

:class:`CohortSummary` is what ``cohort.summary()`` returns and what the command line
prints where it reads a cohort: which columns were understood (and under which of the
project's own spellings), which became covariates (baseline or time-varying), which were
ignored on request, and whether the time unit was declared.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin_uq.data.names import ALIASES

__all__ = ["CohortSummary"]


@dataclass(frozen=True)
class CohortSummary:
    """A few numbers describing a cohort and how its columns were read.

    ``str()`` gives a readable block.

    Attributes
    ----------
    source
        File name or ``"DataFrame"``.
    patients, doses, censored, excluded
        Counts (doses after ``ADDL`` expansion; censored observations in either direction;
        rows that are neither observation nor dose).
    obs_per_patient
        ``(min, median, max)`` observations per patient.
    outputs
        Output names used (``()``: by DVID index, or the model's first output).
    covariates, time_varying
        Covariate columns, and those among them that change within a patient.
    understood
        ``(column as spelled, standard name)`` of each column read with its NONMEM meaning.
    ignored
        Columns read past on request (``read_cohort(..., ignore=...)``).
    time_unit
        The declared unit of TIME, or ``None`` when not declared.
    model_time_unit
        The unit of the model the summary was made for (``cohort.summary(model=...)``), or
        ``None``: an undeclared unit then reads "assumed <model unit>".
    """

    source: str
    patients: int
    obs_per_patient: tuple[int, float, int]
    doses: int
    censored: int
    excluded: int
    outputs: tuple[str, ...]
    covariates: tuple[str, ...]
    time_varying: tuple[str, ...]
    understood: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()
    time_unit: str | None = None
    model_time_unit: str | None = None

    @property
    def baseline(self) -> tuple[str, ...]:
        """Covariates constant within every patient."""
        return tuple(c for c in self.covariates if c not in self.time_varying)

    def __str__(self) -> str:
        lo, med, hi = self.obs_per_patient
        tv = f" (time-varying: {', '.join(self.time_varying)})" if self.time_varying else ""
        lines = [
            f"Cohort from {self.source}",
            f"  patients:              {self.patients}",
            f"  observations/patient:  min {lo}, median {med:g}, max {hi}",
            f"  doses:                 {self.doses}",
            f"  censored obs:          {self.censored}",
            f"  excluded rows:         {self.excluded}",
            f"  outputs:               {', '.join(self.outputs) or '(model default)'}",
            f"  covariates:            {', '.join(self.covariates) or '(none)'}{tv}",
        ]
        if self.understood:
            lines.append(f"  columns understood:    {', '.join(s for s, _ in self.understood)}")
        for spelled, std in self.understood:
            if std in ALIASES:
                lines.append(f"    {spelled}: twin_uq's own column, {ALIASES[std]}")
        lines.append(f"  baseline covariates:   {', '.join(self.baseline) or '(none)'}")
        lines.append(f"  time-varying:          {', '.join(self.time_varying) or '(none)'}")
        lines.append(f"  ignored columns:       {', '.join(self.ignored) or '(none)'}")
        if self.time_unit is not None:
            unit = self.time_unit
        elif self.model_time_unit is not None:
            unit = (
                f"assumed {self.model_time_unit}, the model's (not declared: "
                "read_cohort(..., time_unit=...), --time-unit; the pre-fit check tests it)"
            )
        else:
            unit = "not declared: taken to be the model's (read_cohort(..., time_unit=...))"
        lines.append(f"  time unit:             {unit}")
        return "\n".join(lines)
