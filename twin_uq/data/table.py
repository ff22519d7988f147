"""Questions about the normalised long table (the output of ``validate.normalise``).

Every function here reads the normalised table only: which rows are observations entering
the likelihood, which are censored, why a row is excluded, and which column holds a named
covariate. :class:`~twin_uq.data.cohort.Cohort`, the schedule extraction and the matching to
a model all ask these questions; none of them is asked about a :class:`Cohort` itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin_uq.data.names import STANDARD_COLUMNS
from twin_uq.data.validate import CohortError, Problem, as_text

__all__ = [
    "censored",
    "censoring",
    "covariate_column",
    "exclusion_reasons",
    "id_text",
    "used_obs",
]


def id_text(v: object) -> str:
    """A patient id as the text the cohort stores (``7``, ``7.0`` and ``" 7"`` give ``"7"``)."""
    t = as_text(v)
    return str(v) if isinstance(t, float) else str(t)


def used_obs(t: pd.DataFrame) -> np.ndarray:
    """Rows that are observations entering the likelihood (censored included), shape ``(n,)``."""
    obs = (t["evid"].to_numpy() == 0) & (t["mdv"].to_numpy() == 0)
    has_dv = t["dv"].notna().to_numpy() if "dv" in t else np.zeros(len(t), bool)
    return obs & (has_dv | censored(t))


def censored(t: pd.DataFrame) -> np.ndarray:
    """Censored observation rows (either direction), shape ``(n,)`` bool; see :func:`censoring`."""
    return censoring(t)[0] != 0


def censoring(t: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the censoring of an observation: ``(cens, bound, limit)``, each shape ``(n,)``.

    ``cens`` is 1 (the value lies below ``bound``), -1 (above ``bound``) or 0; ``limit``
    is the interval's other bound (NaN: none, so 1 means ``Y < bound`` as in M3 and -1
    ``Y > bound``). Only observation rows (``EVID=0, MDV=0``) are censored.

    Two spellings give it: NONMEM's ``CENS`` (DV holds the limit, ``LIMIT`` the other bound)
    and the project's ``lloq``/``blq``: a row with a finite LLOQ and a DV below it, no DV,
    or ``BLQ=1`` is ``cens = 1`` with ``bound = LLOQ``. ``validate`` has refused rows where
    the two disagree.
    """
    n = len(t)
    obs = (t["evid"].to_numpy() == 0) & (t["mdv"].to_numpy() == 0)
    dv = t["dv"].to_numpy(dtype=float) if "dv" in t else np.full(n, np.nan)
    cens = np.zeros(n, np.int64)
    bound = np.full(n, np.nan)
    limit = np.full(n, np.nan)
    if "lloq" in t:
        lloq = t["lloq"].to_numpy(dtype=float)
        blq = t["blq"].to_numpy() == 1 if "blq" in t else np.zeros(n, bool)
        with np.errstate(invalid="ignore"):
            below = dv < lloq
        low = obs & np.isfinite(lloq) & (below | np.isnan(dv) | blq)
        cens[low] = 1
        bound[low] = lloq[low]
    if "cens" in t:
        c = t["cens"].to_numpy(dtype=np.int64)
        given = obs & (c != 0)
        cens[given] = c[given]
        bound[given] = dv[given]
        if "limit" in t:
            limit[given] = t["limit"].to_numpy(dtype=float)[given]
    return cens, bound, limit


def exclusion_reasons(t: pd.DataFrame) -> list[str | None]:
    """Per row, why it is neither an observation nor a dose (``None`` for rows that are)."""
    evid = t["evid"].to_numpy()
    mdv = t["mdv"].to_numpy()
    used = used_obs(t)
    reasons: list[str | None] = []
    for i in range(len(t)):
        if evid[i] == 1 or used[i]:
            reasons.append(None)
        elif evid[i] == 2:
            reasons.append("EVID=2: other/covariate-only row, neither observation nor dose")
        elif mdv[i] == 1:
            reasons.append("MDV=1: observation row marked missing")
        elif "dv" not in t:
            reasons.append("no DV column: nothing observed")
        else:
            reasons.append("DV missing and no LLOQ: nothing observed")
    return reasons


def covariate_column(
    table: pd.DataFrame, name: str, *, source: str, what: str = "covariate"
) -> str:
    """The covariate column called ``name`` (exact, else case-insensitive match).

    Raises
    ------
    CohortError
        When no column (or more than one case-insensitive match) has that name; ``what``
        ("covariate", "signal") names the kind of column in the message.
    """
    cols = [str(c) for c in table.columns if str(c) not in STANDARD_COLUMNS]
    if name in cols:
        return name
    matches = [c for c in cols if c.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    raise CohortError(
        f"Cohort {source!r} has no {what} column {name!r}; its covariate columns "
        f"are {cols or 'none'}.",
        [Problem(None, name, None, f"{what} column missing")],
        source,
    )
