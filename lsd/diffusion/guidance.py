"""Classifier-free guidance as a wrapper around a velocity function (k-diffusion's
CFGDenoiser): the guided velocity is pushed `weight` times as far from the unguided one.

The shipped teacher guides on its picks code only on its first, high-noise steps, where a
palette is chosen; later steps run one pass. Which calls are guided is counted, not read
from t, so a traced or captured graph has no data-dependent branch.
"""

from __future__ import annotations

import torch

from .samplers import Denoiser, time_grid


def guided(velocity: Denoiser, unguided: Denoiser, weight: float, calls: int) -> Denoiser:
    """`velocity`, guided away from `unguided` on its first `calls` calls."""
    made = 0

    def v(x: torch.Tensor, t: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        nonlocal made
        made += 1
        out = velocity(x, t, d)
        if made > calls:
            return out
        u = unguided(x, t, d)
        return u + weight * (out - u)
    return v


def guided_steps(steps: int, t_min: float) -> int:
    """How many of `steps` Euler steps from level 1 start at a level >= t_min."""
    return int((time_grid(steps)[:-1] >= t_min).sum())
