"""The causal denoiser: a DiT with adaLN-Zero blocks over a window of frames.

Every frame is a grid of tokens made from its noisy latent concatenated (on channels) with
the encoded *input* frame, and has its own conditioning: noise level t, step size d and the
prompt embedding, summed into one vector that modulates every block (adaLN-Zero). Tokens of
frame i attend to the tokens of frames i-k..i and nothing later. Which frame a key comes from
is told by a learned per-layer, per-head logit bias indexed by the frame's age (0 = itself,
1 = the frame before, ..., k), so the model sees relative time only and runs forever.
With `choice`, the stream's picks (styles/picks.py) are told to every frame instead, as a code added to
the prompt embedding: the choice is an input rather than a memory.

One module, three ways to run it:
- a clip (B, T, ...) in parallel, each frame with its own t (Diffusion Forcing training);
- a clip with a separate `history`: every frame i is generated from its noisy latent while
  its window's earlier frames come from the history latents (clean or lightly noised), as
  in streaming, for all frames in one pass (distillation targets need exactly this);
- one frame at a time against a `HistoryCache` (streaming); `write=True` stores the
  frame's keys and values in the cache as they are computed. Frame by frame with the cache
  gives what the clip pass gives (tests check both equivalences).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DenoiserConfig
from ..styles.picks import CODE_SIZE
from .history_cache import HistoryCache
from .fused_norm import norm_modulate
from .layers import MLP, Attention, LevelEmbedder, frame_attention, sincos_2d


class DenoiserBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, mlp_hidden)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, attend) -> torch.Tensor:
        """x (B, F, N, dim) tokens of F frames, c (B, F, dim) their conditioning;
        attend(q, k, v) maps (B, heads, F, N, head_dim) queries/keys/values to outputs."""
        b, f, n, dim = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)[:, :, None].chunk(6, dim=-1)
        h = norm_modulate(self.norm1, x, shift1, scale1).reshape(b, f * n, dim)
        q, k, v = (t.unflatten(2, (f, n)) for t in self.attn.split(h))
        o = attend(q, k, v).flatten(2, 3)
        x = x + gate1 * self.attn.project(o).view(b, f, n, dim)
        return x + gate2 * self.mlp(norm_modulate(self.norm2, x, shift2, scale2))


class CausalDenoiser(nn.Module):
    def __init__(self, cfg: DenoiserConfig, latent_channels: int, latent_size: tuple[int, int],
                 prompt_dim: int):
        super().__init__()
        self.cfg = cfg
        self.channels = latent_channels
        self.grid = (latent_size[0] // cfg.patch, latent_size[1] // cfg.patch)
        self.tokens = self.grid[0] * self.grid[1]
        patch_dim = latent_channels * cfg.patch ** 2
        self.embed = nn.Linear(2 * patch_dim, cfg.dim)  # noisy latent + input-frame latent
        self.register_buffer("pos", sincos_2d(*self.grid, cfg.dim), persistent=False)
        self.t_embed = LevelEmbedder(cfg.dim)
        self.d_embed = LevelEmbedder(cfg.dim)
        self.prompt_proj = nn.Linear(prompt_dim, cfg.dim)
        if cfg.choice:  # the picks' code moves the prompt embedding: a vector per pick
            self.choice_embed = nn.Linear(CODE_SIZE, prompt_dim, bias=False)
        self.blocks = nn.ModuleList(DenoiserBlock(cfg.dim, cfg.heads_of(i), cfg.head_dim, cfg.mlp_of(i))
                                    for i in range(cfg.depth))
        # logit bias by the key frame's age (0 = itself .. k), per layer and head; a pruned
        # block with h heads uses its first h rows
        self.age_bias = nn.Parameter(torch.zeros(cfg.depth, cfg.heads, cfg.history + 1))
        self.final_norm = nn.LayerNorm(cfg.dim, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 2 * cfg.dim))
        self.out = nn.Linear(cfg.dim, patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's: Xavier linears, adaLN-Zero (every block starts as the identity), zero output."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for emb in (self.t_embed, self.d_embed):
            nn.init.normal_(emb.mlp[0].weight, std=0.02)
            nn.init.normal_(emb.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)
        for layer in (self.final_ada[-1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.cfg.choice:  # a new code changes nothing until trained (a grown model too)
            nn.init.zeros_(self.choice_embed.weight)

    def with_choice(self, prompt: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        """The prompt embedding (B, E) moved by a picks code (B or 1, CODE_SIZE); no code, or
        a model without a choice input, leaves it as it is."""
        if code is None or not self.cfg.choice:
            return prompt
        return prompt + self.choice_embed(code.to(self.choice_embed.weight)).to(prompt.dtype)

    def new_cache(self) -> HistoryCache:
        return HistoryCache(self.cfg.depth, self.cfg.history, self.tokens, self.cfg.heads)

    # -- tokens <-> latents ---------------------------------------------------------------

    def _patchify(self, z: torch.Tensor) -> torch.Tensor:
        """(B, F, C, h, w) -> (B, F, N, C * p * p)."""
        p = self.cfg.patch
        b, f, c, h, w = z.shape
        z = z.reshape(b, f, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return z.reshape(b, f, self.tokens, c * p * p)

    def _unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        p, (gh, gw) = self.cfg.patch, self.grid
        b, f = x.shape[:2]
        x = x.reshape(b, f, gh, gw, self.channels, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, f, self.channels, gh * p, gw * p)

    # -- attention windows ----------------------------------------------------------------

    def _age_bias(self, layer: int) -> torch.Tensor:
        """(heads, k + 1): this block's heads' bias by key age."""
        return self.age_bias[layer, :self.blocks[layer].attn.heads]

    def _clip_attention(self, layer: int, frames: int, history_rows: int | None = None):
        """Frame i attends frames i-k..i: keys are gathered into a band per frame (frames
        before the clip's start are padding, masked), so no T x T mask is ever built.
        With `history_rows`, the batch's first rows are a history stream (attending
        itself) and the rest are current frames whose earlier window slots come from it."""
        k = self.cfg.history
        ages = torch.arange(k, -1, -1, device=self.age_bias.device)  # window slot j has age k-j
        first = torch.arange(frames, device=ages.device)[:, None] - ages[None]  # (T, k+1)
        bias = self._age_bias(layer)[:, ages]  # (heads, k+1)
        bias = bias[:, None, :].expand(-1, frames, -1).masked_fill(first < 0, float("-inf"))
        bias = bias.repeat_interleave(self.tokens, dim=-1)  # (heads, T, (k+1) N)

        def gather(x):  # (B, H, T, N, hd) -> (B, H, T, (k+1) N, hd)
            if history_rows is None:
                return _band(x, k)
            past = _band(x[:history_rows], k)
            current = torch.cat([past[..., : k * self.tokens, :], x[history_rows:]], dim=3)
            return torch.cat([past, current], dim=0)

        def attend(q, keys, values):  # (B, H, T, N, hd)
            b, h, t, n, hd = q.shape
            kb, vb = gather(keys), gather(values)
            o = F.scaled_dot_product_attention(
                q.reshape(b, h * t, n, hd), kb.reshape(b, h * t, -1, hd),
                vb.reshape(b, h * t, -1, hd),
                attn_mask=bias.reshape(1, h * t, 1, -1).to(q.dtype))
            return o.view(b, h, t, n, hd)
        return attend

    def _cached_attention(self, layer: int, cache: HistoryCache, write: bool,
                          key_ages: torch.Tensor):
        """One frame against the cache: keys = cached history + the frame's own.
        key_ages: (slots * tokens,) age of every cached key, the same for every layer."""
        age_bias = self._age_bias(layer)
        bias = age_bias[:, key_ages].masked_fill(key_ages == 0, float("-inf"))
        bias = torch.cat([bias, age_bias[:, :1].expand(-1, self.tokens)], dim=1)

        def attend(q, keys, values):  # (B, H, 1, N, hd)
            q, keys, values = q[:, :, 0], keys[:, :, 0], values[:, :, 0]
            cached_k, cached_v = cache.layer(layer, keys)
            o = frame_attention(q, torch.cat([cached_k, keys], 2),
                                torch.cat([cached_v, values], 2), bias[None, :, None])
            if write:  # after attending: the slot written may hold the oldest frame, still needed above
                cache.write(layer, keys, values)
            return o[:, :, None]
        return attend

    # -- the pass ---------------------------------------------------------------------------

    def forward(self, z_t: torch.Tensor, z_in: torch.Tensor, t: torch.Tensor, d: torch.Tensor,
                prompt: torch.Tensor, cache: HistoryCache | None = None,
                write: bool = False,
                history: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Predicted velocity (B, F, C, h, w).

        z_t: noisy latents (B, F, C, h, w); z_in: encoded input frames, same shape;
        t, d: (B, F) noise level and step size per frame; prompt: (B, E) or (B, F, E).
        Without a cache the F frames run in parallel, frame-causally. With `history`
        (latents (B, F, C, h, w), levels (B, F), optionally the step sizes (B, F) they
        were written with, else 0) frame i's window holds history frames
        i-k..i-1 and its own noisy latent. With a cache F must be 1; the frame attends the
        cached history, and write=True commits its keys/values (then `cache.advance()`).
        """
        b, f = z_t.shape[:2]
        if z_in.shape != z_t.shape:
            raise ValueError(f"input latent {tuple(z_in.shape)} != noisy latent {tuple(z_t.shape)}")
        if cache is not None and (f != 1 or history is not None):
            raise ValueError(f"streaming with a cache runs one frame at a time, got {f}")
        if prompt.ndim == 2:
            prompt = prompt[:, None].expand(-1, f, -1)
        if history is not None:  # the history stream rides along as extra batch rows
            z_hist, t_hist, *d_hist = history
            d_hist = d_hist[0].to(d) if d_hist else torch.zeros_like(d)
            z_t, z_in = torch.cat([z_hist, z_t]), torch.cat([z_in, z_in])
            t, d = torch.cat([t_hist.to(t), t]), torch.cat([d_hist, d])
            prompt = torch.cat([prompt, prompt])
        dtype = self.embed.weight.dtype
        x = self.embed(self._patchify(torch.cat([z_t, z_in], dim=2)).to(dtype)) + self.pos.to(dtype)
        c = self.t_embed(t) + self.d_embed(d) + self.prompt_proj(prompt.to(dtype))
        rows = b if history is not None else None
        key_ages = cache.key_ages().to(self.age_bias.device) if cache is not None else None
        for i, block in enumerate(self.blocks):
            attend = (self._clip_attention(i, f, rows) if cache is None
                      else self._cached_attention(i, cache, write, key_ages))
            x = block(x, c, attend)
        shift, scale = self.final_ada(c)[:, :, None].chunk(2, dim=-1)
        v = self._unpatchify(self.out(norm_modulate(self.final_norm, x, shift, scale)))
        return v[b:] if history is not None else v


def _band(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, H, T, N, hd) -> (B, H, T, (k+1) N, hd): for frame i, frames i-k..i in that order
    (zeros before the first frame)."""
    if k == 0:
        return x
    t = x.shape[2]
    padded = torch.cat([x.new_zeros(*x.shape[:2], k, *x.shape[3:]), x], dim=2)
    return torch.cat([padded[:, :, j:j + t] for j in range(k + 1)], dim=3)
