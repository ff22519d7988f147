"""The command line's persistent cache of compiled XLA programs.

Each ``twin-uq`` command is a new process, and compiling a sampler costs 10-30 s (more
than many fits take to run). JAX keeps compiled programs on disk, keyed by the program and
the compiler's version and flags; with it a second ``twin-uq fit`` of the same model and
cohort shape skips XLA compilation (tracing and lowering, a few seconds, remain).

The rules are :func:`twin_uq.configure`'s (``compilation_cache``), which the entry point
calls: folder ``$TWIN_UQ_CACHE/jax`` (default ``~/.cache/twin_uq/jax``),
``TWIN_UQ_CACHE=off`` turns it off. This module keeps the switch for commands run without
the entry point (the demo under a test runner).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["enable_compilation_cache"]


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at the twin_uq folder; return it (or None)."""
    import jax

    from twin_uq._config import _set_compilation_cache

    return _set_compilation_cache(jax, None)
