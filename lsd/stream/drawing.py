"""The frame shown, drawn from the model's output by its upsampler, as one function of
tensors: eager torch runs it as it is, and the openvino backend as a second graph beside
the frame's (at 256 px on the short side it is hundreds of MFLOP of convolutions and a
dozen resizes, milliseconds that eager torch spends partly in dispatch).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models.upsampler import Upsampler


class Drawing(nn.Module):
    def __init__(self, upsampler: Upsampler):
        super().__init__()
        self.upsampler = upsampler

    def forward(self, image: torch.Tensor, last: torch.Tensor,
                frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (1, 3, h, w): the model's output; last: the coarse look shown before (the
        first frame's own coarse look, where there is none); frame (1, 3, H, W): the input
        at the output size. Returns the frame shown, (H, W, 3) uint8, and its coarse look:
        a running mean of the coarse looks (`look_memory`), in fp32."""
        up = self.upsampler
        dtype = up.gains.weight.dtype
        look = torch.lerp(up.coarse(image.float()), last, up.look_memory)
        out = up(look.to(dtype), frame.to(dtype)).float()
        return (out[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0), look
