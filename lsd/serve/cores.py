"""Give the model its own cores, and the rest of the server the others.

A session's model thread is busy nearly all the time (a frame's step is about the camera's
frame interval), while the event loop, aiortc's codec threads and RTP handling wake up many
times a frame for a moment. Left to the scheduler they land on the model's core and preempt
it, and a frame's step grows by a third (the browser test: 24 ms alone, 33-40 ms while
serving). `split_cores(n)` picks the last n cores for the model and the rest for everything
else; `pin_current_thread` moves the calling thread (threads it starts later inherit it).
Linux only: elsewhere, and on a single core, nothing is pinned.
"""

from __future__ import annotations

import os


def split_cores(model_threads: int) -> tuple[set[int], set[int]] | None:
    """(model cores, other cores) out of the cores this process may use, or None when there
    is nothing to split (one core, no affinity API, or the model asks for all of them)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if model_threads < 1 or len(cores) <= model_threads:
        return None
    return set(cores[-model_threads:]), set(cores[:-model_threads])


def pin_current_thread(cores: set[int] | None) -> None:
    if cores:
        os.sched_setaffinity(0, cores)  # 0: the calling thread, on Linux
