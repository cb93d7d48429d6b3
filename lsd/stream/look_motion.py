"""The look memory follows the camera. Before the last coarse look is averaged with the new
frame's, it is moved along the input's motion, and forgotten where the moved input does not
match the new one (new content, occlusions, a cut), so that a long memory steadies the
look without ghosts.

Motion is Lucas-Kanade (Bouguet's pyramid form) on the input in grey at 16, 32 and 64 px,
two steps a level, all in tensor ops, so that it runs inside the drawing's graph. At the
shipped memory (0.9) the frame looks' warp error fell from 2.12 to 1.45 and PSNR rose from
22.42 to 22.57 dB (`lsd bench quality`); a memory that long without the motion ghosts
(docs/journal.md, issue 39, where its cost is measured too).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from ..models.upsampler import resize

FLOW_SIZES = (16, 32, 64)  # the pyramid, coarse to fine; the largest is what a stream keeps
STEPS = 2  # Lucas-Kanade steps per level
WINDOW = 5  # px: the window each level's least squares sums over
EPS = 1e-3  # added to the structure tensor's diagonal: flat regions do not move
FORGET = 0.05  # a grey difference (0-1) at which the memory keeps e^-1 of its weight


def grey(frame: torch.Tensor, size: int = FLOW_SIZES[-1]) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 1, size, size) in fp32: what motion is measured on."""
    return resize(frame.float(), (size, size)).mean(1, keepdim=True)


@functools.lru_cache(maxsize=16)
def _pixel_grid(h: int, w: int) -> torch.Tensor:
    """(1, h, w, 2): each pixel's centre in grid_sample's [-1, 1] coordinates (numpy, so
    that a traced export sees a constant)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return torch.from_numpy(np.stack([(xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1], -1))[None]


def moved(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image (N, C, h, w) sampled at p + flow(p); flow (N, 2, h, w) in pixels, x then y."""
    h, w = map(int, image.shape[-2:])  # ints, also where an export traces shapes
    step = flow.permute(0, 2, 3, 1) * torch.tensor([2 / w, 2 / h])
    return F.grid_sample(image, _pixel_grid(h, w) + step, mode="bilinear",
                         padding_mode="border", align_corners=False)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gx = F.pad(x, (1, 1, 0, 0), mode="replicate")
    gy = F.pad(x, (0, 0, 1, 1), mode="replicate")
    return (gx[..., 2:] - gx[..., :-2]) / 2, (gy[..., 2:, :] - gy[..., :-2, :]) / 2


def backward_flow(before: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
    """(N, 2, S, S): where each pixel of `now` was in `before` (before(p + flow) ~ now(p)),
    both (N, 1, S, S) grey at the pyramid's largest size S."""
    box = lambda x: F.avg_pool2d(x, WINDOW, 1, WINDOW // 2, count_include_pad=False)
    flow = None
    for size in FLOW_SIZES:
        a, b = resize(before, (size, size)), resize(now, (size, size))
        flow = (torch.zeros_like(a).repeat(1, 2, 1, 1) if flow is None else
                F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False)
                * (size / int(flow.shape[-1])))
        for _ in range(STEPS):
            seen = moved(a, flow)
            gx, gy = _gradients(seen)
            change = seen - b
            xx, xy, yy = box(gx * gx) + EPS, box(gx * gy), box(gy * gy) + EPS
            xt, yt = box(gx * change), box(gy * change)
            det = xx * yy - xy * xy  # > EPS^2: the diagonal's EPS keeps it off zero
            du, dv = (xy * yt - yy * xt) / det, (xy * xt - xx * yt) / det
            flow = flow + torch.cat([du, dv], 1).clamp(-2, 2)
    return flow


def followed(last: torch.Tensor, before: torch.Tensor,
             now: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last coarse look (N, 3, h, w) moved to where the camera's picture is now, and
    the share of it to keep per pixel (N, 1, h, w): 1 where the input moved the same way,
    towards 0 where it does not match. before, now: (N, 1, S, S) grey, from `grey`."""
    (h, w), (hh, ww) = map(int, last.shape[-2:]), map(int, now.shape[-2:])
    flow = resize(backward_flow(before, now), (h, w))
    flow = flow * torch.tensor([w / ww, h / hh]).view(1, 2, 1, 1)
    mismatch = (moved(resize(before, (h, w)), flow) - resize(now, (h, w))).abs()
    return moved(last.float(), flow), torch.exp(-mismatch / FORGET)
