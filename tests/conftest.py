"""Shared test configuration: float64, fixed seeds, shared compiled fixtures."""

import twin_uq  # noqa: F401  (applies float64 and host-device settings before JAX starts)
