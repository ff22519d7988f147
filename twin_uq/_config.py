"""The process-wide JAX settings twin_uq recommends, applied by :func:`configure` on request.

``import twin_uq`` changes nothing global: a program (or a notebook's first cell) calls
``tq.configure()`` once, before its first JAX computation. Three settings are involved:

* **float64** (``jax_enable_x64``): ODE sensitivities and NUTS gradients lose accuracy in
  float32 (adaptive step control with rtol 1e-6 is below float32 resolution of long
  trajectories). ``configure(x64=False)`` (or ``TWIN_UQ_X64=0``) keeps float32, e.g. on
  GPUs where speed matters more.
* **host devices** (``jax_num_cpu_devices``): lets MCMC chains run in parallel on CPU
  cores via ``pmap``. Default: ``TWIN_UQ_HOST_DEVICES``, else the number of CPU cores (at
  least 4, so that the default 4 chains run side by side). It can only be set before JAX
  starts its backends (its first computation); a count the user already gave JAX
  (``XLA_FLAGS=--xla_force_host_platform_device_count=N`` or ``JAX_NUM_CPU_DEVICES``) is
  kept unless ``host_devices`` is passed.
* **persistent compilation cache** (``jax_compilation_cache_dir``): JAX keeps the
  programs XLA compiled on disk, keyed by the program, the compiler and its flags, so a
  new process that fits the same model to a cohort of the same shapes loads them instead
  of compiling again (tracing and lowering, a few seconds, remain). Folder
  ``$TWIN_UQ_CACHE/jax`` (default ``~/.cache/twin_uq/jax``), the same as the command
  line's; ``TWIN_UQ_CACHE=off`` or ``configure(compilation_cache=False)`` turns it off. A
  cache folder the user already gave JAX (``JAX_COMPILATION_CACHE_DIR``) is kept unless
  ``compilation_cache`` is passed.

:func:`configure` also exports the first two settings to the environment (``JAX_ENABLE_X64``,
``JAX_NUM_CPU_DEVICES``), so that processes started from this one afterwards (PyMC chain
processes, local Dask workers, a notebook kernel) compute with the same precision.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from twin_uq.errors import ConfigurationError

__all__ = [
    "Configuration",
    "PrecisionWarning",
    "cache_folder",
    "configuration",
    "configure",
    "require_x64",
]

_XLA_COUNT_FLAG = "xla_force_host_platform_device_count"
_CACHE_OFF = ("off", "0", "none", "false", "no", "")
# Programs that compile faster than this are not written to the cache (JAX's default: 1 s).
# A first fit of the 100-patient oral cohort compiles about 55 programs; under a load of 15
# on 2 cores (2026-12-07) 1 s kept 4 of them and 0.1 s kept 8. The threshold is wall time,
# so on a quiet machine (about 7x faster) most of the fit's programs fall under 1 s and
# would be compiled again by every process.
_CACHE_MIN_COMPILE_S = 0.1


class PrecisionWarning(UserWarning):
    """twin_uq runs in float32 because :func:`twin_uq.configure` was not called."""


@dataclass(frozen=True)
class Configuration:
    """What :func:`configure` applied.

    Attributes
    ----------
    x64
        Whether JAX computes in float64.
    host_devices
        CPU devices JAX has (or will have once it starts); ``None`` where JAX decides
        (a count given in ``XLA_FLAGS``, or one device).
    """

    x64: bool
    host_devices: int | None
    compilation_cache: Path | None = None


# What the last configure() call applied: None until a program calls it. Read by
# require_x64 to tell "float32 chosen" from "configure forgotten".
_applied: Configuration | None = None


def _env_x64() -> bool:
    return os.environ.get("TWIN_UQ_X64", "1") != "0"


def _env_host_devices() -> int | None:
    """The host-device count to ask for when ``configure`` is given none."""
    value = os.environ.get("TWIN_UQ_HOST_DEVICES")
    if value is not None:
        try:
            count = int(value)
        except ValueError:
            raise ConfigurationError(
                f"TWIN_UQ_HOST_DEVICES={value!r} is not a whole number; set it to the number "
                "of CPU devices JAX should have (e.g. 4), or unset it."
            ) from None
        return count
    jax_value = os.environ.get("JAX_NUM_CPU_DEVICES", "")
    if jax_value.strip().isdigit():  # JAX was told already (or an earlier configure())
        return int(jax_value)
    if _XLA_COUNT_FLAG in os.environ.get("XLA_FLAGS", ""):
        return None  # the user told JAX already; JAX reads its flag itself
    return max(4, os.cpu_count() or 1)


def configure(
    *,
    x64: bool | None = None,
    host_devices: int | None = None,
    compilation_cache: str | os.PathLike | bool | None = None,
) -> Configuration:
    """Set JAX up for twin_uq: float64, CPU devices for parallel chains, a compilation cache.

    Call it once at the start of a program, before any JAX computation (``import
    twin_uq`` does not do it). Calling it again with the same settings does nothing.

    Parameters
    ----------
    x64
        Compute in float64 (default: ``True`` unless the environment variable
        ``TWIN_UQ_X64=0``). Fits and predictions are only validated in float64.
    host_devices
        Number of CPU devices JAX creates, so that chains run in parallel on CPU cores
        (default: ``TWIN_UQ_HOST_DEVICES``, else a count already given to JAX, else the
        number of CPU cores, at least 4). Must be >= 1.
    compilation_cache
        Folder of twin_uq's cache: compiled XLA programs are kept in its ``jax``
        subfolder and reused by later processes. ``True``: ``~/.cache/twin_uq``;
        ``False``: no persistent cache. Default: ``TWIN_UQ_CACHE`` (a folder, or ``off``),
        else a cache folder already given to JAX, else ``~/.cache/twin_uq``; a default
        folder that cannot be created (read-only home) means no cache, silently. The
        cache is trusted code: do not point it at a folder others can write to.

    Returns
    -------
    Configuration
        The settings now in force.

    Raises
    ------
    ConfigurationError
        ``host_devices`` was passed but JAX has already started with a different number
        of CPU devices (the count cannot change in a running process): call
        ``tq.configure(...)`` before the first JAX computation, e.g. as the first line
        after the imports. Without an explicit ``host_devices`` a late call only warns.
    """
    global _applied
    explicit_devices = host_devices is not None
    if host_devices is None:
        host_devices = _env_host_devices()
    if host_devices is not None and (
        isinstance(host_devices, bool) or not isinstance(host_devices, int) or host_devices < 1
    ):
        raise ConfigurationError(f"host_devices must be a whole number >= 1, got {host_devices!r}.")
    x64 = _env_x64() if x64 is None else bool(x64)

    import jax

    jax.config.update("jax_enable_x64", x64)
    os.environ["JAX_ENABLE_X64"] = "1" if x64 else "0"
    if host_devices is not None:
        host_devices = _set_host_devices(jax, host_devices, explicit=explicit_devices)
    cache = _set_compilation_cache(jax, compilation_cache)
    _applied = Configuration(x64=x64, host_devices=host_devices, compilation_cache=cache)
    return _applied


def _default_root() -> Path:
    return Path.home() / ".cache" / "twin_uq"


def cache_folder(setting: str | os.PathLike | bool | None = None) -> Path | None:
    """The folder of compiled programs for a ``compilation_cache`` setting; ``None``: off.

    ``None`` reads ``TWIN_UQ_CACHE`` (default ``~/.cache/twin_uq``); a folder ``F`` (or
    ``TWIN_UQ_CACHE=F``) gives ``F/jax``. Creates nothing.
    """
    if setting is None:
        setting = os.environ.get("TWIN_UQ_CACHE", True)
    if setting is True:
        return _default_root() / "jax"
    if setting is False or str(setting).strip().lower() in _CACHE_OFF:
        return None
    return Path(setting).expanduser().absolute() / "jax"


def _set_compilation_cache(jax, setting, /) -> Path | None:
    """Point JAX's persistent compilation cache at twin_uq's folder; the folder in force."""
    current = jax.config.jax_compilation_cache_dir
    if setting is None and current and cache_folder(None) in (None, _default_root() / "jax"):
        # The user gave JAX a folder (or an earlier configure() did), and TWIN_UQ_CACHE
        # names none: keep it. TWIN_UQ_CACHE=off stops twin_uq making a cache, and leaves
        # JAX's own alone; only compilation_cache=False removes that.
        return Path(current)
    folder = cache_folder(setting)
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            if setting is None or setting is True:
                folder = None  # read-only home: fits still run, and compile each time
            else:
                raise ConfigurationError(
                    f"compilation_cache={str(setting)!r}: cannot create {folder} ({err}); "
                    "pass a writable folder, or compilation_cache=False."
                ) from None
    new = None if folder is None else str(folder)
    if new != current:
        from jax.experimental.compilation_cache import compilation_cache as cc

        # JAX opens its cache once, at the first compile that uses it: forget that one.
        cc.reset_cache()
        jax.config.update("jax_compilation_cache_dir", new)
    if folder is not None:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", _CACHE_MIN_COMPILE_S)
    return folder


def _set_host_devices(jax, count: int, *, explicit: bool) -> int:
    """Ask JAX for ``count`` CPU devices; the count in force afterwards."""
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # JAX's backends have started: the count is fixed now
        have = len(jax.devices("cpu"))
        if have == count:
            return count
        message = (
            f"JAX has already started with {have} CPU device(s), so twin_uq.configure() "
            f"cannot make {count}: call tq.configure() before the first JAX computation "
            "(right after the imports), or start Python with "
            f"JAX_NUM_CPU_DEVICES={count}."
        )
        if explicit:
            raise ConfigurationError(message) from None
        warnings.warn(message + " Parallel chains run on fewer devices until then.", stacklevel=3)
        return have
    os.environ["JAX_NUM_CPU_DEVICES"] = str(count)
    return count


def configuration() -> Configuration | None:
    """What the last :func:`configure` call applied, or ``None`` if it was never called."""
    return _applied


def require_x64(what: str) -> None:
    """Warn once per caller if ``what`` (e.g. ``"tq.fit"``) runs in float32 by oversight.

    No warning when float64 is on, or when the program chose float32 with
    ``tq.configure(x64=False)``.
    """
    import jax

    if jax.config.jax_enable_x64 or _applied is not None:
        return
    warnings.warn(
        f"{what} runs in float32 because float64 is off: call tq.configure() once at the "
        "start of the program (twin_uq is validated in float64), or tq.configure(x64=False) "
        "to choose float32 and silence this warning.",
        PrecisionWarning,
        stacklevel=3,
    )
