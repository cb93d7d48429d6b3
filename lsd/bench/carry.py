"""`lsd bench carry`: how much of `star_glitter`'s stars a model carries from its history
into the frames it makes.

The model is not told where a stream's stars are: after frame 0 it can only take them from
its history. Here the history is primed with the target's first frames (their latents,
committed as the model's own outputs are) and the model rolls on from there as it streams.
A frame's stars, in latent space, are its latent minus that of the same frame drawn without
them (StarGlitter.night). Per frame after the priming: the cosine between the model's stars
and the target's, and their amplitude (the model's projected on the target's, over the
target's): 1 is carried in full, 0 gone. A model that keeps its stars holds both near 1
frame after frame; one that copies each frame a share a < 1 of what its history holds falls
as a^n. Unprimed, the cosine is near 0 (the model's own stars are elsewhere): the zero of
the measure. With `shift` PX, every frame is the first one rolled PX pixels further right
(input and target alike): a motion known exactly. Shift 0 is a still picture, so the copying
alone is measured, without the tracking. With `history_guidance` h, each step is
pushed h times as far from the frame made with no history (diffusion.rollout): what the
history adds, strengthened.

Two references come from the targets alone, the same for every model: `copy_held`, the last
primed frame's stars copied exactly and left where they were (what a model that copies its
history perfectly but does not move it scores), and `copy_moved`, those stars moved along the
exact motion in latent space (bilinear between latent positions): what a history warped
along the picture's motion before the model sees it could hold at best.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..config import sample_setting
from ..data import VAL_SEED_START, paired_stream
from ..data.motion import apply
from ..diffusion import commit_frame
from ..io import to_uint8
from ..machine import machine_name
from ..models import load
from ..precision import decide
from ..styles import get_style, style_names
from ..styles.memory import StarGlitter
from ..train.clips import to_frames
from ..train.guide import picks_codes, roll_as_streamed
from .quality import STREAM_SEED_STRIDE

STYLE = "star_glitter"


def star_agreement(model_stars: torch.Tensor, target_stars: torch.Tensor) -> dict[str, list[float]]:
    """Per frame, averaged over streams, of (S, T, C, h, w) star latents: cosine and amplitude."""
    m, t = model_stars.flatten(2), target_stars.flatten(2)
    dot = (m * t).sum(-1)
    cosine = dot / (m.norm(dim=-1) * t.norm(dim=-1)).clamp_min(1e-8)
    amplitude = dot / t.pow(2).sum(-1).clamp_min(1e-8)
    return {"cosine": [round(float(c), 3) for c in cosine.mean(0)],
            "amplitude": [round(float(a), 3) for a in amplitude.mean(0)]}


def move_latent(z: torch.Tensor, screen_map: np.ndarray, frame_size: tuple[int, int],
                wrap: bool = False) -> torch.Tensor:
    """z (C, h, w) moved where `screen_map` (3x3, pixels) takes its picture: each latent
    position takes, bilinearly, the content at the position it came from. Content from
    outside the view is 0, or, with `wrap`, the other side's (a rolled picture)."""
    h, w = z.shape[-2:]
    fx, fy = frame_size[1] / w, frame_size[0] / h  # pixels per latent position
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = apply(np.linalg.inv(screen_map), (xs + 0.5) * fx, (ys + 0.5) * fy)
    lx, ly = sx / fx - 0.5, sy / fy - 0.5  # where it came from, in latent positions
    x0, y0 = np.floor(lx).astype(int), np.floor(ly).astype(int)
    out = torch.zeros_like(z)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        weight = (1 - abs(lx - xi)) * (1 - abs(ly - yi))
        if wrap:
            xi, yi = xi % w, yi % h
        else:
            weight = weight * ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))
            xi, yi = xi.clip(0, w - 1), yi.clip(0, h - 1)
        out += z[:, yi, xi] * torch.from_numpy(weight).to(z)
    return out


def copy_references(target_stars: torch.Tensor, screen: np.ndarray, prime: int,
                    frame_size: tuple[int, int], wrap: bool) -> dict[str, dict]:
    """Scores of the last primed frame's stars, copied exactly, against each later frame's:
    held in place, and moved along the background's motion (`screen` (S, T, 3, 3): where
    each frame puts the background, in pixels). target_stars (S, T, C, h, w), all frames."""
    last, later = target_stars[:, prime - 1], target_stars[:, prime:]
    from_last = np.linalg.inv(screen[:, prime - 1])  # (S, 3, 3): screen back to the last primed frame's
    moved = torch.stack([torch.stack([
        move_latent(last[s], screen[s, k] @ from_last[s], frame_size, wrap)
        for k in range(prime, target_stars.shape[1])]) for s in range(len(screen))])
    return {"copy_held": star_agreement(last[:, None].expand_as(later), later),
            "copy_moved": star_agreement(moved, later)}


