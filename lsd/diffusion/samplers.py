"""Samplers: small pure functions over a denoiser callable (k-diffusion style).

A denoiser is `denoiser(x_t, t, d) -> v`: the noisy latent, its noise level t and the
step size d the caller will take (0 asks for the instantaneous flow-matching velocity;
a shortcut model uses d to jump further). t and d have shape (B,).
"""

from __future__ import annotations

from typing import Callable

import torch

from .flow import euler_step

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def time_grid(steps: int) -> torch.Tensor:
    """steps + 1 levels from 1 down to exactly 0 (the last step lands on 0, not on a
    rounding error next to it)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    grid[-1] = 0.0
    return grid


@torch.no_grad()
def sample_euler(denoiser: Denoiser, noise: torch.Tensor, steps: int,
                 shortcut: bool = False) -> torch.Tensor:
    """Integrate from 1 to 0 in `steps` equal Euler steps. With shortcut=True the
    denoiser is told the step size d (a shortcut model's average velocity over d);
    otherwise d = 0 (a plain flow-matching teacher)."""
    x = noise
    batch = x.shape[0]
    grid = time_grid(steps)
    for i in range(steps):
        t_now, d = float(grid[i]), float(grid[i] - grid[i + 1])
        t = torch.full((batch,), t_now, dtype=torch.float32, device=x.device)
        d_in = torch.full((batch,), d if shortcut else 0.0, dtype=torch.float32, device=x.device)
        x = euler_step(x, denoiser(x, t, d_in), d)
    return x


def sample_shortcut(denoiser: Denoiser, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """The distilled sampler: `steps` shortcut steps of size 1 / steps."""
    return sample_euler(denoiser, noise, steps, shortcut=True)
