"""What a style is: a name, prompt phrasings, and a renderer of target frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np


class Renderer(Protocol):
    """Renders the target for one frame of one stream, in order. `frame` is float32
    (H, W, 3) in [0, 1]; `scene` is the synthetic world's per-frame facts (a WorldFrame)
    where a style needs them, else None."""

    def __call__(self, frame: np.ndarray, scene: Any = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Style:
    name: str
    kind: str  # "frame": target depends on the current frame only; "memory": on the past too
    prompts: tuple[str, ...]  # first one is the canonical prompt
    description: str
    make: Callable[[int], Renderer]  # stream seed -> a fresh renderer with its own state
    consistency: str | None = None  # the metric that tells whether a memory is kept
    needs_scene: bool = False  # True: the renderer needs the world's geometry (WorldFrame)
    # what the shipped model fails to learn, said where the style is offered (None: learnt);
    # such a style is still trained on, but not offered where a user picks a look
    not_learnt: str | None = None

    def renderer(self, seed: int = 0) -> Renderer:
        return self.make(seed)

    @property
    def path_free(self) -> bool:
        """The target of frame t depends on the stream's seed and frame t alone, not on the
        frames before it (a frame style, or a palette drawn once per stream), so frames of
        a stream can be skipped without changing the targets of the rest."""
        return self.kind == "frame" or self.consistency == "palette"

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "prompts": list(self.prompts),
                "description": self.description, "consistency": self.consistency,
                "needs_scene": self.needs_scene, "not_learnt": self.not_learnt}


def frame_style(name: str, prompts: tuple[str, ...], description: str):
    """Decorator: turn a pure function frame -> target into a frame Style."""

    def wrap(fn: Callable[[np.ndarray], np.ndarray]) -> Style:
        def make(seed: int) -> Renderer:
            return lambda frame, scene=None: fn(frame)

        return Style(name, "frame", prompts, description, make)

    return wrap
