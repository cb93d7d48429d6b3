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

from ..config import SampleConfig
from .flow import add_noise
from .guidance import guided, guided_steps
from .samplers import sample_euler


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


@torch.no_grad()
def generate_frame(denoiser, cache, z_in: torch.Tensor, prompt: torch.Tensor, noise: torch.Tensor,
                   sample: SampleConfig, context_noise: torch.Tensor | None = None,
                   unguided: torch.Tensor | None = None) -> torch.Tensor:
    """Sample one frame's latent (B, C, h, w) from `noise` given the encoded input frame
    z_in and the cached history, then commit it. prompt is (B, E). With `unguided` (B, E),
    a prompt embedding lacking something `prompt` says (the picks), the steps from level 1
    down to sample.choice_guidance_t_min are guided away from it by sample.choice_guidance
    (lsd.diffusion.guidance); only the guided prompt reaches the history."""
    last_step = sample.commit == "last_step"
    calls = 0

    def velocity(x, t, d, prompt=prompt):  # a last-step commit's last call writes the history
        nonlocal calls
        calls += 1
        write = last_step and calls == sample.steps
        return denoiser(x[:, None], z_in[:, None], t[:, None], d[:, None], prompt, cache=cache,
                        write=write)[:, 0]

    if unguided is not None and sample.guided:
        plain = lambda x, t, d: denoiser(x[:, None], z_in[:, None], t[:, None], d[:, None],
                                         unguided, cache=cache)[:, 0]
        velocity = guided(velocity, plain, sample.choice_guidance,
                          guided_steps(sample.steps, sample.choice_guidance_t_min))
    latent = sample_euler(velocity, noise, sample.steps, shortcut=sample.shortcut)
    if last_step:
        cache.advance()
    else:
        commit_frame(denoiser, cache, latent, z_in, prompt, sample.context_t, context_noise)
    return latent


@torch.no_grad()
def rollout(denoiser, cache, z_in: torch.Tensor, prompt: torch.Tensor, sample: SampleConfig,
            generator: torch.Generator | None = None,
            unguided: torch.Tensor | None = None) -> torch.Tensor:
    """Generate T frames one after another: z_in (B, T, C, h, w) -> latents of that shape.
    prompt is (B, E) or per frame (B, T, E), `unguided` (generate_frame) the same.
    The cache carries on from whatever it holds."""
    at = lambda p, j: p[:, j] if p is not None and p.ndim == 3 else p  # frame j's prompt
    frames = []
    for j in range(z_in.shape[1]):
        noise = _randn(z_in[:, j], generator)
        ctx = _randn(z_in[:, j], generator) if sample.context_t > 0 else None
        frames.append(generate_frame(denoiser, cache, z_in[:, j], at(prompt, j), noise, sample,
                                     ctx, at(unguided, j)))
    return torch.stack(frames, dim=1)
