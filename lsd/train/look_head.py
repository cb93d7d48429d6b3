"""A taught look's output head (lsd.models.look_head), learnt in `lsd learn` after the
denoiser.

The head finishes what a stream would draw, not what a perfect model would: windows of the
user's clips are rolled out by the taught model as a Stream samples them
(lsd.train.decoder.roll_as_streamed), their first frames dropped while the history fills,
and decoded. The head then learns, on crops of those frames at the size a stream shows
them, what to draw on the stretched coarse look to reach the target. The crops start on the
head's 4-pixel grid, where a frame's cells lie. The head draws a 4x4 patch per cell, so it
could draw a picture differently as it moves across a cell: flicker as the camera moves
(before this, 5-17% over its targets' warp error per held-out clip, journal). Each step it
also draws its crops moved by a few pixels and learns to draw them moved (`MOVED_WEIGHT`).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import CELL
from ..metrics import psnr
from ..models import LSDModel
from ..models.upsampler import resized_window
from .clips import draw_windows, to_frames
from .clips import to_uint8 as tensor_to_uint8
from .decoder import look_as_streamed
from .trainer import _load_optimizer, _optimizer_tensors
from .upsampler import l1_mse

WINDOWS = 96  # rolled-out windows of the clips
WINDOW = 10  # frames each; the first WARM are not learnt from (the history is filling)
WARM = 4
CROP = 96  # pixels on a side (less where a frame is smaller)
CROPS = 8  # a step
MOVED_WEIGHT = 0.5  # the moved crops' disagreement, beside the fit (0.25: less steady, 1: blurs)
SAVE_EVERY = 2000  # steps between the progress a stopped lesson goes on from (and at Ctrl-C)


def head_windows(lengths: list[int], g: torch.Generator) -> list[tuple[int, int]]:
    """The (clip, first frame) windows the head learns from, in clips `lengths` frames long:
    drawn before the lesson reads the clips, so that it keeps their frames at the shown size
    as it reads them (lsd.train.learn.Footage)."""
    return sorted(draw_windows(lengths, WINDOWS, g, WINDOW))


def head_frames(wins: list[tuple[int, int]]) -> dict[int, set[int]]:
    """clip -> the frame numbers of `wins` the head learns from (after the WARM ones)."""
    frames: dict[int, set[int]] = {}
    for c, s in wins:
        frames.setdefault(c, set()).update(range(s + WARM, s + WINDOW))
    return frames


class HeadFootage:
    """Frames the taught model streamed, at the shown size: per window the inputs, the
    coarse looks the stream drew them from, and the targets."""

    @torch.no_grad()
    def __init__(self, model: LSDModel, footage, name: str, wins: list[tuple[int, int]],
                 progress: bool):
        """`footage`: lsd.train.learn.Footage, read with head_frames(wins) at the shown size;
        a window past a clip's last decoded frame (its header said more) is left out."""
        up, dtype = model.upsampler, next(model.parameters()).dtype
        wins = [(c, s) for c, s in wins if s + WINDOW - 1 in footage.shown[c]]
        z_in = torch.stack([footage.z_in[c][s:s + WINDOW] for c, s in wins])
        small = to_frames(np.stack([footage.inputs[c][s:s + WINDOW] for c, s in wins]))
        latents = look_as_streamed(model, z_in, name,
                                   "streaming the new look" if progress else None)[:, WARM:]
        small = small[:, WARM:].to(dtype)
        looks = up.coarse(model.codec.decode(latents.flatten(0, 1), small.flatten(0, 1)).float())
        self.looks = list(looks.unflatten(0, latents.shape[:2]))
        shown = [[footage.shown[c][f] for f in range(s + WARM, s + WINDOW)] for c, s in wins]
        self.inputs = [np.stack([x for x, _ in frames]) for frames in shown]
        self.targets = [np.stack([y for _, y in frames]) for frames in shown]
        self.frames = sum(len(x) for x in self.inputs)

    def crops(self, n: int, g: torch.Generator) -> tuple[tuple[torch.Tensor, ...], ...]:
        """n random crops, (grid, base, frame, target): the coarse look on the head's grid
        and stretched to the frame, the input and the target, all in [0, 1]; the same crops
        moved by `move` (dy, dx) pixels, 0-3 each way and not both 0, as (grid, base, frame);
        and `move`. A stream's grid stays put as the picture moves across it, so the moved
        crops' coarse look on the grid is their stretched one averaged over each cell."""
        grids, wides, inputs, targets = [], [], [], []  # wides and inputs: both crops' windows
        # each crop's windows are read a cell wider, CELL - 1 pixels the most a crop moves
        crop = min(CROP, *((min(x.shape[1:3]) - CELL) // CELL * CELL for x in self.inputs))
        dy, dx = divmod(int(torch.randint(1, CELL * CELL, (), generator=g)), CELL)
        for _ in range(n):
            w = int(torch.randint(len(self.inputs), (), generator=g))
            t = int(torch.randint(len(self.inputs[w]), (), generator=g))
            h, wd = self.inputs[w].shape[1:3]
            i, j = (CELL * int(torch.randint((side - crop - CELL) // CELL + 1, (), generator=g))
                    for side in (h, wd))
            look = self.looks[w][t]
            grids.append(resized_window(look, (h // CELL, wd // CELL), i // CELL, j // CELL,
                                        crop // CELL))
            wides.append(resized_window(look, (h, wd), i, j, crop + CELL))
            inputs.append(self.inputs[w][t, i:i + crop + CELL, j:j + crop + CELL])
            targets.append(self.targets[w][t, i:i + crop, j:j + crop])
        wide, frames = torch.stack(wides), to_frames(np.stack(inputs))
        at = lambda x, top, left: x[..., top:top + crop, left:left + crop]
        moved_base = at(wide, dy, dx)
        return ((torch.stack(grids), at(wide, 0, 0), at(frames, 0, 0), to_frames(np.stack(targets))),
                (F.avg_pool2d(moved_base, CELL), moved_base, at(frames, dy, dx)), (dy, dx))

    @torch.no_grad()
    def drawn_db(self, up, head: int, frames: int = 64) -> float:
        """Mean PSNR against the targets of `frames` of these frames drawn whole, with the
        output head number `head` (taught on them: footage it was not taught on scores lower)."""
        scores, dtype = [], up.gains.weight.dtype
        every = [(w, t) for w, x in enumerate(self.inputs) for t in range(len(x))]
        for w, t in every[::max(1, len(every) // frames)]:
            frame = to_frames(self.inputs[w][t:t + 1]).to(dtype)
            drawn = up(self.looks[w][t:t + 1].to(dtype), frame, head).float()
            scores.append(min(psnr(tensor_to_uint8(drawn)[0], self.targets[w][t]), 60.0))
        return round(float(np.mean(scores)), 2)


def moved_apart(drawn: torch.Tensor, drawn_moved: torch.Tensor,
                move: tuple[int, int]) -> torch.Tensor:
    """How differently crops were drawn (N, 3, C, C) and the same crops moved by `move` (dy,
    dx) pixels, where both show the same picture (L1 + MSE): 0 for a head that draws a
    picture the same wherever it lies on the grid."""
    (dy, dx), c = move, drawn.shape[-1]
    return l1_mse(drawn[..., dy:, dx:] - drawn_moved[..., :c - dy, :c - dx])


def _taught_step(model: LSDModel, net: torch.nn.Module, opt: torch.optim.Optimizer,
                 data: HeadFootage, g: torch.Generator) -> torch.Tensor:
    """One step of the head `net` on CROPS crops, drawn as they are and moved; the loss of
    the fit (L1 + MSE)."""
    (grid, base, frame, target), moved, move = data.crops(CROPS, g)
    drawn = lambda grid, base, frame: base + net(model.upsampler.patches(grid, frame))
    out = drawn(grid, base, frame)
    loss = l1_mse(out - target)
    opt.zero_grad(set_to_none=True)
    (loss + MOVED_WEIGHT * moved_apart(out, drawn(*moved), move)).backward()
    opt.step()
    return loss


def head_step_seconds(model: LSDModel, head: int, data: HeadFootage, steps: int = 20) -> float:
    """Seconds a step of train_head takes on this machine: a copy of the head taught `steps`
    steps after one to warm up, on a random stream of its own (the lesson's is untouched)."""
    net = copy.deepcopy(model.upsampler.heads[head]).float().train().requires_grad_(True)
    opt, g = torch.optim.AdamW(net.parameters(), lr=0.0), torch.Generator().manual_seed(0)
    _taught_step(model, net, opt, data, g)
    start = time.perf_counter()
    for _ in range(steps):
        _taught_step(model, net, opt, data, g)
    return (time.perf_counter() - start) / steps


def train_head(model: LSDModel, head: int, data: HeadFootage, steps: int, lr: float,
               g: torch.Generator, progress: bool, start: dict | None = None,
               save: Callable[[dict, torch.Tensor], None] | None = None) -> list[float]:
    """Teach the upsampler's output head number `head` on `data`; the rest stays. Returns
    the losses (L1 + MSE, as the upsampler was taught).
    `save(done, rng)` is handed the progress ({"step", "losses", "optim"}) every SAVE_EVERY
    steps and at Ctrl-C, with the random state to go on from; `start` is such progress (the
    head's weights already in the model)."""
    up = model.upsampler
    net = up.heads[head].float().train().requires_grad_(True)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(steps, 4),
                                                pct_start=min(0.3, max(0.05, 2 / max(steps, 4))))
    step, losses = 0, []
    if start:
        step, losses = start["step"], list(start["losses"])
        with warnings.catch_warnings():  # the schedule (and momentum) where it stopped
            warnings.simplefilter("ignore")
            for _ in range(step):
                sched.step()
        _load_optimizer(opt, start["optim"])
    done = lambda: {"step": step, "losses": losses, "optim": _optimizer_tensors(opt)}
    bar = tqdm(total=steps, initial=step, desc="learning its output head", disable=not progress)
    try:
        while step < steps:
            at_start = g.get_state()  # a step cut short is taken again from here
            loss = _taught_step(model, net, opt, data, g)
            sched.step()
            step += 1
            losses.append(round(loss.item(), 5))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if save and step % SAVE_EVERY == 0 and step < steps:
                save(done(), g.get_state())
    except KeyboardInterrupt:
        if save:
            save(done(), at_start)
        raise
    finally:
        bar.close()
    net.requires_grad_(False).eval()
    return losses
