"""Validation: simulation-based calibration, recovery and coverage."""

from twin_uq.validate.sbc import SBCResult as SBCResult, run_sbc as run_sbc
