"""Fast checks of the cluster plumbing on a real LocalCluster (2 worker processes)."""

import os

import pytest
from optional_deps import require

distributed = require("distributed")

from twin_uq.distributed import IncompleteResultError, get_client, map_replicates  # noqa: E402
from twin_uq.distributed.assemble import check_complete  # noqa: E402


def _square_or_fail(x):
    if x == 3:
        raise ValueError("replicate 3 is bad")
    return x * x, os.getpid()


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def test_map_replicates_keeps_order_reports_failures_and_uses_both_workers(client):
    results, failed = map_replicates(_square_or_fail, list(range(8)), cluster=client, retries=1)
    assert [r[0] if r else None for r in results] == [0, 1, 4, None, 16, 25, 36, 49]
    assert list(failed) == [3] and "replicate 3 is bad" in failed[3]
    assert len({r[1] for r in results if r}) == 2  # work really ran in two processes


def test_get_client_accepts_address_and_client_and_rejects_other_things(client):
    with get_client(client) as c:
        assert c is client
    with get_client(client.scheduler.address) as c:
        assert len(c.scheduler_info()["workers"]) == 2
    assert client.status == "running"  # a passed-in client is not closed
    with pytest.raises(TypeError, match="scheduler address"), get_client(42):
        pass


def test_check_complete_names_missing_and_duplicated_patients():
    ids = ["A", "B", "C", "D"]
    batches = [[0, 1], [2, 3]]
    check_complete(ids, {0: {"ids": ["A", "B"]}, 1: {"ids": ["C", "D"]}}, {}, batches)
    with pytest.raises(IncompleteResultError, match="2 of 4 patients missing") as err:
        check_complete(ids, {0: {"ids": ["A", "B"]}}, {1: "KilledWorker: x"}, batches)
    assert err.value.missing == ["C", "D"] and err.value.failures["C"] == "KilledWorker: x"
    with pytest.raises(IncompleteResultError, match="more than once"):
        check_complete(ids, {0: {"ids": ["A", "B"]}, 1: {"ids": ["C", "D", "A"]}}, {}, batches)


def test_update_many_refuses_unknown_patients_and_rows_without_ids():
    from types import SimpleNamespace

    import pandas as pd

    from twin_uq.distributed import update_many

    post = SimpleNamespace(patient_ids=("P01", "P02"))
    rows = pd.DataFrame({"id": ["P01", "P99"], "time": [30.0, 30.0], "dv": [0.1, 0.2]})
    with pytest.raises(KeyError, match="P99"):
        update_many(post, rows, cluster="tcp://never-contacted:1")
    with pytest.raises(ValueError, match="'id' column"):
        update_many(post, rows.drop(columns="id"), cluster="tcp://never-contacted:1")


def test_local_cluster_from_a_script_without_main_guard_runs_in_threads(tmp_path):
    # Dask's worker processes ("spawn") would import the script again and start a cluster
    # of their own; get_client keeps the workers in this process and says so in one line.
    import subprocess
    import sys

    script = tmp_path / "no_guard.py"
    script.write_text(
        "import os, warnings\n"
        "from twin_uq.distributed import get_client\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    with get_client(n_workers=2) as client:\n"
        "        pids = set(client.run(os.getpid).values())\n"
        "print(pids == {os.getpid()}, len(caught))\n"
        "print(caught[0].message)\n"
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "True 1"
    assert f"{script} starts it outside 'if __name__ == \"__main__\":'" in lines[1]
    assert "Traceback" not in res.stderr
