"""A one-patient IV table with a measured, an upper-censored and an interval-censored value.

Shared by the tests that check twin updates and two-stage workers against the censored
likelihood written out with scipy (tests/twin, tests/distributed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NAN = np.nan

#: Sample times (h) of the three observations after a 100 mg bolus at 0.
TIMES = np.array([1.0, 4.0, 8.0])


def censored_iv_table() -> pd.DataFrame:
    """100 mg at 0; 1.5 measured at 1 h, above 3.0 at 4 h (CENS=-1), in (0.2, 1.0) at 8 h."""
    return pd.DataFrame(
        {
            "ID": ["a"] * 4,
            "TIME": [0.0, *TIMES],
            "DV": [NAN, 1.5, 3.0, 1.0],
            "AMT": [100.0, NAN, NAN, NAN],
            "CENS": [0, 0, -1, 1],
            "LIMIT": [NAN, NAN, NAN, 0.2],
            "WT": [70.0] * 4,
        }
    )
