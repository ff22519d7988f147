"""A lost worker, made on purpose from the test side (no fault hook in production code).

The plugin runs inside every worker process of a test's cluster. While the marker file
exists, the first worker that starts a task whose key begins with ``key_prefix`` deletes
the marker and ends its own process at once, as a crashed or preempted machine would;
the nanny restarts it (with the marker gone) and Dask reschedules the lost task.
"""

from __future__ import annotations

import os

from distributed import WorkerPlugin


class KillOnceOnTask(WorkerPlugin):
    """Kill the worker that starts the first ``key_prefix*`` task while ``marker`` exists."""

    name = "twin-uq-tests-kill-once"

    def __init__(self, marker: str, key_prefix: str) -> None:
        self.marker = str(marker)
        self.key_prefix = key_prefix

    def transition(self, key, start: str, finish: str, **kwargs) -> None:
        if finish != "executing" or not str(key).startswith(self.key_prefix):
            return
        try:
            os.remove(self.marker)
        except FileNotFoundError:  # already used (or another worker got there first)
            return
        os._exit(17)
