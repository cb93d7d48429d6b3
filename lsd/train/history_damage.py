"""Damage for history frames, in pixel space, the way a model's own outputs go wrong: soft
(blur), off-colour (gain/brightness/contrast drift), misplaced (a small warp), blocky
(compression-like 8x8 blocks) or broken (up to `garbage_max` of the pixels replaced by junk).

One more kind, *recolour* (channels swapped, strong gains), makes a history frame's colours
disagree with the stream's choice the way a drifted window does: with a choice input
(denoiser.choice) the model learns to paint the told picks rather than copy a drifted
history.

Each kind is applied to a frame with its own probability; a frame can get several. All
randomness comes from the generator passed in, so a resumed run damages the same way.
Frames are float (N, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class DamageConfig:
    blur: float = 0.3  # probability per history frame
    colour: float = 0.3
    warp: float = 0.3
    blocks: float = 0.2
    garbage: float = 0.2
    garbage_max: float = 0.3  # at most this share of a frame's pixels replaced
    recolour: float = 0.0  # probability per history frame that is not its clip's first


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def blur(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Gaussian blur with a per-frame sigma of 0.4-1.5 px (relative to 128 px frames)."""
    n, c, h, _ = x.shape
    sigma = _uniform(n, 0.4, 1.5, g) * h / 128
    radius = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, taps)
    y = x.reshape(1, n * c, *x.shape[2:])
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kernel[:, None, :, None], groups=n * c)
    return y.reshape(x.shape)


def colour(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Per-channel gain, a brightness offset and a contrast change around the mean."""
    n = x.shape[0]
    gain = _uniform(n * 3, 0.85, 1.15, g).view(n, 3, 1, 1)
    offset = _uniform(n, -0.08, 0.08, g).view(n, 1, 1, 1)
    contrast = _uniform(n, 0.8, 1.2, g).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x * gain - mean) * contrast + mean + offset).clamp(0, 1)


def warp(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A small affine misplacement: shift up to 2 px, rotation up to 2 degrees, scale 3%."""
    n, _, h, w = x.shape
    angle = _uniform(n, -2, 2, g) * math.pi / 180
    scale = _uniform(n, 0.97, 1.03, g)
    shift = _uniform(2 * n, -2, 2, g).view(n, 2) * 2 / torch.tensor([w, h], dtype=x.dtype)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def blocks(x: torch.Tensor, g: torch.Generator, size: int = 8) -> torch.Tensor:
    """Compression-like blocking: mix each 8x8 block towards its mean, and quantise."""
    n, _, h, w = x.shape
    hp, wp = -h % size, -w % size
    padded = F.pad(x, (0, wp, 0, hp), mode="replicate")
    means = F.interpolate(F.avg_pool2d(padded, size), scale_factor=size, mode="nearest")[..., :h, :w]
    amount = _uniform(n, 0.3, 0.9, g).view(n, 1, 1, 1)
    levels = torch.randint(8, 33, (n, 1, 1, 1), generator=g).to(x.dtype)
    mixed = x + amount * (means - x)
    return torch.round(mixed * levels) / levels


def garbage(x: torch.Tensor, g: torch.Generator, most: float = 0.3) -> torch.Tensor:
    """Replace a random share (up to `most`) of pixels with random colours."""
    n, _, h, w = x.shape
    share = _uniform(n, 0.0, most, g).view(n, 1, 1, 1)
    mask = torch.rand(n, 1, h, w, generator=g) < share
    junk = torch.rand(x.shape, generator=g).to(x.dtype)
    return torch.where(mask, junk, x)


def recolour(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A different colour scheme: the RGB channels in a random order, each with a gain of
    0.7-1.3."""
    n = x.shape[0]
    order = torch.argsort(torch.rand(n, 3, generator=g), dim=1)
    gain = _uniform(n * 3, 0.7, 1.3, g).view(n, 3, 1, 1).to(x.dtype)
    swapped = torch.gather(x, 1, order[:, :, None, None].expand_as(x))
    return (swapped * gain).clamp(0, 1)


def damage(x: torch.Tensor, cfg: DamageConfig, g: torch.Generator) -> torch.Tensor:
    """Apply each kind of damage to each frame with the kind's probability."""
    kinds = [(blur, cfg.blur), (colour, cfg.colour), (warp, cfg.warp), (blocks, cfg.blocks),
             (lambda y, gen: garbage(y, gen, cfg.garbage_max), cfg.garbage)]
    for fn, prob in kinds:
        chosen = torch.rand(x.shape[0], generator=g) < prob
        if prob > 0 and chosen.any():
            x = x.clone()
            x[chosen] = fn(x[chosen], g).to(x.dtype)
    if cfg.recolour > 0:  # drawn only when asked, so older configs replay exactly
        chosen = torch.rand(x.shape[0], generator=g) < cfg.recolour
        if chosen.any():
            x = x.clone()
            x[chosen] = recolour(x[chosen], g).to(x.dtype)
    return x
