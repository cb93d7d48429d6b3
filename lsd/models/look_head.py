"""A taught look's own output head: it draws the look's detail where the upsampler's gains
would.

The upsampler draws every old look from the model's 32-px coarse colours and the input's
brightness detail through one gain per colour and place. A look taught by `lsd learn` whose
lines are thinner than a coarse pixel (an artist's outline filter, a pencil sketch) or whose
colours follow the input more closely than 32 px can (a colour map) is lost there. Its head
sees what the gains see (4x4 patches of the input frame at the shown size and the coarse look
there) and draws a 4x4 patch of colour per grid cell on the stretched coarse look: a small
residual CNN at a quarter of the resolution, dilated so that a cell sees its neighbours' edges
(a 13x13-cell field); at 24 channels it is cheaper than the gains it replaces (journal). Its
last layer starts at zero: a fresh head draws the stretched coarse look. A Stream draws with
it in proportion to how much the prompt reads as its look, so the old looks never pass
through it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import CELL
from .codec import Residual

DILATIONS = (1, 2, 4, 1)  # a block's 3x3 convolution spacing; the field grows to 13 cells


class LookHead(nn.Module):
    def __init__(self, patch_channels: int, channels: int, blocks: int):
        super().__init__()
        self.inp = nn.Conv2d(patch_channels, channels, 1)
        self.blocks = nn.Sequential(*[Residual(channels, DILATIONS[i % len(DILATIONS)])
                                      for i in range(blocks)])
        self.out = nn.Conv2d(channels, 3 * CELL * CELL, 1)  # a patch of colour per cell
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches (N, C, H/CELL, W/CELL): Upsampler.patches. Returns (N, 3, H, W), to add to
        the stretched coarse look."""
        return F.pixel_shuffle(self.out(F.silu(self.blocks(self.inp(patches)))), CELL)
