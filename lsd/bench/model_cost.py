"""`lsd bench model`: what one denoising step of a model costs — parameters, FLOPs (torch's
FLOP counter) and measured milliseconds in the compute dtype (lsd.precision) — plus the
codec's encode and decode.

The step is timed the way streaming runs it: one frame against a full history cache. A
frame costs `steps` such steps + one commit pass (the finished frame's keys and values go
into the cache) + encode + decode; `lsd bench latency` (the streaming engine) measures
that end to end.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..config import preset, with_overrides
from ..machine import machine_name, torch_threads
from ..models import LSDModel, load
from ..models.cost import count_flops, streaming_step
from ..precision import Precision, decide

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


def bench_model(checkpoint: str | None = None, preset_name: str = "tiny", iters: int = 200,
                threads: int | None = None, dtype: str | None = None,
                overrides: list[str] | None = None) -> dict:
    """`overrides` ("denoiser.patch=1", ...) change an untrained preset, to compare designs.
    `threads`: torch's thread count for the measurement (None: as it is). `dtype`: auto,
    float32 or bfloat16 (None: lsd.precision decides)."""
    with torch_threads(threads):
        return _measure(checkpoint, preset_name, iters, decide("cpu", dtype), overrides)


@torch.no_grad()
def _measure(checkpoint: str | None, preset_name: str, iters: int, precision: Precision,
             overrides: list[str] | None) -> dict:
    if checkpoint and overrides:
        raise ValueError("--set changes a preset; it cannot be combined with --checkpoint")
    model = load(checkpoint) if checkpoint else LSDModel(with_overrides(preset(preset_name),
                                                                        overrides or []))
    dtype = precision.dtype
    model = model.to(dtype).eval()
    cfg = model.config
    step, commit, cache = streaming_step(model)
    frame = torch.rand(1, 3, *cfg.frame_size, generator=torch.Generator().manual_seed(0)).to(dtype)
    latent = model.codec.encode(frame)
    encode, decode = (lambda: model.codec.encode(frame)), (lambda: model.codec.decode(latent, frame))
    warmup = max(10, iters // 10)
    step_ms = time_ms(step, iters, warmup)
    commit_ms = time_ms(commit, iters, warmup)
    enc_ms, dec_ms = time_ms(encode, iters, warmup), time_ms(decode, iters, warmup)
    step_flops = count_flops(step)
    peak = matmul_peak_gflops(dtype)
    step_p50 = float(np.percentile(step_ms, 50))
    return {
        "model": checkpoint or preset_name, "overrides": overrides or [], "frame_size": list(cfg.frame_size),
        "tokens_per_frame": cfg.tokens_per_frame, "history": cfg.denoiser.history,
        **precision.to_dict(),
        "params": model.parameter_counts(),
        "gflops_per_step": round(step_flops / 1e9, 3),
        "gflops_encode": round(count_flops(encode) / 1e9, 3),
        "gflops_decode": round(count_flops(decode) / 1e9, 3),
        "step_ms": _summary(step_ms), "commit_ms": _summary(commit_ms),
        "encode_ms": _summary(enc_ms), "decode_ms": _summary(dec_ms),
        "step_gflops_per_s": round(step_flops / step_p50 / 1e6, 1),
        "matmul_peak_gflops_per_s": round(peak, 1),
        "step_share_of_matmul_peak": round(step_flops / step_p50 / 1e6 / peak, 3),
        "cache_bytes": cache.nbytes(),
        "iters": iters, "threads": torch.get_num_threads(),
        "machine": machine_name(threads=torch.get_num_threads()),
    }
