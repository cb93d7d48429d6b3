"""Timing for the benches: a call's milliseconds over many runs, and this machine's matmul
rate in a dtype, the yardstick for a model's achieved FLOP/s."""

from __future__ import annotations

import time

import numpy as np
import torch



def time_ms(fn, iters: int, warmup: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1000
    return out


def matmul_peak_gflops(dtype: torch.dtype, size: int | None = None, iters: int = 20,
                       device: str = "cpu", seconds: float = 2.0) -> float:
    """This machine's matmul rate in `dtype` right now, the yardstick for the model's FLOP/s
    in that dtype (on a GPU a larger matrix, synchronised after each product). At most
    about `seconds` of products: an emulated bf16 product takes seconds."""
    dev = torch.device(device)
    size = size or (8192 if dev.type == "cuda" else 1024)
    a = torch.randn(size, size, device=dev).to(dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def product():
        a @ a
        sync()

    first = time_ms(product, 1, 1)[0] / 1000
    iters = int(max(2, min(iters, seconds / max(first, 1e-6))))
    ms = np.median(time_ms(product, iters, 1))
    return 2 * size ** 3 / ms / 1e6


def _summary(ms: np.ndarray) -> dict:
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3)}
