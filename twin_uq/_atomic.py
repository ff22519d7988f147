"""Atomic replacement of a file or a directory (netCDF files, zarr stores).

A fit file is written under a temporary name next to its destination and then moved into
place in one step, so a reader (or a process killed mid-write) sees either the complete
previous file or the complete new one, never a mixture:

* a file (``.nc``) replaces the destination with ``os.replace`` (atomic on POSIX and
  Windows when both lie on one file system, which a sibling temporary guarantees);
* a directory (``.zarr``) cannot be renamed over a non-empty directory, so on Linux the two
  are swapped with ``renameat2(RENAME_EXCHANGE)`` and on macOS with
  ``renamex_np(RENAME_SWAP)`` (one atomic step each), and the old copy is deleted
  afterwards. Where neither exists (Windows, some network file systems) the old directory
  is moved aside and the new one moved in: two renames, a window of microseconds in which
  the destination does not exist.

Before the move the new data are flushed to disk (``fsync``), and the folder after it, so
that a power cut after ``save`` returns leaves the new file, not an empty one.

Temporaries are folders named ``.<name>.tmp.<pid>.<host>.<random>`` next to the
destination. A writer killed mid-write (``SIGKILL``, power cut) cannot delete its own;
the next write to the same destination deletes those whose process no longer runs on
this host (see :func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "exchange", "remove_stale_temporaries"]


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _prefix(path: Path) -> str:
    return f".{path.name}.tmp."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete temporaries of ``path`` left by writers that were killed.

    Only temporaries of processes on this host that no longer run are removed (a writer
    still running keeps its own). On Windows nothing is removed: ``os.kill`` cannot probe a
    process there without ending it.

    Returns
    -------
    list of Path
        The folders removed.
    """
    if os.name != "posix" or not path.parent.is_dir():
        return []
    prefix, host = _prefix(path), _host_tag()
    removed = []
    for entry in path.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        parts = entry.name[len(prefix) :].split(".")
        if len(parts) < 3 or not parts[0].isdigit() or parts[1] != host:
            continue
        pid = int(parts[0])
        if pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _fsync(path: Path) -> None:
    """Flush a file, or every file and folder of a tree, to disk (best effort for folders)."""
    if path.is_dir():
        for root, _, files in os.walk(path):
            for f in files:
                _fsync(Path(root) / f)
            _fsync_dir(Path(root))
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; ``False`` where the system cannot.

    Linux ``renameat2(..., RENAME_EXCHANGE)`` (kernel 3.15+, glibc 2.28+, most local
    file systems) or macOS ``renamex_np(..., RENAME_SWAP)``.
    """
    libc = _libc()
    if libc is None:
        return False
    fa, fb = os.fsencode(a), os.fsencode(b)
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        fn = libc.renameat2
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        at_fdcwd, rename_exchange = -100, 2
        rc = fn(at_fdcwd, fa, at_fdcwd, fb, rename_exchange)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        fn = libc.renamex_np
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        rename_swap = 2
        rc = fn(fa, fb, rename_swap)
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # this file system cannot swap: fall back
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(temporary_path)`` and move it into place atomically.

    Parameters
    ----------
    path
        Destination: a file or a folder (zarr store); an existing one is replaced.
    write
        Writes the new content to the path it is given (same name as the destination,
        inside a temporary folder next to it).

    Returns
    -------
    Path
        The destination.

    Notes
    -----
    If ``write`` raises, the destination is untouched and the temporary is removed. If the
    process is killed, the destination is the old or the new content and the temporary is
    removed by the next write to the same destination.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    prefix = f"{_prefix(path)}{os.getpid()}.{_host_tag()}."
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    try:
        tmp = folder / path.name
        write(tmp)
        _fsync(tmp)
        if tmp.is_dir() and (path.exists() or path.is_symlink()):
            if not exchange(tmp, path):
                os.replace(path, folder / "old")
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
