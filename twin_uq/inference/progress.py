"""A progress bar for chains that run inside one compiled loop.

The sampler's loop is compiled (``lax.scan`` under ``pmap``/``vmap``), so Python never sees
an iteration go by. Every few iterations the loop calls back to the host
(``jax.debug.callback``: it passes values out and returns nothing, so it cannot change a
draw) with the chain's iteration and divergence counts, and the host moves a ``tqdm`` bar:
iterations of all chains, divergences so far (warm-up and sampling apart), elapsed and
remaining time.

The compiled loop cannot hold a Python object, and a bar passed in as a static argument
would recompile the sampler on every run. The loop therefore carries a ``token`` (an int32
array, a traced argument like the data) and the callback looks the bar up in the registry
of bars open in this process; a bar is registered for exactly the duration of its ``with``
block, so a report that arrives late (or from a run without a bar) is dropped.
"""

from __future__ import annotations

import itertools
import threading
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

__all__ = ["ChainProgress", "ProgressChannel", "report_progress"]

#: How many reports per chain over its whole run (warm-up and sampling).
REPORTS_PER_CHAIN = 100

_OPEN: dict[int, ChainProgress] = {}
_IDS = itertools.count(1)


class ProgressChannel(NamedTuple):
    """Where a chain reports to: the open bar's ``token`` and the chain's index in it."""

    token: Int[Array, ""]
    chain: Int[Array, ""]


def report_progress(
    channel: ProgressChannel, iteration: Int[Array, ""], divergences: Int[Array, " 2"], total: int
) -> None:
    """Inside the compiled loop: report ``iteration`` (1-based) every few iterations.

    ``divergences`` holds the divergent transitions so far, ``(warm-up, sampling)``;
    ``total`` is the chain's number of iterations (static). The predicate depends only on
    the loop counter, which is the same for every chain, so under ``vmap`` the ``cond``
    stays a branch and the callback (unrolled per chain by JAX) runs only when due.
    """
    every = max(1, total // REPORTS_PER_CHAIN)
    due = (iteration % every == 0) | (iteration == total)

    def send():
        jax.debug.callback(_receive, channel.token, channel.chain, iteration, divergences)

    jax.lax.cond(due, send, lambda: None)


def _receive(token, chain, iteration, divergences) -> None:
    bar = _OPEN.get(int(token))
    if bar is not None:
        bar.update(int(chain), int(iteration), np.asarray(divergences))


class ChainProgress:
    """The host side: a ``tqdm`` bar over ``chains x (warmup + draws)`` iterations.

    Use as a context manager around the compiled call; pass :attr:`token` into it. Reports
    may come from several devices' threads at once, hence the lock.
    """

    def __init__(self, chains: int, warmup: int, draws: int, description: str = "NUTS"):
        self.chains, self.warmup, self.draws = chains, warmup, draws
        self.description = description
        self.done = np.zeros(chains, dtype=np.int64)  # iterations finished per chain
        self.divergences = np.zeros((chains, 2), dtype=np.int64)  # (warm-up, sampling)
        self._lock = threading.Lock()
        self._bar = None
        self._started = False
        self._id = next(_IDS)
        self.token = jnp.asarray(self._id, dtype=jnp.int32)

    def __enter__(self) -> ChainProgress:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self.chains * (self.warmup + self.draws), desc=self.description, unit="it"
        )
        self._bar.set_postfix_str("compiling")
        _OPEN[self._id] = self
        return self

    def update(self, chain: int, iteration: int, divergences: np.ndarray) -> None:
        """Chain ``chain`` has finished ``iteration`` iterations with ``divergences`` so far."""
        with self._lock:
            # Reports of one chain can arrive out of order; counts only grow.
            self.done[chain] = max(self.done[chain], iteration)
            self.divergences[chain] = np.maximum(self.divergences[chain], divergences)
            if self._bar is None:
                return
            if not self._started:
                # The first report comes after compilation: restart the clock so that the
                # rate and time left are those of sampling, not of compiling.
                self._bar.reset()
                self._started = True
            self._bar.update(int(self.done.sum()) - self._bar.n)
            phase = "warm-up" if self.done.min() < self.warmup else "sampling"
            warm, sampling = self.divergences.sum(axis=0)
            self._bar.set_postfix_str(
                f"{phase}, divergences {sampling} (warm-up {warm})", refresh=False
            )

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            # Callbacks run asynchronously: wait for the last reports before closing the
            # bar. Not after an error or Ctrl-C: that would wait for the whole run.
            if exc_type is None:
                jax.effects_barrier()
        finally:
            _OPEN.pop(self._id, None)
            if self._bar is not None:
                self._bar.close()
        return False
