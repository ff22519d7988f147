"""Beyond one machine: per-patient work fanned out on Dask distributed.

* :class:`TwoStage` (a fit method: ``tq.fit(..., method=TwoStage(cluster=...))``) and
  :func:`fit_two_stage` — population posterior from a subsample, then every patient's
  conditional posterior on workers, gathered into one :class:`~twin_uq.CohortPosterior`.
* :func:`update_many` — twin updates of many patients at once (e.g. nightly new data).
* :func:`map_replicates` / :func:`run_sbc_distributed` — simulation studies on a cluster.
* :func:`get_client` — a client from ``None`` (local cluster), an address, or a client.
"""

from twin_uq.distributed.assemble import IncompleteResultError as IncompleteResultError
from twin_uq.distributed.cluster import get_client as get_client
from twin_uq.distributed.studies import (
    map_replicates as map_replicates,
    run_sbc_distributed as run_sbc_distributed,
)
from twin_uq.distributed.twostage import TwoStage as TwoStage, fit_two_stage as fit_two_stage
from twin_uq.distributed.updates import update_many as update_many
