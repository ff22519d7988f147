"""Getting a Dask client from whatever the caller has: nothing, an address, or a client."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from twin_uq._processes import unguarded_main_script
from twin_uq.errors import DependencyError

__all__ = ["gather_all", "get_client", "worker_task"]


def worker_task(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` wrapped to run on a Dask worker with this process's precision.

    Workers are other processes, often on other machines: the wrapper calls
    :func:`twin_uq.configure` there with the float64 setting in force here (read now, at
    submission), then ``fn``. Picklable whenever ``fn`` is.
    """
    import jax

    return functools.partial(_configured_call, fn, bool(jax.config.jax_enable_x64))


def _configured_call(fn: Callable[..., Any], x64: bool, *args: Any, **kwargs: Any) -> Any:
    from twin_uq._config import configure

    configure(x64=x64)
    return fn(*args, **kwargs)


@contextlib.contextmanager
def get_client(cluster: Any = None, *, n_workers: int = 2) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cluster``, closed afterwards only if created here.

    Parameters
    ----------
    cluster
        ``None``: a new ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``
        (one process per worker: JAX releases the GIL unevenly and a crashed solver must
        not take the caller down); threads instead, with a warning, when called from the
        top level of a script without an ``if __name__ == "__main__":`` guard (worker
        processes would re-run the script). A string: a scheduler address such as
        ``"tcp://10.0.0.5:8786"``. A ``Client``: used as is. A ``Cluster`` object
        (``LocalCluster``, ``SLURMCluster``...): a client is connected to it.
    n_workers
        Workers of the local cluster made when ``cluster`` is ``None``.

    Yields
    ------
    distributed.Client
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - dask is an optional extra
        raise DependencyError(
            "Distributed fitting needs dask[distributed]: pip install 'twin-uq[dask]'."
        ) from err
    if isinstance(cluster, Client):
        yield cluster
        return
    if cluster is None:
        processes = True
        if (script := unguarded_main_script()) is not None:
            # Dask's worker processes import the script again ("spawn") and would start
            # the cluster again; threads in this process work without the guard.
            warnings.warn(
                f"the local Dask cluster runs its {n_workers} workers as threads in this "
                f"process: {script} starts it outside 'if __name__ == \"__main__\":', and "
                "worker processes would run the script again. Put the script's code under "
                "that guard to get one process per worker.",
                RuntimeWarning,
                stacklevel=4,  # get_client, contextlib, fit_two_stage etc., its caller
            )
            processes = False
        local = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=":0"
        )
        client = Client(local)
        try:
            yield client
        finally:
            _close_quietly(client, local)
        return
    if isinstance(cluster, str) or hasattr(cluster, "scheduler_address"):
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
        return
    raise TypeError(
        f"cluster must be None, a scheduler address string, a distributed.Client or a "
        f"Dask cluster object; got {type(cluster).__name__}."
    )


def _close_quietly(client: Any, local: Any) -> None:
    """Close a cluster made here without Dask's shutdown chatter on stderr.

    While an in-process cluster stops, a client's or worker's batched stream can still be
    writing to a comm the other end has closed; Dask logs that at INFO, with a full
    ``CommClosedError`` traceback, sometimes after ``close()`` has returned (the event
    loop thread outlives the cluster). :class:`_InprocCommClosed` drops exactly those
    records; warnings and errors of the shutdown still show.
    """
    import logging

    from distributed.utils import silence_logging_cmgr

    batched = logging.getLogger("distributed.batched")
    if not any(isinstance(f, _InprocCommClosed) for f in batched.filters):
        batched.addFilter(_InprocCommClosed())
    with silence_logging_cmgr(logging.WARNING):
        client.close()
        local.close()


class _InprocCommClosed:
    """Logging filter: drop Dask's INFO "Batched Comm Closed" of in-process comms only."""

    def filter(self, record: Any) -> bool:
        closed = record.levelno <= 20 and str(record.msg).startswith("Batched Comm Closed")
        return not (closed and "inproc://" in record.getMessage())


def gather_all(client: Any, futures: dict[Any, Any]) -> tuple[dict[Any, Any], dict[Any, str]]:
    """Results of every future that succeeded and the error of every one that did not.

    Unlike ``client.gather(errors="raise")`` one failed task does not hide the others'
    results, so the caller can name *all* missing pieces at once.
    """
    from distributed import as_completed

    done: dict[Any, Any] = {}
    failed: dict[Any, str] = {}
    key_of = {f.key: k for k, f in futures.items()}
    for fut in as_completed(list(futures.values())):
        name = key_of[fut.key]
        if fut.status == "finished":
            done[name] = fut.result()
        else:
            exc = fut.exception()
            failed[name] = f"{type(exc).__name__}: {exc}"
    return done, failed
