"""Frame-by-frame generation against a history cache: the one rollout that the streaming
engine runs and that training uses for self-rollout history (so the model is trained on
exactly the history it will see).

A frame is sampled in `steps` steps, each attending the cached history; then it is
*committed*: one more pass over the finished latent (optionally re-noised to a small
context level, the inference side of history augmentation) writes its keys and values into
the cache, and the cache ages by one frame. With commit="last_step" the last denoising
step writes them instead and the extra pass is saved: the history is then the frame at
noise level t = 1/steps (as a student trained that way expects), not the finished frame.
"""

from __future__ import annotations

import torch

from .flow import add_noise
from .samplers import sample_euler, time_grid


def _full(batch: int, value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.full((batch, 1), float(value), dtype=torch.float32, device=like.device)


def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Noise drawn on the CPU generator (reproducible on any device), then moved."""
    return torch.randn(like.shape, generator=generator).to(like.device, like.dtype)


@torch.no_grad()
def commit_frame(denoiser, cache, latent: torch.Tensor, z_in: torch.Tensor, prompt: torch.Tensor,
                 context_t: float = 0.0, context_noise: torch.Tensor | None = None,
                 d: float = 0.0) -> None:
    """Write a finished frame (B, C, h, w) into the history cache at noise level context_t
    (told step size d, as a last-step commit is)."""
    b = latent.shape[0]
    if context_t > 0:
        if context_noise is None:
            raise ValueError("context_t > 0 needs context_noise")
        latent = add_noise(latent, context_noise, torch.full((b,), float(context_t), device=latent.device))
    denoiser(latent[:, None], z_in[:, None], _full(b, context_t, latent), _full(b, d, latent),
             prompt, cache=cache, write=True)
    cache.advance()


COMMITS = ("clean", "last_step")


def check_choice_guidance(weight: float, t_min: float, where: str = "") -> None:
    """Refuse a choice guidance weight or level a frame cannot be sampled with, naming the
    setting (`where`: e.g. "sample."): the one check for the config and the stream."""
    if weight < 0:
        raise ValueError(f"{where}choice_guidance must be >= 0, not {weight}")
    if not 0 <= t_min < 1:
        raise ValueError(f"{where}choice_guidance_t_min must be in [0, 1), not {t_min}")


@torch.no_grad()
def generate_frame(denoiser, cache, z_in: torch.Tensor, prompt: torch.Tensor, noise: torch.Tensor,
                   steps: int, shortcut: bool = False, context_t: float = 0.0,
                   context_noise: torch.Tensor | None = None, commit: str = "clean",
                   start: torch.Tensor | None = None, t_start: float = 1.0,
                   guidance: float = 1.0, unguided: torch.Tensor | None = None,
                   guidance_t_min: float = 0.0, history_guidance: float = 1.0) -> torch.Tensor:
    """Sample one frame's latent (B, C, h, w) from `noise` given the encoded input frame
    z_in and the cached history, then commit it. prompt is (B, E). With `start` (a latent,
    e.g. the previous output) sampling begins at level t_start from `start` noised to it,
    not at 1 from pure noise (a warm start: what the noise cannot hide, the colours,
    carries over). With `unguided` (B, E), a prompt embedding lacking something `prompt`
    says, each step's velocity is pushed `guidance` times as far from the unguided one
    (classifier-free guidance; 1: off), on the steps that start at a level >= guidance_t_min
    (0: every step); only the guided prompt reaches the history. With `history_guidance`
    h != 1, each step's velocity is pushed h times as far from the one the frame gets with
    no history at all (guidance on the history, as on a prompt: what the history adds, a
    weak copy of its details, is strengthened; 1: off, one pass a step)."""
    if commit not in COMMITS:
        raise ValueError(f"commit must be one of {COMMITS}, not {commit!r}")
    if start is None:
        t_start = 1.0
    elif not 0 < t_start <= 1:
        raise ValueError(f"a warm start needs 0 < t_start <= 1, not {t_start}")
    else:
        level = torch.full((start.shape[0],), float(t_start), device=start.device)
        noise = add_noise(start, noise, level).to(start.dtype)
    calls = 0
    # the steps to guide, counted from the first: known here, so a captured graph has no
    # data-dependent branch (and an unguided frame, the live path, pays nothing for it)
    guided = unguided is not None and guidance != 1.0
    guided_steps = int((time_grid(steps, t_start)[:-1] >= guidance_t_min).sum()) if guided else 0

    def velocity(x, t, d):
        nonlocal calls
        calls += 1
        write = commit == "last_step" and calls == steps
        v = denoiser(x[:, None], z_in[:, None], t[:, None], d[:, None], prompt, cache=cache,
                     write=write)[:, 0]
        if calls <= guided_steps:
            u = denoiser(x[:, None], z_in[:, None], t[:, None], d[:, None], unguided, cache=cache)[:, 0]
            v = u + guidance * (v - u)
        if history_guidance != 1.0:  # the same frame alone: no cache, no history
            alone = denoiser(x[:, None], z_in[:, None], t[:, None], d[:, None], prompt)[:, 0]
            v = alone + history_guidance * (v - alone)
        return v

    latent = sample_euler(velocity, noise, steps, t_start, shortcut=shortcut)
    if commit == "last_step":
        cache.advance()
    else:
        commit_frame(denoiser, cache, latent, z_in, prompt, context_t, context_noise)
    return latent


@torch.no_grad()
def rollout(denoiser, cache, z_in: torch.Tensor, prompt: torch.Tensor, steps: int,
            shortcut: bool = False, context_t: float = 0.0,
            generator: torch.Generator | None = None, commit: str = "clean",
            guidance: float = 1.0, unguided: torch.Tensor | None = None,
            guidance_t_min: float = 0.0, history_guidance: float = 1.0) -> torch.Tensor:
    """Generate T frames one after another: z_in (B, T, C, h, w) -> latents of that shape.
    prompt is (B, E) or per frame (B, T, E), `unguided` (guidance, generate_frame) the same.
    The cache carries on from whatever it holds."""
    at = lambda p, j: p[:, j] if p is not None and p.ndim == 3 else p  # frame j's prompt
    frames = []
    for j in range(z_in.shape[1]):
        noise = _randn(z_in[:, j], generator)
        ctx = _randn(z_in[:, j], generator) if context_t > 0 else None
        frames.append(generate_frame(denoiser, cache, z_in[:, j], at(prompt, j), noise, steps, shortcut,
                                     context_t, ctx, commit, guidance=guidance,
                                     unguided=at(unguided, j), guidance_t_min=guidance_t_min,
                                     history_guidance=history_guidance))
    return torch.stack(frames, dim=1)
