"""A per-stream choice code: what a memory style picks at random once per stream (pop_art's
four colours) made an input the model is told, instead of a pick it must make from noise
at frame 0 and then copy forward through its history.

Trained as a conditional VAE. In training a small posterior network reads the clip's
target latents (with its input latents) and pools them over frames and positions into a
Gaussian code; the code, sampled with the reparameterisation trick, is projected into the
prompt embedding's space and added to it, and a KL term (charged above a free budget of
nats) pulls the posterior toward N(0, I). Pooling over the whole clip lets through global facts (which colours, which
band order) but not where things are. A stream draws its code from N(0, I) once, from
its seed, and keeps it for every frame: the same code asks for the same choice every
frame, so nothing has to survive a chain of copies. Frame styles' targets follow from the
input alone, so for them the code has nothing to add. (Measured on pop_art: not learnt
well enough in 900 steps to help; README, "The shipped teacher".)
"""

from __future__ import annotations

import torch
import torch.nn as nn

LOGVAR_RANGE = (-8.0, 4.0)  # keeps exp(logvar) finite in bf16
START_LOGVAR = -2.0  # a new posterior is sharp (std 0.37): its code is mostly signal
POSTERIOR_WIDTH = 128


class ChoicePosterior(nn.Module):
    """q(code | target, input): per latent pixel an MLP on (target, input) channels, the
    mean over frames and pixels, then the code's mean and log-variance."""

    def __init__(self, latent_channels: int, dim: int):
        super().__init__()
        self.pixel = nn.Sequential(nn.Linear(2 * latent_channels, POSTERIOR_WIDTH), nn.SiLU(),
                                   nn.Linear(POSTERIOR_WIDTH, POSTERIOR_WIDTH))
        # normalised pooled features: the code varies between clips from the first step
        self.head = nn.Sequential(nn.LayerNorm(POSTERIOR_WIDTH, elementwise_affine=False),
                                  nn.Linear(POSTERIOR_WIDTH, 2 * dim))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.head[1].bias[self.head[1].out_features // 2:] = START_LOGVAR

    def forward(self, z0: torch.Tensor, z_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z0, z_in: (B, T, C, h, w) -> mean, log-variance (B, dim)."""
        x = torch.cat([z0, z_in], dim=2).movedim(2, -1).to(self.head[1].weight.dtype)
        pooled = self.pixel(x).flatten(1, -2).mean(1)
        mean, logvar = self.head(pooled).float().chunk(2, dim=-1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def sample(self, z0: torch.Tensor, z_in: torch.Tensor,
               eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A code per clip (mean + std * eps) and the mean KL to N(0, I) in nats."""
        mean, logvar = self(z0, z_in)
        code = mean + (0.5 * logvar).exp() * eps.to(mean)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
        return code, kl


def stream_code(seed: int, dim: int) -> torch.Tensor:
    """The code a stream keeps: a draw from the prior N(0, I), (1, dim), from its seed alone
    (its own generator, so it is not the stream's first sampling noise)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + 0xC0DE)
    return torch.randn(1, dim, generator=g)
