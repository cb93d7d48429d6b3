"""`lsd bench levels`: how well the model knows the output at each noise level.

Held-out frames of every frame style, without history: the target's latent is noised to
level t, one pass predicts the velocity, and the output estimate x0 = x_t - t * v is
decoded and compared with the target. Sampling starts every frame at t = 1, so a model
that is weak near 1 starts every frame from a poor guess; this bench shows where it is.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data import VAL_SEED_START, paired_stream
from ..diffusion import add_noise, predict_x0
from ..machine import machine_name
from ..metrics import psnr
from ..models import load
from ..precision import decide
from ..styles import get_style, style_names
from ..train.clips import to_frames, to_uint8

LEVELS = (0.0, 0.2, 0.5, 0.7, 0.85, 0.95, 1.0)
FRAME_GAP = 3  # take every 3rd frame of a stream: neighbours are nearly the same picture


@torch.no_grad()
def bench_levels(checkpoint: str, frames: int = 8, levels: tuple[float, ...] = LEVELS) -> dict:
    precision = decide("cpu")
    model = load(checkpoint, dtype=precision.dtype)
    size = tuple(model.config.frame_size)
    g = torch.Generator().manual_seed(0)
    scores = {t: {} for t in levels}
    t0 = time.time()
    for i, name in enumerate(style_names()):
        style = get_style(name)
        if style.kind != "frame":
            continue
        seed = VAL_SEED_START + 100 + i  # lsd bench quality's stream of this style
        samples = list(paired_stream(seed, name, size=size, frames=frames * FRAME_GAP))[::FRAME_GAP]
        targets = np.stack([s.target for s in samples])
        inputs = to_frames(np.stack([s.input for s in samples])).to(precision.dtype)
        z_in = model.codec.encode(inputs)
        z0 = model.codec.encode(to_frames(targets).to(precision.dtype))
        prompt = model.encode_prompts([style.prompts[0]]).expand(len(samples), -1)
        noise = torch.randn(z0.shape, generator=g).to(z0)  # the same noise at every level
        for t in levels:
            level = torch.full((len(samples), 1), float(t))
            z_t = add_noise(z0[:, None], noise[:, None], level)
            v = model.denoiser(z_t, z_in[:, None], level, torch.zeros_like(level), prompt)
            estimate = model.codec.decode(predict_x0(z_t, v, level)[:, 0], inputs)
            scores[t][name] = round(float(np.mean([psnr(a, b) for a, b in zip(to_uint8(estimate), targets)])), 2)
    rows = [{"t": t, "mean_psnr_db": round(float(np.mean(list(per.values()))), 2), "per_style": per}
            for t, per in scores.items()]
    return {"checkpoint": str(checkpoint), "frames_per_style": frames, "levels": rows,
            **precision.to_dict(), "seconds": round(time.time() - t0, 1),
            "machine": machine_name(torch.get_num_threads())}
