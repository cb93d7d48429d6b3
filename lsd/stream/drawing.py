"""The frame shown, drawn from the model's output by its upsampler, as one function of
tensors: eager torch runs it as it is, and the openvino backend as a second graph beside
the frame's (at 256 px on the short side it is hundreds of MFLOP of convolutions and a
dozen resizes, milliseconds that eager torch spends partly in dispatch). The look memory
follows the input's motion (lsd.stream.look_motion). A taught look is drawn by its output
head (`head`) instead of the upsampler's gains; a prompt that reads as several looks is
drawn by each drawing in its share.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models.upsampler import Upsampler
from .look_motion import followed, grey


class Drawing(nn.Module):
    def __init__(self, upsampler: Upsampler, head: int | None = None):
        super().__init__()
        self.upsampler, self.head = upsampler, head

    def forward(self, image: torch.Tensor, last: torch.Tensor, frame: torch.Tensor,
                before: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """image (1, 3, h, w): the model's output; last: the coarse look shown before (the
        first frame's own coarse look, where there is none); frame (1, 3, H, W): the input
        at the output size; before: the last input's `grey` (the first frame's own, where
        there is none). Returns the frame shown, (H, W, 3) uint8; its coarse look, a running
        mean of the coarse looks moved along the input's motion (`look_memory` of it the
        last one's, less where the input does not match), in fp32; and its grey."""
        up = self.upsampler
        dtype = up.gains.weight.dtype
        now = grey(frame)
        last, keep = followed(last, before, now)
        coarse = up.coarse(image.float())
        look = coarse + (last - coarse) * (keep * up.look_memory)
        out = up(look.to(dtype), frame.to(dtype), self.head).float()
        return (out[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0), look, now
