"""The garbage collector of a process that hosts a kernel: set for a server that keeps many objects alive.

CPython's cyclic collector looks at the young container objects every 700 allocations, and after enough of those
at every object the process holds: imported modules, the kernel, live agents' states. In a worker applying
events that was a third of the time (`bench/dispatch.py`'s committed round: 7.5 s of 19 in the collector;
medians of 1,172 events per CPU-second with Python's defaults and 1,798 with this, docs/benchmarks.md).
Garbage without reference cycles is freed at once by reference counting whatever is set here; only cycles wait
longer, and they are rare on the event path.

So once a hosted kernel is warm (`aos_core.runtime`), `tune_for_server`:
- freezes what exists then out of every later collection (`gc.freeze`): the modules and the kernel live as long
  as the process;
- collects young objects every `dispatch.gc_threshold` allocations (200,000), and everything every 400 of those.

Under load a young collection costs about what is in flight then (requests, events, their tasks), not what was
allocated since the last one: the rest was freed by reference counting already. So fewer, larger young collections
cost less in all: at 50,000, a host loaded by `bench/http.py`'s events round spent ~1.6 s of ~15 s in collections of
~60 ms each; at 200,000, ~0.2 s (docs/benchmarks.md).

An application that embeds the kernel in its own process decides for itself; it may call this too.
"""

from __future__ import annotations

import gc


def tune_for_server(young: int) -> None:
    """Freeze what exists now and collect young objects every `young` allocations; 0 leaves Python's defaults."""
    if young <= 0:
        return
    gc.freeze()
    gc.set_threshold(young, 20, 20)
