"""Prompt strings -> one embedding vector each.

`ByteTextEncoder` reads the prompt's UTF-8 bytes (any language, any unknown word: there is
no vocabulary to fall out of), runs a small transformer over them and mean-pools; it is
trained jointly with the denoiser, so different phrasings of one style land together.

A prompt encoder is any nn.Module with `out_dim` and `forward(prompts: list[str]) ->
(len(prompts), out_dim)`. To drop in a pretrained one later, add a class with that shape to
`TEXT_ENCODERS` under a new `text.kind` (loading its weights from a local path given in the
config) and keep the rest of the model unchanged.
"""

from __future__ import annotations

import unicodedata

import torch
import torch.nn as nn

from ..config import TextConfig
from .layers import MLP, Attention

PAD = 256  # byte values are 0..255; one extra id marks padding


def normalize_prompt(text: str) -> str:
    """Case, Unicode width forms and spacing carry no style: fold them away."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def tokenize(prompts: list[str], max_bytes: int) -> torch.Tensor:
    """(B, max_bytes) int64 byte ids, PAD after each prompt's end; an empty prompt is one
    space so it still has a token to pool."""
    ids = torch.full((len(prompts), max_bytes), PAD, dtype=torch.long)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompt must be a str, got {type(p).__name__}")
        data = normalize_prompt(p).encode("utf-8")[:max_bytes] or b" "
        ids[i, : len(data)] = torch.tensor(list(data), dtype=torch.long)
    return ids


class TextBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = MLP(dim, 4 * dim)

    def forward(self, x, bias):
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class ByteTextEncoder(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.max_bytes, self.out_dim = cfg.max_bytes, cfg.out_dim
        self.embed = nn.Embedding(PAD + 1, cfg.dim)
        self.pos = nn.Parameter(torch.randn(cfg.max_bytes, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(TextBlock(cfg.dim, cfg.heads) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.out_dim)

    def forward(self, prompts: list[str]) -> torch.Tensor:
        ids = tokenize(list(prompts), self.max_bytes).to(self.pos.device)
        keep = ids != PAD  # (B, L)
        x = self.embed(ids) + self.pos
        bias = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(~keep, float("-inf"))[:, None, None, :]  # padding is never a key
        for block in self.blocks:
            x = block(x, bias)
        x = self.norm(x)
        w = keep[..., None].to(x.dtype)
        pooled = (x * w).sum(1) / w.sum(1)
        return self.out(pooled)


TEXT_ENCODERS = {"bytes": ByteTextEncoder}


def build_text_encoder(cfg: TextConfig) -> nn.Module:
    if cfg.kind not in TEXT_ENCODERS:
        raise ValueError(f"unknown text.kind {cfg.kind!r}; known: {', '.join(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[cfg.kind](cfg)
