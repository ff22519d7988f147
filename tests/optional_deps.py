"""Optional dependencies in tests: skipped where missing, a failure where they must be present.

A developer without PyMC, Dask, playwright or chromium still gets a green default run: the
tests that need them are skipped, with the reason in pytest's ``-ra`` summary. CI installs
everything (``.ci/run`` syncs all extras and installs chromium) and sets
``TWIN_UQ_REQUIRE_OPTIONAL=1``; there a missing dependency is a test failure, so a broken
install can never turn into a silently smaller test suite.

Use these helpers instead of ``pytest.importorskip`` / ``pytest.skip`` for anything that
is missing from the environment. Never use them for twin_uq's own modules: those must
import, or the test fails.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

#: Environment variable that turns the skips below into failures (set to 1 in .ci/run).
REQUIRE_ENV = "TWIN_UQ_REQUIRE_OPTIONAL"


def optional_required() -> bool:
    """Whether ``TWIN_UQ_REQUIRE_OPTIONAL`` asks for every optional dependency."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


def missing(reason: str) -> NoReturn:
    """Skip the current test (or module) for ``reason``; fail instead under the switch."""
    if optional_required():
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 requires every optional dependency", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str) -> ModuleType:
    """Import and return ``module`` (an optional dependency), or :func:`missing`.

    Works at module level (``distributed = require("distributed")``) and inside tests or
    fixtures.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"optional dependency {module!r} cannot be imported ({exc})")


def require_executable(name: str, *fallbacks: str, hint: str = "") -> str:
    """Path of the executable ``name`` (on PATH, else the first existing fallback path)."""
    found = shutil.which(name) or next((p for p in fallbacks if os.path.exists(p)), None)
    if found is None:
        missing(f"executable {name!r} is not installed" + (f" ({hint})" if hint else ""))
    return found
