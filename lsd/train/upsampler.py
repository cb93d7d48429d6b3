"""`lsd upsampler`: teach a trained model to draw its output at the camera's resolution.

Worlds are rendered at the output size; the model streams them as a Stream does (each
input frame resized to the model's 128 px, rolled out with its checkpoint's sampling,
decoded), and the upsampler (lsd.models.upsampler) learns to turn that 128-px output and the
full-size input frame into the full-size target from the same reference renderers. The
codec, prompt encoder and denoiser stay as they are.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import CELL, UpsamplerConfig, on_grid
from ..data import VAL_SEED_START, clip
from ..data.pictures import SEEDS_PER_SPLIT
from ..metrics import psnr
from ..models import LSDModel, load
from ..models.upsampler import Upsampler, resize
from ..precision import decide
from ..styles import get_style, style_names
from .clips import to_frames, to_uint8
from .decoder import roll_as_streamed

VAL_SEED_OFFSET = 600  # validation worlds apart from lsd bench quality's and lsd decoder's


def l1_mse(err: torch.Tensor) -> torch.Tensor:
    """The loss the upsampler and the taught looks' output heads learn by: L1 + MSE."""
    return err.abs().mean() + err.square().mean()


@torch.no_grad()
def streamed_at(model: LSDModel, seeds: list[int], styles: list[str], frames: int, size: int,
                seed: int, progress: bool = False) -> dict[str, torch.Tensor]:
    """One world per (seed, style) rendered at size x size and streamed by `model`: input
    and target frames (N, T, S, S, 3) uint8, and the model's decoded outputs (N, T, 3, h, w)
    in [0, 1]."""
    clips = [clip(s, name, frames, size) for s, name in zip(seeds, styles)]
    inputs = np.stack([c["input"] for c in clips])
    dtype = model.denoiser.embed.weight.dtype
    small = resize(to_frames(inputs).flatten(0, 1), tuple(model.config.frame_size))
    small = small.unflatten(0, inputs.shape[:2]).to(dtype)
    rng = np.random.default_rng(seed)
    prompts = [str(rng.choice(get_style(name).prompts)) for name in styles]
    latents = roll_as_streamed(model, model.new_cache(), model.codec.encode(small), seeds, prompts,
                               torch.Generator().manual_seed(seed),
                               f"streaming {len(styles)} worlds" if progress else None)
    return {"input": torch.from_numpy(inputs),
            "target": torch.from_numpy(np.stack([c["target"] for c in clips])),
            "look": model.codec.decode(latents, small).float().clamp(0, 1)}


@torch.no_grad()
def upsampled_psnr(up: Upsampler | None, rolls: dict[str, torch.Tensor]) -> float:
    """Mean PSNR against the targets of the outputs upsampled (None: stretched)."""
    looks, inputs = rolls["look"].flatten(0, 1), to_frames(rolls["input"].flatten(0, 1).numpy())
    size = tuple(inputs.shape[-2:])
    scores = []
    for i in range(0, len(looks), 32):
        out = resize(looks[i:i + 32], size) if up is None else up(looks[i:i + 32], inputs[i:i + 32])
        scores += [psnr(a, b) for a, b in zip(to_uint8(out), rolls["target"].flatten(0, 1)[i:i + 32].numpy())]
    return round(float(np.mean(scores)), 2)


def train_upsampler(checkpoint: str, out: str, size: int = 256, channels: int = 32,
                    blocks: int = 2, streams: int = 4, frames: int = 24, steps: int = 800,
                    batch: int = 16, lr: float = 2e-3, seed: int = 0, progress: bool = True,
                    look_size: int = 32, look_memory: float = 0.9) -> dict:
    """Write OUT/model: `checkpoint` with an upsampler drawing `size`-px outputs from the
    model's output shrunk to `look_size` (0: as it is), trained on `streams` streamed worlds
    per style; a stream keeps a running mean of that coarse look, moved along the input's
    motion (lsd.stream.look_motion), `look_memory` of it the last frame's (not trained:
    each frame is trained alone)."""
    t0 = time.time()
    if min(streams, frames, steps, batch, channels) < 1 or blocks < 0 or not on_grid(size):
        raise ValueError("--streams, --frames, --steps, --batch and --channels must be at "
                         f"least 1, and --size a positive multiple of {CELL}")
    if (Path(out) / "model").exists():
        raise FileExistsError(f"{Path(out) / 'model'} exists: pick another --out")
    precision = decide("cpu")
    model = load(checkpoint, dtype=precision.dtype)  # streamed in the compute dtype
    source = load(checkpoint)  # as stored: every weight but the upsampler's is saved unchanged
    names = style_names()
    rng = np.random.default_rng(seed)
    styles = [n for n in names for _ in range(streams)]
    seeds = [int(s) for s in rng.integers(SEEDS_PER_SPLIT, size=len(styles))]
    rolls = streamed_at(model, seeds, styles, frames, size, seed, progress)
    val_styles = [n for n in names if get_style(n).kind == "frame"]
    val = streamed_at(model, [VAL_SEED_START + VAL_SEED_OFFSET + i for i in range(len(val_styles))],
                      val_styles, frames, size, seed + 1, progress)
    cfg = UpsamplerConfig(channels=channels, blocks=blocks, out_size=size, look_size=look_size,
                          look_memory=look_memory)
    torch.manual_seed(seed)
    up = Upsampler(cfg).train()
    stretched = upsampled_psnr(None, val)
    looks, inputs, targets = (rolls["look"].flatten(0, 1), rolls["input"].flatten(0, 1),
                              rolls["target"].flatten(0, 1))
    opt = torch.optim.AdamW(up.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(steps, 4),
                                                pct_start=min(0.5, max(0.05, 2 / steps)))
    g = torch.Generator().manual_seed(seed)
    losses = []
    bar = tqdm(range(steps), desc="upsampler", disable=not progress)
    for _ in bar:
        i = torch.randint(len(looks), (batch,), generator=g)
        err = up(looks[i], to_frames(inputs[i].numpy())) - to_frames(targets[i].numpy())
        loss = l1_mse(err)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(up.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    up.eval()
    report = {"source": str(checkpoint), "size": size, "channels": channels, "blocks": blocks,
              "look_size": look_size, "look_memory": look_memory,
              "streams_per_style": streams, "frames": frames, "steps": steps, "batch": batch,
              "lr": lr, "seed": seed, "final_loss": round(float(np.mean(losses[-50:])), 4),
              "val_psnr_db": {"stretched": stretched, "upsampled": upsampled_psnr(up, val)},
              **precision.to_dict(), "seconds": round(time.time() - t0, 1)}
    source.config = dataclasses.replace(source.config, upsampler=cfg)
    source.upsampler = up.to(next(source.codec.parameters()).dtype)
    extra = {k: v for k, v in source.checkpoint_config.items() if k not in ("lsd_version", "model")}
    source.save(Path(out) / "model", extra | {"upsampler": report})
    return {"model": str(Path(out) / "model"), **report}
