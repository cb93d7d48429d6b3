"""`lsd bench latency`: the streaming engine's whole step (resize, encode, denoising steps,
cache commit, decode, resize back), timed frame by frame after a warm-up, with memory at
start and end, the dtype and backend that ran it (and why), and the achieved FLOP rate
beside this machine's matmul rate in that dtype, both measured in this run."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ..config import SampleConfig, preset, with_overrides
from ..data import VAL_SEED_START, paired_stream
from ..machine import machine_name
from ..models import LSDModel
from ..models.cost import count_flops
from ..stream.backends import BACKENDS
from ..stream.engine import Stream
from ..stream.openvino_step import available
from ..stream.runner import default_checkpoint, rss_mb
from .timing import matmul_peak_gflops, time_ms

# how the shipped student samples (configs/distill-tiny.yaml), for an untrained preset
STUDENT_SAMPLING = SampleConfig(steps=3, shortcut=True, commit="last_step")  # an untrained preset's
DISTINCT_FRAMES = 64  # world frames rendered up front and cycled (rendering is not timed)


def held_out_frames(size: tuple[int, int]) -> list[np.ndarray]:
    """A few held-out world frames to time on, rendered up front so rendering is never timed."""
    return [s.input for s in paired_stream(VAL_SEED_START + 7, "ink_wash", size=size,
                                           frames=DISTINCT_FRAMES)]


def stepper(stream: Stream, pool: list[np.ndarray] | None = None):
    """A no-argument call that steps `stream` on the next of `pool` (default: held_out_frames)."""
    pool = pool or held_out_frames(stream.size)
    counter = itertools.count()
    return lambda: stream.step(pool[next(counter) % len(pool)])


def profile_ops(step, frames: int = 50, top: int = 12) -> list[dict]:
    """Where a frame's time goes: torch's profiler over `frames` steps, the ops with the most
    self time (ms per frame and share of the profiled total)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(frames):
            step()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    return [{"op": e.key, "ms_per_frame": round(e.self_cpu_time_total / 1000 / frames, 3),
             "share": round(e.self_cpu_time_total / total, 3), "calls_per_frame": e.count // frames}
            for e in ops[:top]]


def _stream(checkpoint: str | None, preset_name: str | None, steps: int | None, prompt: str,
            device: str, overrides: list[str] | None = None, **fast) -> tuple[Stream, str]:
    """The stream to time and its name; `fast`: Stream's dtype, backend and cuda_graph."""
    if preset_name:  # untrained: the time a frame takes does not depend on the weights
        model = LSDModel(with_overrides(preset(preset_name), overrides or []))
        return Stream(model, prompt, STUDENT_SAMPLING.but(steps=steps), device, **fast), " ".join(
            [f"preset:{preset_name}", *(overrides or [])])
    ckpt = checkpoint or default_checkpoint(device)
    return Stream.from_pretrained(ckpt, prompt, steps, device, **fast), str(ckpt)


def bench_latency(checkpoint: str | None = None, steps: int | None = None, frames: int = 500,
                  warmup: int = 30, prompt: str = "ink wash painting", backend: str | None = None,
                  compare: bool = False, device: str = "cpu", preset_name: str | None = None,
                  overrides: list[str] | None = None, profile: bool = False,
                  cuda_graph: bool | None = None, dtype: str | None = None,
                  out_size: int | None = None) -> dict:
    """backend: what runs the frames (lsd.stream.backends; None: its choice); a graph
    backend's build (compile) time is the first frame's, reported apart. compare: every
    backend this machine has, one after the other in this run, with each one's speedup over
    eager. dtype: the compute dtype (None: lsd.precision's choice). preset_name: an
    untrained model of that preset instead of a checkpoint (e.g. `base` on a GPU), changed
    by `overrides` ("frame_size=[512,512]"). profile: add the ops with the most time (eager
    only: a graph shows as a few fused kernels). cuda_graph: replay each frame as one CUDA
    graph (lsd.stream.cuda_graph; default: on for a CUDA device)."""
    if compare:
        on_cpu = torch.device(device).type == "cpu"
        names = [b for b in BACKENDS if b != "openvino" or (on_cpu and available())]
        runs = {b: bench_latency(checkpoint, steps, frames, warmup, prompt, backend=b,
                                 device=device, preset_name=preset_name, overrides=overrides,
                                 cuda_graph=cuda_graph, dtype=dtype, out_size=out_size)
                for b in names}
        ratio = lambda b, key: round(runs["eager"][key] / runs[b][key], 3)
        return {**runs, "speedup_p50": {b: ratio(b, "ms_p50") for b in names},
                "speedup_p95": {b: ratio(b, "ms_p95") for b in names}}
    stream, name = _stream(checkpoint, preset_name, steps, prompt, device, overrides,
                           dtype=dtype, backend=backend, cuda_graph=cuda_graph, out_size=out_size)
    # the camera's frames at the output size (the model's own without an upsampler)
    up = stream.model.upsampler
    side = stream.out_size or (up.out_size if up else None)
    pool = held_out_frames((side,) * 2 if side else stream.size)
    step = stepper(stream, pool)  # step() returns the frame on the CPU: every timing includes the sync
    first_frame_ms = float(time_ms(step, 1, 0)[0])
    for _ in range(warmup):
        step()
    rss_start = rss_mb()
    ms = time_ms(step, frames, 0)
    rss_end = rss_mb()
    # graphs (compiled, OpenVINO, CUDA) run no countable ops one by one: count an eager twin's
    counted = step
    if stream.backend.name != "eager" or stream.cuda_graph:
        counted = stepper(_stream(checkpoint, preset_name, steps, prompt, device, overrides,
                                  dtype=dtype, backend="eager", cuda_graph=False)[0], pool)
    flops = count_flops(counted)
    peak = matmul_peak_gflops(stream.precision.dtype, device=device)
    p50 = float(np.percentile(ms, 50))
    achieved = flops / p50 / 1e6
    pct = lambda q: round(float(np.percentile(ms, q)), 2)
    result = {
        "checkpoint": name, "steps": stream.steps, **stream.precision.to_dict(),
        **stream.backend.to_dict(), "device": str(device), "cuda_graph": stream.cuda_graph,
        "frames": frames, "warmup": warmup, "frame_size": list(stream.size),
        "out_size": list(pool[0].shape[:2]),
        "first_frame_ms": round(first_frame_ms, 1),
        "ms_p50": pct(50), "ms_p95": pct(95), "ms_p99": pct(99),
        "fps": round(1000 / float(np.mean(ms)), 1),
        "rss_mb_start": round(rss_start, 1), "rss_mb_end": round(rss_end, 1),
        "gflops_per_frame": round(flops / 1e9, 3), "achieved_gflops_per_s": round(achieved, 1),
        "matmul_peak_gflops_per_s": round(peak, 1),
        "share_of_matmul_peak": round(achieved / peak, 3),
        "includes": "resize, encode, all denoising steps, cache commit, decode, resize back",
        "threads": torch.get_num_threads(),
        "machine": machine_name(torch.get_num_threads(), device=device),
    }
    return result | ({"profile": profile_ops(step)} if profile else {})
