"""The flow-matching convention, in one place; everything else calls these.

    x_t = (1 - t) * x0 + t * noise      t in [0, 1], t = 1 is pure noise
    v   = noise - x0                    what the network predicts (for a shortcut step of
                                        size d: the average velocity over that step)
    x_{t-d} = x_t - d * v               one Euler step towards the data

t may carry one level per sample (B,) or per frame (B, T) (Diffusion Forcing); it is
broadcast over the remaining dimensions of x.
"""

from __future__ import annotations

import torch


def expand_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Append singleton dims so a per-sample/per-frame t broadcasts against x."""
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim)).to(x.dtype)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = expand_like(t, x0)
    return (1 - t) * x0 + t * noise


def velocity(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The training target: the constant velocity of the straight path from x0 to noise."""
    return noise - x0


def euler_step(x_t: torch.Tensor, v: torch.Tensor, d: torch.Tensor | float) -> torch.Tensor:
    d = expand_like(d, x_t) if isinstance(d, torch.Tensor) else d
    return x_t - d * v


def predict_x0(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Jump straight to t = 0 along the predicted velocity."""
    return x_t - expand_like(t, x_t) * v


def sample_t_logit_normal(shape, mean: float = 0.0, std: float = 1.0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Training noise levels: sigmoid of a normal, which puts most samples at mid t where
    the velocity is hardest to predict (as in SD3 / rectified flow training)."""
    return torch.sigmoid(torch.randn(shape, generator=generator) * std + mean)
