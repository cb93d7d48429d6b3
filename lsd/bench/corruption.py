"""`lsd bench corruption`: does the model correct a damaged history or copy it? At chosen
frames the model's *history* (never its input) is damaged: 30% of its pixels replaced by
random colours, heavy Gaussian noise, or one frame generated with another style's prompt
that then sits in the history. Each damaged run is compared with the undamaged run on the
same stream with the same sampling noise, frame by frame: recovery is the number of frames
until the output is back within 0.5 dB (PSNR vs target) of the undamaged run and stays
there. A control run rebuilds the history undamaged, to show what rebuilding alone costs
(the cache is rebuilt from 8-bit frames, not from the latents the stream committed).
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Callable, Protocol

import numpy as np
import torch
from tqdm import tqdm

from ..data import VAL_SEED_START, paired_stream
from ..machine import machine_name
from ..metrics import psnr
from ..models import load
from ..stream.backends import streamed_with
from ..stream.engine import Stream
from ..styles import get_style, style_names
from .drift import capped

CORRUPTION_SEED = VAL_SEED_START + 500
GARBAGE_SHARE = 0.3  # of the history's pixels, the most training damage replaces
NOISE_SIGMA = 64.0  # 0-255 units: heavy
TOLERANCE_DB = 0.5  # "recovered": no more than this below the undamaged run
RECOVERY_HOLD = 10  # frames it must then stay there, for the recovery to count
KINDS = ("rebuild_only", "garbage", "noise", "wrong_prompt")  # rebuild_only is the control


class Stepper(Protocol):
    """What the bench drives: lsd.Stream, or a fake in the tests."""

    prompt: str

    def step(self, frame: np.ndarray) -> np.ndarray: ...
    def set_prompt(self, prompt: str, blend_frames: int = 12) -> None: ...
    def rebuild_history(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None: ...


def garbage(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hit = rng.random(frame.shape[:2]) < GARBAGE_SHARE
    out = frame.copy()
    out[hit] = rng.integers(0, 256, (int(hit.sum()), 3), dtype=np.uint8)
    return out


def noise(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = frame + rng.normal(0.0, NOISE_SIGMA, frame.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


DAMAGE = {"rebuild_only": lambda frame, rng: frame, "garbage": garbage, "noise": noise}


def wrong_prompt(style: str) -> str:
    """Another style's canonical prompt (the first style that is not this one)."""
    return get_style(next(n for n in style_names() if n != style)).prompts[0]


def rollout_psnrs(stepper: Stepper, style: str, seed: int, frames: int, size: tuple[int, int],
                  kind: str | None, at: list[int], history: int, progress: bool = True) -> list[float]:
    """Per-frame PSNR vs target of one run; before each frame in `at` the history is
    damaged by `kind` (None: the undamaged run)."""
    rng = np.random.default_rng([seed, 0xC0])
    recent: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=max(history, 1))
    scores = []
    samples = paired_stream(seed, style, size=size, frames=frames)
    for i, s in enumerate(tqdm(samples, total=frames, desc=kind or "undamaged", unit="frame",
                               file=sys.stderr, disable=not progress, mininterval=1.0)):
        if kind == "wrong_prompt" and i in at:
            prompt = stepper.prompt
            stepper.set_prompt(wrong_prompt(style), blend_frames=0)
            out = stepper.step(s.input)  # this frame joins the history
            stepper.set_prompt(prompt, blend_frames=0)
        else:
            if kind in DAMAGE and i in at:
                stepper.rebuild_history([(x, DAMAGE[kind](y, rng)) for x, y in recent])
            out = stepper.step(s.input)
        recent.append((s.input, out))
        scores.append(capped(psnr(out, s.target)))
    return scores


def recovery(clean: list[float], damaged: list[float], start: int, end: int) -> dict:
    """Frames from `start` until `damaged` is within TOLERANCE_DB of `clean` and stays so
    up to `end`; it must stay at least RECOVERY_HOLD frames, or it is not recovered."""
    gaps = np.array(clean[start:end]) - np.array(damaged[start:end])
    bad = np.flatnonzero(gaps > TOLERANCE_DB)
    back = int(bad[-1]) + 1 if len(bad) else 0
    recovered = len(gaps) - back >= RECOVERY_HOLD
    return {"frame": start, "recovered": bool(recovered),
            "recovery_frames": back if recovered else None, "watched_frames": len(gaps),
            "worst_gap_db": round(float(gaps.max()), 2) + 0.0,  # + 0.0: no "-0.0"
            "end_gap_db": round(float(gaps[-1]), 2) + 0.0}


def check_at(at: list[int], frames: int) -> list[int]:
    at = sorted(set(at))
    if not at or at[0] < 1:
        raise ValueError("--at frames must be >= 1 (frame 0 has no history to damage)")
    for a, b in zip(at, at[1:] + [frames]):
        if b - a < RECOVERY_HOLD:
            raise ValueError(f"corruption at frame {a} leaves {b - a} frames to watch before "
                             f"{'frame ' + str(b) if b < frames else 'the end'}; needs "
                             f">= {RECOVERY_HOLD} (raise --frames or space the --at frames)")
    return at


def corruption_run(make_stepper: Callable[[int], Stepper], style: str, frames: int,
                   at: list[int], seed: int, size: tuple[int, int], history: int,
                   kinds: tuple[str, ...] = KINDS, progress: bool = True) -> dict:
    """The undamaged run, then one run per kind with the damage at every frame in `at`;
    `make_stepper(seed)` gives a fresh stream whose sampling noise depends only on seed."""
    at = check_at(at, frames)
    clean = rollout_psnrs(make_stepper(seed), style, seed, frames, size, None, at, history, progress)
    per_kind = {}
    for kind in kinds:
        damaged = rollout_psnrs(make_stepper(seed), style, seed, frames, size, kind, at,
                                history, progress)
        per_kind[kind] = [recovery(clean, damaged, a, b) for a, b in zip(at, at[1:] + [frames])]
    return {"style": style, "seed": seed, "frames": frames, "at": at,
            "tolerance_db": TOLERANCE_DB, "hold_frames": RECOVERY_HOLD,
            "undamaged_psnr_db": round(float(np.mean(clean)), 2), "per_kind": per_kind}


def bench_corruption(checkpoint: str, frames: int = 150, at: list[int] | None = None,
                     style: str = "ink_wash", steps: int | None = None,
                     seed: int = CORRUPTION_SEED, progress: bool = True) -> dict:
    s = get_style(style)
    at = check_at(at or [frames // 3], frames)
    model = load(checkpoint)
    make = lambda seed: Stream(model, s.prompts[0], model.sample.but(steps=steps), seed=seed)
    probe = make(seed)
    result = corruption_run(make, style, frames, at, seed, probe.size, probe.cache.frames,
                            progress=progress)
    return {"checkpoint": str(checkpoint), "steps": probe.steps, **result,
            "wrong_prompt": wrong_prompt(style), "garbage_share": GARBAGE_SHARE,
            "noise_sigma": NOISE_SIGMA, **streamed_with(),
            "machine": machine_name(threads=torch.get_num_threads())}
