"""Saving a fit is atomic: an interrupted or killed write never leaves a broken file.

``CohortPosterior.save`` writes next to the destination under a temporary name and moves
the result into place in one step (``os.replace`` for a netCDF file, an atomic directory
exchange for a zarr store). The fast tests check replacement, a write that fails half-way
and the clean-up of temporaries left by killed writers; the slow test kills a real writer
process (``SIGKILL``) at random moments of a save, many times, for both formats.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from twin_uq._atomic import _host_tag, exchange, remove_stale_temporaries
from twin_uq.posterior import CohortPosterior, load_posterior

FORMATS = (".nc", ".zarr")


def tagged(post: CohortPosterior, tag: str) -> CohortPosterior:
    """A copy of ``post`` whose file says ``tag`` (and, for "new", holds reversed draws)."""
    tree = post.idata.copy(deep=True)
    tree.attrs["durability"] = tag
    if tag == "new":
        ds = tree["posterior"].to_dataset()
        tree["posterior"] = xr.DataTree(ds.isel(draw=slice(None, None, -1)))
    return CohortPosterior(tree, post.model, post.cohort, post.prepared)


@pytest.fixture(scope="module")
def versions(oral_fit):
    return {tag: tagged(oral_fit, tag) for tag in ("old", "new")}


def which(path: Path, versions) -> str:
    """Load ``path`` and say which complete version it is (fails if it is neither)."""
    loaded = load_posterior(path)
    tag = loaded.idata.attrs["durability"]
    xr.testing.assert_equal(loaded.posterior, versions[tag].posterior)
    return tag


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("suffix", FORMATS)
def test_save_replaces_the_old_file_completely(versions, tmp_path, suffix):
    path = tmp_path / f"fit{suffix}"
    versions["old"].save(path)
    assert which(path, versions) == "old"
    versions["new"].save(path)
    assert which(path, versions) == "new"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporaries, no ".old"


class _FailingTree:
    """Stands in for the InferenceData: writes half a file, then fails (disk full)."""

    def _half(self, tmp, **kwargs):
        tmp = Path(tmp)
        if tmp.suffix == ".zarr":
            tmp.mkdir()
            (tmp / "zarr.json").write_text('{"zarr_format": 3, "node_ty')
        else:
            tmp.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
        raise OSError(28, "No space left on device")

    to_netcdf = to_zarr = _half


@pytest.mark.parametrize("suffix", FORMATS)
def test_failed_write_leaves_the_old_file_and_no_temporary(versions, tmp_path, suffix):
    path = tmp_path / f"fit{suffix}"
    versions["old"].save(path)
    broken = CohortPosterior(_FailingTree(), None, None, None)
    with pytest.raises(OSError, match="No space left"):
        broken.save(path)
    assert which(path, versions) == "old"
    assert temporaries(tmp_path) == []


def test_temporaries_of_killed_writers_are_removed_by_the_next_save(versions, tmp_path):
    path = tmp_path / "fit.nc"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    host = _host_tag()
    stale = tmp_path / f".fit.nc.tmp.{dead_pid}.{host}.x1"
    live = tmp_path / f".fit.nc.tmp.{os.getppid()}.{host}.x2"  # a writer still running
    other_host = tmp_path / f".fit.nc.tmp.{dead_pid}.00000000.x3"
    unrelated = tmp_path / ".other.nc.tmp.1.x"
    for d in (stale, live, other_host, unrelated):
        d.mkdir()
        (d / "fit.nc").write_bytes(b"partial")
    versions["new"].save(path)
    assert which(path, versions) == "new"
    assert not stale.exists()
    assert live.exists() and other_host.exists() and unrelated.exists()
    assert remove_stale_temporaries(path) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux-only")
def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "y").write_text("b")
    assert exchange(a, b)
    assert [p.name for p in a.iterdir()] == ["y"] and [p.name for p in b.iterdir()] == ["x"]


# ---- a real writer, killed at random moments -----------------------------------------------------

# The writer process loads two fits once, then for every target it is sent forks a child
# that saves the "new" fit over the target; the test kills that child with SIGKILL. Forking
# keeps each trial cheap (no new interpreter); the server never runs JAX or zarr before
# forking, so the child starts clean.
_SERVER = r"""
import os, sys
import xarray as xr
from twin_uq.posterior import CohortPosterior

new = CohortPosterior(xr.open_datatree(sys.argv[1], engine="h5netcdf").load(), None, None, None)
if sys.argv[2].endswith(".nc"):  # warm up (lazy imports) so that children only write
    new.save(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    target = line.strip()
    pid = os.fork()
    if pid == 0:
        try:
            new.save(target)
        finally:
            os._exit(0)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("done", status, flush=True)
"""

TRIALS = 12


@pytest.mark.slow
@pytest.mark.parametrize("suffix", FORMATS)
def test_killed_writer_leaves_old_or_new_file(versions, tmp_path, suffix):
    rng = random.Random(20260 + len(suffix))
    source = versions["new"].save(tmp_path / "source.nc")
    folder = tmp_path / "out"
    path = folder / f"fit{suffix}"
    versions["old"].save(path)
    scratch = tmp_path / "scratch" / f"warm-up{suffix}"
    server = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", _SERVER, str(source), str(scratch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with server:
        assert server.stdout.readline().strip() == "ready"

        def one_save(delay: float | None) -> tuple[float, bool]:
            server.stdin.write(f"{path}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            t0 = time.monotonic()
            if delay is not None:
                time.sleep(delay)
                with contextlib.suppress(ProcessLookupError):  # it had finished
                    os.kill(pid, signal.SIGKILL)
            status = int(server.stdout.readline().split()[1])
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            return time.monotonic() - t0, killed

        duration, killed = one_save(None)  # how long one save takes here and now
        assert not killed and which(path, versions) == "new"
        outcomes = []
        for _ in range(TRIALS):
            versions["old"].save(path)  # a successful save: removes the killed writer's temporary
            assert temporaries(folder) == []
            _, killed = one_save(rng.uniform(0.0, 1.2 * duration))
            mid_write = bool(temporaries(folder))
            outcomes.append((which(path, versions), killed, mid_write))
        versions["old"].save(path)
        assert temporaries(folder) == []
        assert sorted(p.name for p in folder.iterdir()) == [path.name]
        server.stdin.close()
        server.wait(timeout=60)
    print(f"\n{suffix}: one save {duration:.2f} s; (file, killed, temporary left): {outcomes}")
    # The test must really have killed writers mid-write (else it proves nothing).
    assert sum(k and m for _, k, m in outcomes) >= TRIALS // 4


@pytest.mark.slow
def test_interrupted_fit_writes_nothing(versions, oral_sim, tmp_path):
    """``twin-uq fit --out`` stopped mid-sampling (Ctrl-C, then SIGKILL) leaves --out as it was.

    NUTS runs as one compiled loop and cannot checkpoint; the promise is only that an
    interrupted fit writes nothing (docs/guarantees.md).
    """
    data = tmp_path / "cohort.csv"
    oral_sim.table.to_csv(data, index=False)
    folder = tmp_path / "out"
    out = folder / "fit.nc"
    versions["old"].save(out)
    before = out.read_bytes()
    cli = Path(sys.executable).parent / "twin-uq"
    args = [str(cli), "fit", str(data), "-m", "one_compartment_oral", "-o", str(out),
            "--warmup", "5000", "--draws", "5000"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(45)  # reading, compiling, sampling: minutes for 10,000 iterations
    assert proc.poll() is None, "the fit ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a compiled loop may not see Ctrl-C: kill it
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode != 0
    assert out.read_bytes() == before
    assert temporaries(folder) == []
