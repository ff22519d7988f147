"""Count how often JAX traces a compiled function, from the test side.

Production code keeps no trace counters. JAX itself records an event every time
``jax.jit`` traces a Python function at top level (``jax.monitoring``, event
``/jax/core/compile/jaxpr_trace_duration``, with the function's ``__name__``); the context
manager below listens for it. It also sees a retrace that comes from building a fresh
``jax.jit`` object on every call, which a check of one jitted object's cache would miss.

Typical use, with a positive control so the check cannot pass vacuously::

    predict_draws.clear_cache()          # the next call must trace
    with count_traces(predict_draws) as traces:
        twin.predict(times)
        assert traces() == 1             # the listener sees this function's traces
        twin.predict(times, seed=1)      # same shapes
        assert traces() == 1             # ... and no retrace happened
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import jax.monitoring

#: The event JAX records once per trace of a jitted function (jax/_src/dispatch.py).
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


@contextmanager
def count_traces(*functions: Callable) -> Iterator[Callable[..., int]]:
    """Yield ``traces(function=None)``: how many traces happened so far inside the block.

    ``functions`` are the jitted functions to watch; ``traces()`` counts all of them,
    ``traces(f)`` one. Traces are matched by ``__name__``, so a name shared with an
    unrelated jitted function would over-count (a failure, never a silent pass).
    """
    counts = {f.__name__: 0 for f in functions}

    def listener(event: str, duration: float, **kwargs) -> None:
        name = kwargs.get("fun_name")
        if event == TRACE_EVENT and name in counts:
            counts[name] += 1

    def traces(function: Callable | None = None) -> int:
        return sum(counts.values()) if function is None else counts[function.__name__]

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield traces
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
