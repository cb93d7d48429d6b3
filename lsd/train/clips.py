"""An in-memory pool of paired training clips, refreshed as training goes.

Rendering a frame with its target costs ~10 ms, so clips are rendered once into a pool and
drawn many times; every `refresh_every` steps a share of the pool is replaced by new clips.
Which clip sits where is a pure function of (seed, split, rank, refresh round), so a resumed
run rebuilds exactly the pool it had, without replaying the rounds in between.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..data.paired import clip
from ..data.pictures import SEEDS_PER_SPLIT, seed_base
from ..data.stills import MAX_START
from ..models.upsampler import resize
from ..styles import get_style, style_names
from ..styles.picks import CODE_SIZE, picks_code



class ClipPool:
    def __init__(self, clips: int, frames: int, size: tuple[int, int], split: str = "train",
                 seed: int = 0, rank: int = 0, refresh_share: float = 0.1,
                 progress: bool = False, encode=None, style_weights: dict | None = None):
        """`encode` (optional) maps (N, 3, H, W) frames in [0, 1] to latents; with it the
        pool also keeps every clip's latents, so a frozen codec runs once per clip, not
        once per draw. `style_weights` (name -> weight, 1 for the rest) skews the styles
        drawn."""
        seed_base(split)  # checks the split
        self.frames, self.size, self.split = frames, tuple(size), split
        self.seed, self.rank, self.refresh_share = seed, rank, refresh_share
        self.styles = style_names()
        weights = np.array([float((style_weights or {}).get(n, 1.0)) for n in self.styles])
        if weights.sum() <= 0:
            raise ValueError("style_weights leave no style to draw")
        # None keeps the uniform draw (and so every earlier run's pool) exactly as it was
        self.style_p = weights / weights.sum() if style_weights else None
        self.keys = np.arange(clips)  # clip i of the pool is rendered from key keys[i]
        self.round = 0
        self.input = np.zeros((clips, frames, *self.size, 3), np.uint8)
        self.target = np.zeros_like(self.input)
        self.style = np.zeros(clips, np.int64)
        self.code = np.zeros((clips, CODE_SIZE), np.float32)  # the picks its world drew
        self.encode = encode
        self.latents: dict[str, torch.Tensor] = {}
        self._render(range(clips), progress)

    def __len__(self) -> int:
        return len(self.keys)

    def _spec(self, key: int) -> tuple[int, str, int]:
        """(world seed, style, start frame) of a clip key: the clip is the world's frames
        from `start` on."""
        split = 0 if self.split == "train" else 1
        rng = np.random.default_rng([self.seed, self.rank, split, key])
        seed = seed_base(self.split) + int(rng.integers(SEEDS_PER_SPLIT))
        if self.style_p is None:
            style = self.styles[int(rng.integers(len(self.styles)))]
        else:
            style = self.styles[int(rng.choice(len(self.styles), p=self.style_p))]
        return seed, style, int(rng.integers(MAX_START))

    def _render(self, slots, progress: bool = False) -> None:
        for i in tqdm(list(slots), desc=f"rendering {self.split} clips", disable=not progress,
                      leave=False):
            world_seed, style, start = self._spec(int(self.keys[i]))
            c = clip(world_seed, style, self.frames, self.size, start)
            self.input[i], self.target[i] = c["input"], c["target"]
            self.style[i] = self.styles.index(style)
            self.code[i] = picks_code(world_seed)
            if self.encode is not None:
                self._store_latents(i)

    @torch.no_grad()
    def _store_latents(self, i: int) -> None:
        for key, frames in (("z_in", self.input[i]), ("z0", self.target[i])):
            z = self.encode(to_frames(frames)).float().cpu()
            if key not in self.latents:
                self.latents[key] = torch.zeros(len(self), *z.shape)
            self.latents[key][i] = z

    def _replaced(self, round_index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.rank, 7, round_index])
        count = max(1, int(len(self) * self.refresh_share))
        return rng.choice(len(self), count, replace=False)

    def advance_to(self, round_index: int) -> None:
        """Bring the pool to refresh round `round_index`, rendering only the clips whose key
        changed (a resumed run jumps straight to its round)."""
        old = self.keys.copy()
        for r in range(self.round + 1, round_index + 1):
            slots = self._replaced(r)
            self.keys[slots] = len(self) * r + np.arange(len(slots)) + len(self)
        self.round = max(self.round, round_index)
        self._render(np.flatnonzero(self.keys != old))

    def sample(self, batch: int, g: torch.Generator) -> dict:
        """A batch of clips: input/target float (B, T, 3, H, W) in [0, 1], the style names,
        one prompt phrasing per clip drawn at random, the picks code its world drew (B,
        CODE_SIZE; styles/picks.py), and the latents z_in/z0 (B, T, C, h, w) when the pool
        keeps them."""
        idx = torch.randint(len(self), (batch,), generator=g).numpy()
        phrasing = torch.randint(1 << 30, (batch,), generator=g).tolist()
        names = [self.styles[s] for s in self.style[idx]]
        prompts = [get_style(n).prompts[p % len(get_style(n).prompts)] for n, p in zip(names, phrasing)]
        batch_ = {"input": to_frames(self.input[idx]), "target": to_frames(self.target[idx]),
                  "styles": names, "prompts": prompts, "code": torch.from_numpy(self.code[idx])}
        batch_.update({k: v[torch.from_numpy(idx)] for k, v in self.latents.items()})
        return batch_


def to_frames(x: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x)).movedim(-1, -3).float() / 255.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [0, 1] -> (..., H, W, 3) uint8 (rounded, as a viewer sees it)."""
    return (x.float().clamp(0, 1) * 255).round().byte().movedim(-3, -1).numpy()


def shrunk(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An HxWx3 uint8 frame resized to `size` in uint8, as a Stream shrinks a camera frame."""
    return resize(torch.from_numpy(frame).permute(2, 0, 1)[None], size)[0].permute(1, 2, 0).numpy()


def draw_windows(lengths: list[int], n: int, g: torch.Generator,
                 frames: int) -> list[tuple[int, int]]:
    """n random (clip, first frame) windows of `frames` frames of clips `lengths` frames
    long, clips drawn by their length."""
    starts = torch.tensor([length - frames + 1 for length in lengths], dtype=torch.float)
    clips = torch.multinomial(starts, n, replacement=True, generator=g).tolist()
    return [(c, int(torch.randint(lengths[c] - frames + 1, (), generator=g))) for c in clips]
