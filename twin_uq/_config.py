"""Process-wide JAX settings twin_uq needs, applied once when the package is imported.

Two settings must be made before JAX starts its backends, so they live here rather than in
the user's hands:

* **float64** (``jax_enable_x64``): ODE sensitivities and NUTS gradients lose accuracy in
  float32 (adaptive step control with rtol 1e-6 is below float32 resolution of long
  trajectories). Set ``TWIN_UQ_X64=0`` to opt out, e.g. on GPUs where speed matters more.
* **host devices** (``--xla_force_host_platform_device_count``): lets MCMC chains run in
  parallel on CPU cores via ``pmap``. Only applied if JAX has not been imported yet and the
  user has not set the flag; ``TWIN_UQ_HOST_DEVICES`` overrides the count (default: the
  number of CPU cores, at least 4 so that the default 4 chains run side by side).
"""

from __future__ import annotations

import os
import sys


def configure_host_devices() -> None:
    """Ask XLA for several CPU devices, if it is still possible and the user did not."""
    if "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    count = int(os.environ.get("TWIN_UQ_HOST_DEVICES", max(4, os.cpu_count() or 1)))
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def configure_precision() -> None:
    """Enable float64 unless ``TWIN_UQ_X64=0``, without importing JAX.

    Before JAX is imported, its ``JAX_ENABLE_X64`` environment variable sets the default
    (so ``import twin_uq`` stays fast: JAX loads when a submodule needs it); afterwards the
    running configuration is updated.
    """
    if os.environ.get("TWIN_UQ_X64", "1") == "0":
        return
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_enable_x64", True)
    else:
        os.environ["JAX_ENABLE_X64"] = "1"
