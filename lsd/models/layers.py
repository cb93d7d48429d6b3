"""Small building blocks shared by the denoiser and the text encoder."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: a LayerNorm'd activation, scaled and shifted by the conditioning."""
    return x * (1 + scale) + shift


def frame_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
    """Attention of one frame's queries against a few hundred keys (a streaming step), with
    `bias` added to the logits. On a CPU the fused flash kernel's per-call setup costs more
    than the math at this size (lsd-tiny compiled, one thread: 30.6 -> 24.4 ms a frame);
    compiled, inductor fuses the scale, bias and softmax between the two matmuls. A GPU
    keeps the fused kernel."""
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
    logits = (q @ k.transpose(-2, -1)).float() * q.shape[-1] ** -0.5 + bias
    return torch.softmax(logits, dim=-1).to(v.dtype) @ v


class MLP(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Attention(nn.Module):
    """Multi-head attention in two halves (`split` to q, k, v and `project` back), so a
    caller can choose which keys each query sees in between (the denoiser's frame window and
    history cache do)."""

    def __init__(self, dim: int, heads: int, head_dim: int | None = None):
        super().__init__()
        self.heads = heads
        inner = heads * (head_dim or dim // heads)  # < dim once heads are pruned
        self.qkv = nn.Linear(dim, 3 * inner)
        self.proj = nn.Linear(inner, dim)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, dim) -> q, k, v, each (B, heads, L, head_dim)."""
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def project(self, o: torch.Tensor) -> torch.Tensor:
        """(B, heads, L, head_dim) -> (B, L, dim)."""
        b, _, n, _ = o.shape
        return self.proj(o.transpose(1, 2).reshape(b, n, -1))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Plain attention; bias is added to the logits (-inf masks a key)."""
        q, k, v = self.split(x)
        return self.project(F.scaled_dot_product_attention(q, k, v, attn_mask=bias))


class LevelEmbedder(nn.Module):
    """Embeds a scalar in [0, 1] (a noise level t or a step size d): sinusoidal features,
    then an MLP (as DiT's TimestepEmbedder, with levels scaled to 0..1000)."""

    def __init__(self, dim: int, features: int = 256, max_period: float = 10000.0):
        super().__init__()
        half = features // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, level: torch.Tensor) -> torch.Tensor:
        args = level.float()[..., None] * 1000.0 * self.freqs
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


def sincos_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding, (height * width, dim), row-major."""
    if dim % 4:
        raise ValueError(f"position embedding dim {dim} must be a multiple of 4")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    parts = []
    for pos in (ys.flatten(), xs.flatten()):
        angles = pos[:, None] * omega[None]
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1).float()
