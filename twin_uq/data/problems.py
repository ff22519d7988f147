"""Problems found in a cohort table, and the error that lists them.

Every refusal of a cohort table is one :class:`CohortError` whose :class:`Problem` records
each name the row, the column and the patient; :class:`ProblemLog` collects them while a
table is checked so that all are reported at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from twin_uq.errors import InputError

__all__ = [
    "MAX_PROBLEMS",
    "CohortError",
    "CohortWarning",
    "CovariateDefaultWarning",
    "Problem",
    "ProblemLog",
    "TimeUnitAssumedWarning",
]

#: Most problems listed in one :class:`CohortError` (the rest are counted).
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One problem found in a cohort table.

    Attributes
    ----------
    row
        Row label (CSV: 1-based line number, header = line 1; Parquet: 1-based row number;
        DataFrame: index label), or ``None`` for a problem with the whole table.
    column
        Column name as spelled in the input, or ``None``.
    patient
        Patient id, or ``None``.
    message
        What is wrong and how to fix it.
    """

    row: Hashable | None
    column: str | None
    patient: str | None
    message: str

    def describe(self, row_word: str = "line") -> str:
        """One line: ``line 5, column TIME, patient 'H-0042': message``."""
        where = []
        if self.row is not None:
            where.append(f"{row_word} {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        if self.patient is not None:
            where.append(f"patient {self.patient!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class CohortError(InputError):
    """A cohort table (or a request on a cohort) is invalid.

    Attributes
    ----------
    problems
        The individual :class:`Problem` records (all of them, even those the message
        leaves out).
    source
        File name, or ``"DataFrame"``.
    """

    def __init__(
        self, message: str, problems: Sequence[Problem] = (), source: str | None = None
    ) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)
        self.source = source

    @classmethod
    def from_problems(
        cls, source: str, problems: Sequence[Problem], row_word: str = "line"
    ) -> CohortError:
        """Build one error whose message lists the problems (at most :data:`MAX_PROBLEMS`)."""
        n = len(problems)
        head = f"Cohort table {source!r} has {n} problem{'s' if n != 1 else ''}:"
        lines = [f"  - {p.describe(row_word)}" for p in problems[:MAX_PROBLEMS]]
        if n > MAX_PROBLEMS:
            lines.append(f"  ... and {n - MAX_PROBLEMS} more (see the error's .problems).")
        return cls("\n".join([head, *lines]), problems, source)


class CohortWarning(UserWarning):
    """Something in a cohort table was changed on request (e.g. rows sorted) or looks wrong."""


class CovariateDefaultWarning(CohortWarning):
    """A model covariate is absent from the data (or from a patient) and takes its default."""


class TimeUnitAssumedWarning(CohortWarning):
    """A cohort declares no time unit and is taken to be in the model's (said at fit time)."""


class ProblemLog:
    """Collects problems; raises them all at once (``source`` and ``row_word`` as in messages)."""

    def __init__(self, source: str, row_word: str) -> None:
        self.source = source
        self.row_word = row_word
        self.problems: list[Problem] = []

    def add(self, row: Hashable | None, column: str | None, patient: str | None, msg: str) -> None:
        self.problems.append(Problem(row, column, patient, msg))

    def raise_if_any(self) -> None:
        if self.problems:
            raise CohortError.from_problems(self.source, self.problems, self.row_word)

    def fatal(self, column: str | None, msg: str) -> CohortError:
        self.add(None, column, None, msg)
        return CohortError.from_problems(self.source, self.problems, self.row_word)
