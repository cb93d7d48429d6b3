"""How fast the synthetic world renders input + target + exact flow, on one core."""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from ..data import paired_stream
from ..machine import machine_name, torch_threads
from ..styles import style_names


def bench_data(frames: int = 1000, size: int = 128) -> dict:
    """Render `frames` frames spread over one stream per style; report per-frame time
    percentiles and the total (input, target and flow, all included). numpy's BLAS and
    torch run on one thread meanwhile, so the number means 'one core'."""
    with threadpool_limits(1), torch_threads(1):
        return _measure(frames, size)


def _measure(frames: int, size: int) -> dict:
    styles = style_names()
    seeds = len(styles)
    per_stream = -(-frames // seeds)
    next(paired_stream(0, styles[0], size=size, frames=1))  # warm-up: image cache, imports
    times = []
    start = time.perf_counter()
    for i, style in enumerate(styles):
        stream = paired_stream(10 + i, style, size=size, frames=min(per_stream, frames - len(times)))
        t0 = time.perf_counter()
        for _ in stream:
            t1 = time.perf_counter()
            times.append(t1 - t0)
            t0 = t1
    total = time.perf_counter() - start
    ms = np.array(times) * 1000
    return {
        "frames": len(times), "size": size, "total_s": round(total, 3),
        "fps": round(len(times) / total, 1),
        "ms_p50": round(float(np.percentile(ms, 50)), 2),
        "ms_p95": round(float(np.percentile(ms, 95)), 2),
        "machine": machine_name(threads=1),
    }
