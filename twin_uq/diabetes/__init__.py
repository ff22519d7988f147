"""Diabetes twins in use: following a CGM stream (update, trust, forecast, risk per reading).

Insulin policies live with the twin (:mod:`twin_uq.twin.policy`,
``twin.compare_policies``); the clinician's page is :mod:`twin_uq.report.diabetes`.
"""

from twin_uq.diabetes.stream import (
    RISK_THRESHOLDS as RISK_THRESHOLDS,
    StreamStep as StreamStep,
    stream_twin as stream_twin,
)
from twin_uq.diabetes.stream_input import read_stream as read_stream
