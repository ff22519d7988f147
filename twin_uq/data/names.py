"""The column names of a cohort table: understood, aliased, reserved, covariate.

Every column of a cohort table is one of:

* **understood**: a standard NONMEM data item read with its NONMEM meaning
  (:data:`STANDARD_COLUMNS`), including the project's own spellings (``blq``, ``lloq``,
  ``output``, ``dur``; :data:`ALIASES` says what each stands for);
* **reserved**: a name NONMEM (or Monolix) gives a meaning that twin_uq does not read
  (:data:`RESERVED`); such a column is refused with what to do, never taken as a covariate;
* **ignored**: named in ``read_cohort(..., ignore=[...])``, read and dropped;
* **covariate**: every other column.

Names are case-insensitive. Nothing here reads cells; :mod:`twin_uq.data.validate` uses
these tables to sort the columns and to word its refusals.
"""

from __future__ import annotations

import re

__all__ = [
    "ALIASES",
    "MEANINGS",
    "RESERVED",
    "STANDARD_COLUMNS",
    "reserved_advice",
]

#: Understood columns (lower case), in the order the normalised table uses.
STANDARD_COLUMNS = (
    "id",
    "time",
    "dv",
    "amt",
    "evid",
    "mdv",
    "cmt",
    "rate",
    "dur",
    "addl",
    "ii",
    "ss",
    "dvid",
    "output",
    "cens",
    "limit",
    "lloq",
    "blq",
    "occ",
)

#: What each understood column means (shown in the load summary and the docs).
MEANINGS: dict[str, str] = {
    "id": "patient identifier",
    "time": "time of the record (model time unit)",
    "dv": "observed value (the limit itself on a censored row with CENS)",
    "amt": "dose amount",
    "evid": "event: 0 observation, 1 dose, 2 other, 3 reset, 4 reset and dose",
    "mdv": "1: no observed value on this row",
    "cmt": "1-based compartment of a dose (0 = the model's default)",
    "rate": "infusion rate; -1 rate from the model, -2 duration from the model or DUR",
    "dur": "infusion duration of a RATE=-2 dose (twin_uq's own column)",
    "addl": "number of additional doses",
    "ii": "interdose interval (of ADDL and of a steady state)",
    "ss": "steady state: 1 reset to steady state, 2 add steady state",
    "dvid": "observed output: 1-based index into the model's outputs, or its name",
    "output": "observed output by name (twin_uq's spelling of DVID)",
    "cens": "censoring: 1 below the limit in DV, -1 above it, 0 none",
    "limit": "other bound of a censored observation (e.g. 0 for M4)",
    "lloq": "lower limit of quantification (twin_uq's spelling: CENS=1 with this limit)",
    "blq": "1: below the limit of quantification (twin_uq's spelling of CENS=1)",
    "occ": "occasion (integer), for inter-occasion variability",
}

#: The project's own spellings and the NONMEM item each stands for.
ALIASES: dict[str, str] = {
    "blq": "CENS=1 with LLOQ as the limit (a row below LLOQ or without DV is censored too)",
    "lloq": "the limit of a CENS=1 row (DV keeps the measured value, if any)",
    "output": "DVID given by name",
    "dur": "the duration of a RATE=-2 dose when the model declares none",
}

_ADVICE_DROP = "drop the column, or name it in read_cohort(..., ignore=[...]) to read past it"

#: NONMEM / Monolix names with a meaning twin_uq does not read: never covariates.
#: Each maps to what the user should do instead.
RESERVED: dict[str, str] = {
    "l1": "L1 is NONMEM's record-level ID item; twin_uq identifies patients by ID: " + _ADVICE_DROP,
    "l2": "L2 groups records of one observation vector in NONMEM, which twin_uq does not "
    "use: " + _ADVICE_DROP,
    "date": "DATE is a calendar date that NONMEM turns into TIME; give elapsed TIME since the "
    "first record (model time unit) and " + _ADVICE_DROP,
    "dat1": "DAT1 is a NONMEM calendar date; give elapsed TIME and " + _ADVICE_DROP,
    "dat2": "DAT2 is a NONMEM calendar date; give elapsed TIME and " + _ADVICE_DROP,
    "dat3": "DAT3 is a NONMEM calendar date; give elapsed TIME and " + _ADVICE_DROP,
    "pcmt": "PCMT (NONMEM's prediction compartment) is not read: outputs come from the "
    "model's observe(); " + _ADVICE_DROP,
    "call": "CALL is a NONMEM record-control item that twin_uq does not read: " + _ADVICE_DROP,
    "cont": "CONT (NONMEM continuation records) is not supported: write one row per record "
    "and " + _ADVICE_DROP,
    "mrg_": "MRG_ is a NONMEM record-control item that twin_uq does not read: " + _ADVICE_DROP,
    "raw_": "RAW_ is a NONMEM record-control item that twin_uq does not read: " + _ADVICE_DROP,
    "rpt_": "RPT_ is a NONMEM record-control item that twin_uq does not read: " + _ADVICE_DROP,
    "ytype": "YTYPE is Monolix's observation type: rename the column to DVID",
    "adm": "ADM is Monolix's administration type: give the dose compartment as CMT and "
    + _ADVICE_DROP,
    "tinf": "TINF is Monolix's infusion duration: give RATE = AMT/TINF (or RATE=-2 with DUR) "
    "and " + _ADVICE_DROP,
    "tad": "TAD (time after dose) is derived from the dose records, not a covariate: "
    + _ADVICE_DROP,
    "mdv2": "MDV2 is not a NONMEM item twin_uq reads; use MDV, or " + _ADVICE_DROP,
}

# NONMEM's XVID1..XVID5 (extra event ids).
_XVID = re.compile(r"xvid[1-5]")


def reserved_advice(key: str) -> str | None:
    """What to do about a reserved (lower-case) column name, or ``None`` if not reserved."""
    if key in RESERVED:
        return RESERVED[key]
    if _XVID.fullmatch(key):
        return f"{key.upper()} is a NONMEM event-id item that twin_uq does not read: " + (
            _ADVICE_DROP
        )
    return None
