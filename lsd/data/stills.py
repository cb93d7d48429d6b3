"""Random stills for training the codec: world frames at random times of random seeds,
each followed by its styled targets (the codec must carry both inputs and outputs)."""

from __future__ import annotations

import numpy as np

from ..io import to_uint8
from ..styles import get_style, style_names
from .paired import world_config
from .pictures import SEEDS_PER_SPLIT, seed_base
from .world import World

MAX_START = 3_000  # frames are drawn from the first this many of each stream


def still_frames(count: int, size: int | tuple[int, int] = 128, split: str = "train",
                 seed: int = 0, styles_per_frame: int = 2) -> np.ndarray:
    """(count, H, W, 3) uint8. Deterministic in (split, seed)."""
    base = seed_base(split)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    names = style_names()
    out: list[np.ndarray] = []
    while len(out) < count:
        world_seed = base + int(rng.integers(SEEDS_PER_SPLIT))
        frame = World(world_seed, world_config(size)).frame(int(rng.integers(MAX_START)))
        image = to_uint8(frame.image)
        out.append(image)
        for name in rng.choice(names, styles_per_frame, replace=False):
            render = get_style(str(name)).renderer(world_seed)
            out.append(to_uint8(render(image.astype(np.float32) / 255.0, frame)))
    return np.stack(out[:count])
