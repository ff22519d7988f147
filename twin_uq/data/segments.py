"""Per-patient time segments: the layout covariate and occasion segments share.

A patient's time is cut into segments at the times something changes (a time-varying
covariate, the occasion); each segment starts at a time and holds until the next start.
Patients have different numbers of segments, padded to a common count with ``+inf``
starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Segments"]


@dataclass(frozen=True)
class Segments:
    """Segment starts of every patient (see the module docstring).

    Attributes
    ----------
    time
        ``(P, S)`` float64 segment starts (0 first, ``+inf`` padding).
    """

    time: np.ndarray

    @property
    def n_segments(self) -> int:
        """The padded number of segments ``S``."""
        return self.time.shape[1]

    @property
    def n_live(self) -> np.ndarray:
        """Real segments of each patient, ``(P,)``."""
        return np.isfinite(self.time).sum(axis=1)
