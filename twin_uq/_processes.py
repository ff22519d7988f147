"""Whether worker processes may be started from here: the ``__main__`` guard check.

PyMC's chain processes (``forkserver``) and a local Dask cluster's workers (``spawn``)
start by importing the user's script again. A script that calls :func:`twin_uq.fit` at its
top level, outside ``if __name__ == "__main__":``, would then call it again in every new
process, and Python stops that with a long multiprocessing traceback. ``fork`` would avoid
the re-import but is unsafe once JAX has started its threads. So callers ask
:func:`unguarded_main_script` first and, for such a script, keep the work in this process
(saying once, in one line, what to add to get the processes back).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

__all__ = ["unguarded_main_script"]


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either order)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(texts) == 1


def unguarded_main_script() -> Path | None:
    """The running script, if the current call comes from its top level outside the guard.

    Walks the call stack to the ``__main__`` module's own frame and checks whether the line
    it is executing lies inside a top-level ``if __name__ == "__main__":`` block.

    Returns
    -------
    Path or None
        The script's path when new processes would re-run the call; ``None`` when they
        would not (guarded script, interactive session, notebook, ``python -c``, or a call
        not made from the main module's top level).
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return None
    line = None
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__":
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return None
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None  # cannot tell: leave the caller's default in place
    for node in tree.body:
        guarded = isinstance(node, ast.If) and _is_main_guard(node.test)
        if guarded and node.lineno <= line <= (node.end_lineno or node.lineno):
            return None
    return Path(path)
