"""Twin updates for many patients at once (e.g. nightly new data) on Dask workers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from twin_uq.distributed.cluster import gather_all, get_client, worker_task
from twin_uq.distributed.twostage import IncompleteResultError
from twin_uq.errors import InputError

__all__ = ["collect_updates", "update_many"]


def _update_task(post_path_or_obj: Any, pid: str, rows: pd.DataFrame, kwargs: dict) -> dict:
    """On a worker: update one patient's twin; returns its draws as numpy arrays.

    An update whose sampler did not sample (:class:`~twin_uq.twin.update.UpdateFailedError`)
    returns ``{"failed": message}`` instead of raising: resubmitting the task would fail
    the same way (the same seed and data).
    """
    from twin_uq.twin.update import UpdateFailedError

    twin = post_path_or_obj.twin(pid)
    try:
        new = twin.update(rows, **kwargs)
    except UpdateFailedError as err:
        return {"failed": f"{type(err).__name__}: {err}"}
    rec = new.history[-1]
    return {
        "theta": np.asarray(new.theta),
        "method": rec.method,
        "r_hat": rec.r_hat,
        "ess_bulk": rec.ess_bulk,
        "divergences": rec.divergences,
        "seconds": rec.seconds,
    }


def update_many(
    post,
    new_rows: pd.DataFrame,
    *,
    cluster: Any = None,
    retries: int = 2,
    **update_kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Condition many patients' twins on their new rows, in parallel on Dask.

    Parameters
    ----------
    post
        The cohort fit (:class:`~twin_uq.CohortPosterior`); it is shipped to every worker
        once (``client.scatter``) and each task rebuilds one patient's twin from it.
    new_rows
        New rows in the cohort table format with an ``id`` column; every id must be a
        fitted patient.
    cluster
        ``None`` (local 2-process cluster), a scheduler address, a Client or a cluster.
    update_kwargs
        Passed to :meth:`PosteriorTwin.update` (``chains``, ``warmup``, ``draws``,
        ``method``, ``seed``...).

    Returns
    -------
    dict
        Patient id → ``{"theta": (draws, K) array, "method", "r_hat", "ess_bulk",
        "divergences", "seconds"}``, one entry per patient in ``new_rows``.

    Raises
    ------
    IncompleteResultError
        Naming every patient whose update failed after its retries, or whose sampler did
        not sample (:class:`~twin_uq.twin.update.UpdateFailedError`, not retried), with
        the reason (``.failures``).
    """
    cols = {c.lower(): c for c in new_rows.columns}
    if "id" not in cols:
        raise InputError("new_rows needs an 'id' column naming the patient of every row.")
    idcol = cols["id"]
    ids = [str(i) for i in pd.unique(new_rows[idcol])]
    unknown = [i for i in ids if i not in post.patient_ids]
    if unknown:
        from twin_uq.twin import UnknownPatientError

        raise UnknownPatientError(f"new_rows has patients not in the fit: {unknown[:5]}.")
    with get_client(cluster) as client:
        [shared] = client.scatter([post], broadcast=True)
        futures = {
            pid: client.submit(
                worker_task(_update_task),
                shared,
                pid,
                new_rows[new_rows[idcol].astype(str) == pid].reset_index(drop=True),
                dict(update_kwargs),
                retries=retries,
                pure=False,
            )
            for pid in ids
        }
        done, failed = gather_all(client, futures)
    return collect_updates(ids, done, failed)


def collect_updates(ids: list[str], done: dict[str, dict], failed: dict[str, str]) -> dict:
    """The updates of ``ids`` in order, or :class:`IncompleteResultError` naming the rest.

    ``done``: patient id -> a task's result (``{"failed": message}`` for an update whose
    sampler did not sample); ``failed``: patient id -> the error of a task that raised.
    """
    failed = failed | {p: r["failed"] for p, r in done.items() if "failed" in r}
    missing = [p for p in ids if p not in done or p in failed]
    if missing:
        raise IncompleteResultError(
            f"{len(missing)} of {len(ids)} twin updates failed: "
            + "; ".join(f"{p}: {failed.get(p, 'lost')}" for p in missing[:5]),
            missing,
            {p: failed.get(p, "lost") for p in missing},
        )
    return {p: done[p] for p in ids}
