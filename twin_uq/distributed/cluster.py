"""Getting a Dask client from whatever the caller has: nothing, an address, or a client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["gather_all", "get_client"]


@contextlib.contextmanager
def get_client(cluster: Any = None, *, n_workers: int = 2) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cluster``, closed afterwards only if created here.

    Parameters
    ----------
    cluster
        ``None``: a new ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``
        (one process per worker: JAX releases the GIL unevenly and a crashed solver must
        not take the caller down). A string: a scheduler address such as
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
        raise ImportError(
            "Distributed fitting needs dask[distributed]: pip install 'twin-uq[dask]'."
        ) from err
    if isinstance(cluster, Client):
        yield cluster
        return
    if cluster is None:
        local = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(local)
        try:
            yield client
        finally:
            client.close()
            local.close()
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
