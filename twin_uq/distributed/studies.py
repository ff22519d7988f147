"""Simulation studies (SBC replicates and the like) fanned out on a Dask cluster."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from twin_uq.distributed.cluster import gather_all, get_client, worker_task

__all__ = ["map_replicates", "run_sbc_distributed"]


def map_replicates(
    fn: Callable[..., Any],
    args: Sequence[Any],
    *,
    cluster: Any = None,
    retries: int = 2,
) -> tuple[list[Any], dict[int, str]]:
    """Run ``fn(arg)`` for every argument on the cluster; results in input order.

    ``fn`` must be importable on the workers (a module-level function of an installed
    package); it runs there after :func:`twin_uq.configure` with this process's float64
    setting (see :func:`~twin_uq.distributed.cluster.worker_task`). Returns the results
    (``None`` for failed replicates) and a dict of failed replicate index → error
    message; failures never silently shrink the study.
    """
    with get_client(cluster) as client:
        futures = {
            i: client.submit(worker_task(fn), a, retries=retries, pure=False)
            for i, a in enumerate(args)
        }
        done, failed = gather_all(client, futures)
    return [done.get(i) for i in range(len(args))], failed


def _sbc_replicate(job: dict) -> pd.DataFrame:
    """One SBC replicate (on a worker): :func:`twin_uq.validate.run_sbc` with one replicate."""
    from twin_uq.validate.sbc import run_sbc

    res = run_sbc(
        job["model"], job["design"], n_patients=job["n_patients"], n_replicates=1,
        seed=job["seed"], n_rank_draws=job["n_rank_draws"], fit_kwargs=job["fit_kwargs"],
    )  # fmt: skip
    if res.failed:
        raise RuntimeError(res.failed[0][1])
    return res.ranks


def run_sbc_distributed(
    model,
    design,
    *,
    n_patients: int,
    n_replicates: int,
    seed: int = 0,
    n_rank_draws: int = 99,
    fit_kwargs: dict | None = None,
    cluster: Any = None,
):
    """Simulation-based calibration with one replicate per task on the cluster.

    Same arguments and result type as :func:`twin_uq.validate.run_sbc`; replicate ``r``
    is seeded by ``seed`` and ``r`` (the streams differ from the serial ``run_sbc``).
    """
    from twin_uq.model.load import load_model
    from twin_uq.validate.sbc import SBCResult

    model = load_model(model)
    seeds = np.random.default_rng(seed).integers(2**31, size=n_replicates)
    jobs = [
        {"model": model.name, "design": design, "n_patients": n_patients, "seed": int(s),
         "n_rank_draws": n_rank_draws, "fit_kwargs": dict(fit_kwargs or {})}
        for s in seeds
    ]  # fmt: skip
    results, failed = map_replicates(_sbc_replicate, jobs, cluster=cluster)
    ranks = pd.concat([r for r in results if r is not None], ignore_index=True)
    return SBCResult(ranks=ranks, n_rank_draws=n_rank_draws, failed=tuple(sorted(failed.items())))
