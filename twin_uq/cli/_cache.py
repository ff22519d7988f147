"""The command line's persistent cache of compiled XLA programs.

Each ``twin-uq`` command is a new process, and compiling a sampler costs 15-30 s (more
than many fits take to run). JAX can keep compiled programs on disk, keyed by the program
and the compiler's version and flags; with it a second ``twin-uq fit`` of the same model
and cohort shape skips XLA compilation (tracing, a few seconds, remains).

This is set by the command-line program only (``twin-uq``'s entry point): a library must
not change a process-wide JAX setting behind its user's back. Library users enable it
themselves with ``jax.config.update("jax_compilation_cache_dir", folder)``.

Folder: ``$TWIN_UQ_CACHE/jax`` (default ``~/.cache/twin_uq/jax``); ``TWIN_UQ_CACHE=off``
turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["enable_compilation_cache"]


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at the twin_uq folder; return it (or None)."""
    setting = os.environ.get("TWIN_UQ_CACHE", str(Path.home() / ".cache" / "twin_uq"))
    if setting.strip().lower() in ("off", "0", "none", ""):
        return None
    folder = Path(setting) / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # read-only home: every command still runs, only compiles each time
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Programs that compile in under a second are not worth a disk round trip.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return folder