@torch.no_grad()
def bench_carry(checkpoint: str, frames: int = 8, prime: int = 3, streams: int = 4,
                shift: int | None = None, seed: int = 0, history_guidance: float = 1.0) -> dict:
    """The carry on the first `streams` of lsd bench quality's star_glitter streams, `frames`
    frames after `prime` primed ones; `shift` None: the world's own motion."""
    if min(frames, prime, streams) < 1:
        raise ValueError("--frames, --prime and --streams must be at least 1")
    if history_guidance < 0:
        raise ValueError(f"--history-guidance must be >= 0, not {history_guidance}")
    precision = decide("cpu")
    model = load(checkpoint, dtype=precision.dtype)
    size = tuple(model.config.frame_size)
    t0 = time.time()
    index = style_names().index(STYLE)  # lsd bench quality's streams of the style
    seeds = [VAL_SEED_START + 100 + index + STREAM_SEED_STRIDE * j for j in range(streams)]
    shown = prime + frames if shift is None else 1  # a shifted stream is its frame 0, moved
    worlds = [list(paired_stream(s, STYLE, size=size, frames=shown)) for s in seeds]
    inputs = np.stack([[x.input for x in w] for w in worlds])  # (S, T, H, W, 3)
    targets = np.stack([[x.target for x in w] for w in worlds])
    if shift is None:  # how far the picture moves a frame: the exact flow's median where nothing hides it
        motion = float(np.median([np.median(np.hypot(*x.flow.transpose(2, 0, 1))[~x.occluded])
                                  for w in worlds for x in w[:-1]]))
        screen = np.stack([[x.screen_from_world for x in w] for w in worlds])
    else:  # frame 0, moved `shift` px a frame
        motion = float(abs(shift))
        screen = np.stack([[np.array([[1.0, 0, k * shift], [0, 1, 0], [0, 0, 1]])
                            for k in range(prime + frames)]] * streams)
        roll = lambda clips: np.stack([np.roll(clips[:, 0], k * shift, axis=-2)
                                       for k in range(prime + frames)], axis=1)
        inputs, targets = roll(inputs), roll(targets)
    bare = to_uint8(StarGlitter.night(inputs.astype(np.float32) / 255.0))  # drawn as targets are
    encode = lambda x: model.codec.encode(to_frames(x).to(precision.dtype))
    z_in, z_target, z_bare = encode(inputs), encode(targets), encode(bare)
    all_stars = (z_target - z_bare).float()
    target_stars = all_stars[:, prime:]
    prompts = [get_style(STYLE).prompts[0]] * streams
    context_t = sample_setting(model, "context_t")
    report = {}
    for primed in (True, False):
        g = torch.Generator().manual_seed(seed)
        cache, start = model.new_cache(), 0
        if primed:  # the target's first frames, committed as the stream commits its outputs
            prompt = model.encode_prompts(prompts, picks_codes(model, seeds))
            for j in range(prime):
                noise = torch.randn(z_target[:, j].shape, generator=g).to(z_target)
                commit_frame(model.denoiser, cache, z_target[:, j], z_in[:, j], prompt, context_t, noise)
            start = prime
        # unprimed, the model makes every frame from the first; both are scored on the same ones
        rolled = roll_as_streamed(model, cache, z_in[:, start:], seeds, prompts, g,
                                  history_guidance=history_guidance)[:, prime - start:]
        agreement = star_agreement((rolled - z_bare[:, prime:]).float(), target_stars)
        report |= agreement if primed else {"unprimed_cosine": agreement["cosine"]}
    return {"checkpoint": str(checkpoint), "style": STYLE, "streams": streams, "prime": prime,
            "frames": frames, "shift": shift, "motion_px_per_frame": round(motion, 2),
            "context_t": context_t,
            "history_guidance": history_guidance, **report,
            **copy_references(all_stars, screen, prime, size, wrap=shift is not None),
            **precision.to_dict(), "seconds": round(time.time() - t0, 1),
            "machine": machine_name(torch.get_num_threads())}

