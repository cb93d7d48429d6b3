"""The output at the camera's resolution: sharp edges from the input frame, the look from
the model's 128-px output.

The model draws a 128x128 frame; stretched to the camera's size it is soft, because the
input it was drawn from was shrunk first. The upsampler uses only the model's coarse
colours (its output shrunk to `look_size`: the fine texture it draws differs from frame to
frame, which is flicker) and puts back the input's detail at that scale (the frame at the
output size minus the frame shrunk and stretched back), in brightness, through a gain per
colour and place: a look that keeps edges dark (pencil), bright (neon) or coloured
(thermal) gets them so. The gains are predicted on a 1/4-size grid from 4x4 patches of the
frame and the model's output there, and bilinearly upsampled (after HDRNet's bilateral
guided upsampling, Gharbi et al. 2017, with a plain grid). Detail has no mean over a
patch, so it sharpens without moving the look's colours; all convolutions run at 1/4
size. The last layer starts at zero: a fresh upsampler draws the stretched coarse look.
A Stream also keeps a running mean of the coarse look (`look_memory`). A look taught by
`lsd learn` may have an output head of its own (lsd.models.look_head), which draws the
detail in place of the gains.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import CELL, UpsamplerConfig
from .codec import Residual
from .look_head import LookHead

PATCH = 3 * CELL * CELL + 3  # a grid cell's channels: a patch of the frame + the look there
SMALLEST_SIDE = 16  # the shortest short side a stream shows


@functools.lru_cache(maxsize=64)
def resize_matrix(n: int, m: int) -> torch.Tensor:
    """(m, n): torch's antialiased bilinear resize of an axis of length n to m, as a matrix
    (a triangle filter, widened by the shrink factor so that it covers every source pixel;
    rows sum to 1). Computed in numpy, so that a traced export sees a constant."""
    scale = n / m
    support = max(scale, 1.0)
    a = np.zeros((m, n), np.float32)
    for i in range(m):
        center = scale * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n)
        w = np.clip(1 - np.abs((np.arange(lo, hi) - center + 0.5) / support), 0, None)
        a[i, lo:hi] = w / w.sum()
    return torch.from_numpy(a)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 3, h, w) -> (N, 3, *size), antialiased bilinear, as a Stream resizes frames:
    uint8 frames in uint8 (torch's own path, rounded, 14x faster than fp32 on a 1080p
    frame), the rest in fp32 (torch has no bf16 antialiased resize on the CPU)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if torch.onnx.is_in_onnx_export():  # ONNX has no antialiased resize: the same as matmuls
        (h, w), (hh, ww) = map(int, x.shape[-2:]), map(int, size)
        return (resize_matrix(h, hh) @ x.float() @ resize_matrix(w, ww).T).to(x.dtype)
    same = x.dtype == torch.uint8
    return F.interpolate(x if same else x.float(), size=size, mode="bilinear", antialias=True,
                         align_corners=False).to(x.dtype)


def resized_window(x: torch.Tensor, size: tuple[int, int], top: int, left: int,
                   side: int) -> torch.Tensor:
    """resize(x, size)[..., top:top + side, left:left + side] in fp32, computing only those
    pixels (a training crop of a frame-sized stretch)."""
    rows = resize_matrix(x.shape[-2], size[0])[top:top + side]
    cols = resize_matrix(x.shape[-1], size[1])[left:left + side]
    return rows @ x.float() @ cols.T


def output_size(frame_hw: tuple[int, int], short_side: int) -> tuple[int, int]:
    """The output's (height, width): the frame's aspect, `short_side` on its short side,
    both multiples of the grid's CELL."""
    scale = short_side / min(frame_hw)
    h, w = (max(CELL, round(side * scale / CELL) * CELL) for side in frame_hw)
    return h, w


def default_short_side(frame_hw: tuple[int, int], out_size: int) -> int:
    """An upsampler's output short side for a frame: its `out_size`, but not above the
    frame's own (a 160x120 camera is not blown up to 256; --out-size still can)."""
    return min(out_size, max(SMALLEST_SIDE, min(frame_hw) // CELL * CELL))


class Upsampler(nn.Module):
    def __init__(self, cfg: UpsamplerConfig):
        super().__init__()
        c = cfg.channels
        self.out_size, self.look_size = cfg.out_size, cfg.look_size
        self.look_memory = cfg.look_memory  # read by Stream: a running mean over frames
        self.inp = nn.Conv2d(PATCH, c, 1)
        self.blocks = nn.Sequential(*[Residual(c) for _ in range(cfg.blocks)])
        self.gains = nn.Conv2d(c, 3, 1)  # per grid cell, a gain per colour on the detail
        nn.init.zeros_(self.gains.weight)
        nn.init.zeros_(self.gains.bias)
        # one per look named in cfg.heads, in that order
        self.heads = nn.ModuleList(LookHead(PATCH, cfg.head_channels, cfg.head_blocks)
                                   for _ in cfg.heads)

    def shown_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The (height, width) a stream shows a frame of `frame_hw` at by default."""
        return output_size(frame_hw, default_short_side(frame_hw, self.out_size))

    def coarse(self, look: torch.Tensor) -> torch.Tensor:
        """The part of the model's output that is used: its coarse colours at look_size
        (the fine texture the model draws differs from frame to frame: flicker)."""
        return resize(look, (self.look_size,) * 2) if self.look_size else look

    def patches(self, look: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """What the convolutions see, per cell of the grid (CELL pixels on a side): the
        frame's patch there and the coarse look there, in [-1, 1]. look: coarse; frame (N, 3,
        H, W)."""
        hh, ww = frame.shape[-2:]
        grid = resize(look, (hh // CELL, ww // CELL)) * 2 - 1
        return torch.cat([F.pixel_unshuffle(frame * 2 - 1, CELL), grid], 1)

    def forward(self, look: torch.Tensor, frame: torch.Tensor,
                head: int | None = None) -> torch.Tensor:
        """look (N, 3, h, w): the model's output, drawn from the frame shrunk to (h, w);
        frame (N, 3, H, W): the input at the output size, H and W multiples of CELL; both in
        [0, 1]. `head`: the number of the output head that draws the detail instead of the
        gains (a taught look's). Returns (N, 3, H, W)."""
        hh, ww = frame.shape[-2:]
        look = self.coarse(look)
        base = resize(look, (hh, ww))
        patches = self.patches(look, frame)
        if head is not None:
            return base + self.heads[head](patches)
        detail = frame - resize(resize(frame, tuple(look.shape[-2:])), (hh, ww))
        detail = detail.mean(1, keepdim=True)  # brightness only: colour fringes are not a look
        g = F.interpolate(self.gains(F.silu(self.blocks(self.inp(patches)))), size=(hh, ww),
                          mode="bilinear", align_corners=False)
        return base + g * detail
