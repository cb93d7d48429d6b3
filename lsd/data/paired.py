"""Paired streams: the synthetic world's input video, a style's target video, and the
exact flow between frames, frame by frame, for as long as you like."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..io import to_uint8
from ..styles import Style, get_style
from .world import World, WorldConfig


@dataclass
class Sample:
    t: int  # frame index in the world (the stream started at `start`)
    input: np.ndarray  # (H, W, 3) uint8
    target: np.ndarray  # (H, W, 3) uint8
    flow: np.ndarray  # (H, W, 2) float32, forward flow from this frame to the next
    occluded: np.ndarray  # (H, W) bool, True where the flow has no clean match
    cut: bool  # a new scene starts at this frame
    screen_from_world: np.ndarray  # (3, 3) where the background's world points are on screen


def world_config(size: int | tuple[int, int] = 128, **overrides) -> WorldConfig:
    hw = (size, size) if isinstance(size, int) else tuple(size)
    return WorldConfig(size=hw, **overrides)


def paired_stream(seed: int, style: str | Style, size: int | tuple[int, int] = 128,
                  start: int = 0, frames: int | None = None,
                  config: WorldConfig | None = None) -> Iterator[Sample]:
    """Yield `frames` samples (endless if None) of world `seed` from frame `start` on.
    The target is rendered from the 8-bit input, so it is a function of what a model sees;
    a memory style's per-stream choices are drawn from `seed` and begin at `start`."""
    style = get_style(style) if isinstance(style, str) else style
    world = World(seed, config or world_config(size))
    render = style.renderer(seed)
    t = start
    while frames is None or t < start + frames:
        frame = world.frame(t)
        flow, occluded = world.flow(t, frame)
        image = to_uint8(frame.image)
        target = to_uint8(render(image.astype(np.float32) / 255.0, frame))
        yield Sample(t, image, target, flow, occluded, frame.cut and t > start,
                     frame.screen_from_world)
        t += 1


def clip(seed: int, style: str | Style, frames: int, size: int | tuple[int, int] = 128,
         start: int = 0, config: WorldConfig | None = None) -> dict[str, np.ndarray]:
    """A whole clip as stacked arrays: input/target (T, H, W, 3) uint8, flow (T, H, W, 2),
    occluded (T, H, W), cut (T,). flow[i] maps frame i to i+1 (the last one looks past
    the clip)."""
    samples = list(paired_stream(seed, style, size, start, frames, config))
    return {
        "input": np.stack([s.input for s in samples]),
        "target": np.stack([s.target for s in samples]),
        "flow": np.stack([s.flow for s in samples]),
        "occluded": np.stack([s.occluded for s in samples]),
        "cut": np.array([s.cut for s in samples]),
    }
