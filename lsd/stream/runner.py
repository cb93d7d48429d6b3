"""`lsd run`: a source through a Stream into sinks, with a prompt schedule, real-time pacing
for live sources, a progress display and a summary (latency, drops, memory). Latency
percentiles are over the last LATENCY_WINDOW frames; `ms_p95_first_window` is the p95 of
the first window, so start and end of a long run can be compared."""

from __future__ import annotations

import os
import resource
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import torch
from tqdm import tqdm

from ..machine import machine_name
from ..precision import decide
from .engine import LATENCY_WINDOW, MAX_PROMPT, Stream
from .pacing import LatestFrame
from .sinks import open_sink
from .sources import open_source
from .stop import StopSignals

CHECKPOINTS = Path(__file__).resolve().parent.parent.parent / "checkpoints"
SHIPPED = ("lsd-tiny", "lsd-tiny-teacher")  # the distilled default first
# the student with half its denoiser's FLOPs pruned away (0.4 dB lower): the default where
# the CPU computes in fp32 (no native bf16): its matmuls run at about a quarter of a native
# bf16 CPU's rate (1024², 2 cores: 280 against 1,100 GFLOP/s on the AMX Xeon)
PRUNED = "lsd-tiny-pruned"


def default_checkpoint(device: str = "cpu") -> Path:
    """The shipped checkpoint (in the repository's checkpoints/ folder) for this machine:
    the pruned student on a CPU without native bf16, else the student."""
    names = SHIPPED
    if torch.device(device).type == "cpu" and decide(device).dtype == torch.float32:
        names = (PRUNED, *SHIPPED)
    for name in names:
        if (CHECKPOINTS / name / "model.safetensors").is_file():
            return CHECKPOINTS / name
    raise FileNotFoundError(f"no shipped checkpoint in {CHECKPOINTS} (looked for "
                            f"{', '.join(names)}); pass --checkpoint DIR")


def rss_mb() -> float:
    """Resident memory now (Linux /proc; elsewhere the peak, which is what getrusage has)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_schedule(text: str | None) -> list[tuple[int, str]]:
    """"0:ink wash;120:thermal camera" -> [(0, "ink wash"), (120, "thermal camera")]."""
    if not text:
        return []
    out = []
    for part in text.split(";"):
        if not part.strip():
            continue
        frame, sep, prompt = part.partition(":")
        if not sep or not frame.strip().isdigit() or not prompt.strip():
            raise ValueError(f"bad --prompt-schedule entry {part!r}: expected FRAME:PROMPT, "
                             f"e.g. '0:ink wash;120:thermal camera'")
        out.append((int(frame), prompt.strip()))
    return sorted(out)


def run_stream(source: str, prompt: str = "", schedule: str | None = None,
               frames: int | None = None, steps: int | None = None, out: str | None = None,
               side_by_side: bool = False, checkpoint: str | None = None, loop: bool = False,
               window: bool = False, virtual_camera: bool = False, blend_frames: int = 12,
               progress: bool = True, device: str = "cpu", backend: str | None = None,
               out_size: int | None = None) -> dict:
    if frames is not None and frames < 1:
        raise ValueError(f"--frames must be at least 1, not {frames}")
    plan = parse_schedule(schedule)
    for text in [prompt, *(p for _, p in plan)]:
        if len(text) > MAX_PROMPT:
            raise ValueError(f"prompt too long: {len(text)} characters (at most {MAX_PROMPT})")
    if not prompt and not plan and not source.startswith("synthetic"):
        raise ValueError("give --prompt or --prompt-schedule (only the synthetic world has a "
                         "prompt of its own: its style's)")
    first = plan[0][1] if plan and plan[0][0] == 0 else prompt
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(device)
    stream = Stream.from_pretrained(ckpt, first, steps, device, backend=backend, out_size=out_size)
    switches = dict(plan)
    rss_start = p95_start = warning = None
    t0 = time.perf_counter()
    # everything opened goes on the stack: an error closes the source and aborts the sinks,
    # so no camera stays open and no half-written file is left; a stop signal (Ctrl-C,
    # SIGTERM) ends the loop after its frame, and the sinks are closed with what was made
    with ExitStack() as stack:
        stop = stack.enter_context(StopSignals())
        src = stack.enter_context(open_source(source, loop=loop, max_frames=frames,
                                              size=stream.size[0]))
        if not prompt and not plan:
            first = src.prompt
            stream.set_prompt(first, blend_frames=0)
        if stream.warning:  # a prompt that names no known look is said, not hidden
            print(f"lsd: warning: {stream.warning}", file=sys.stderr)
        pacer = stack.enter_context(LatestFrame(src)) if src.live else None
        sinks = open_sink(out, side_by_side=side_by_side, fps=src.fps or 30, window=window,
                          virtual_camera=virtual_camera)
        for sink in sinks:
            stack.enter_context(sink)
        bar = stack.enter_context(tqdm(total=frames, desc="lsd run", unit="frame",
                                       disable=not progress))
        for i, frame in enumerate(pacer if pacer is not None else src):
            if i in switches and (i > 0 or switches[i] != first):
                stream.set_prompt(switches[i], blend_frames)
                if stream.warning:
                    print(f"lsd: warning: frame {i}: {stream.warning}", file=sys.stderr)
            output = stream.step(frame)
            if pacer is not None:
                stream.dropped = pacer.dropped
            info = {"prompt": stream.prompt, "ms": stream.last_ms}
            for sink in sinks:
                sink.write(output, frame, info)
            if rss_start is None:  # after the first frame: model, cache and buffers exist
                rss_start = rss_mb()
            if stream.frames == LATENCY_WINDOW:  # the first full latency window
                p95_start = stream.stats["ms_p95"]
            bar.update(1)
            bar.set_postfix(ms=f"{stream.last_ms:.1f}", dropped=stream.dropped)
            done = frames is not None and i + 1 >= frames
            if done or stop.signum or any(getattr(s, "quit_requested", False) for s in sinks):
                break
        else:  # the source ended by itself: did it end early?
            warning = getattr(src, "shortfall", lambda: None)()
            if warning:
                print(f"lsd: warning: {warning}", file=sys.stderr)
    seconds = time.perf_counter() - t0
    st = stream.stats
    return {"frames": st["frames"], "ms_p50": st["ms_p50"], "ms_p95": st["ms_p95"],
            "ms_p99": st["ms_p99"], "ms_p95_first_window": p95_start or st["ms_p95"],
            "latency_window": LATENCY_WINDOW, "fps": round(st["frames"] / seconds, 2) if seconds else None,
            "dropped": st["dropped"], "recoveries": st["recoveries"],
            "rss_mb_start": round(rss_start or rss_mb(), 1), "rss_mb_end": round(rss_mb(), 1),
            "prompt": stream.prompt, "understood_as": st["understood_as"],  # the last
            "prompt_warning": stream.warning, "steps": stream.steps, **stream.precision.to_dict(),
            **stream.backend.to_dict(), "checkpoint": str(ckpt),
            "source": source, "out": out, "stopped_by": stop.name, "warning": warning,
            "machine": machine_name()}
