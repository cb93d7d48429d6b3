"""The teacher's objective: Diffusion Forcing with history augmentation.

`diffusion_forcing(...)` turns a batch of clips into (inputs, target, weight): every frame
gets its own logit-normal noise level and the flow-matching velocity target. A clip may
also get a *history prefix*: its first c frames stand for output the model already made.
They carry no loss; with augmentation they are damaged in pixel space (history_damage),
noised to a small level the model is told (context noise), or replaced by the model's own
frame-by-frame rollout (the streaming engine's rollout function), so the frames after them
must be right although their history is not; a share of prefixes may be blanked to pure
noise. A model with a choice input is told the picks the clip's world drew
(styles/picks.py); the self-rollout is told them too, so its frames make the choice the
targets make.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import SampleConfig
from ..diffusion import add_noise, commit_frame, rollout, sample_t_logit_normal, velocity
from ..metrics import small_details
from ..models import LSDModel
from ..styles import get_style
from ..styles.picks import null_code
from .config import TrainConfig
from .history_damage import damage


def _prefix_lengths(batch: int, frames: int, share: float, g: torch.Generator) -> torch.Tensor:
    """c per clip: 0 (no prefix) or 1..T-1 history frames."""
    has = torch.rand(batch, generator=g) < share
    c = torch.randint(1, max(frames, 2), (batch,), generator=g)
    return torch.where(has, c, torch.zeros_like(c)).clamp(max=frames - 1)


def diffusion_forcing(model: LSDModel, clips: dict, cfg: TrainConfig, g: torch.Generator,
                      rollout_now: bool = False) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Returns inputs for `Trainable` (z_t, z_in, t, d; prompts as strings; the picks code
    for a model with a choice input, else None), the target velocity (B, T, C, h, w) and
    a per-frame loss weight (B, T)."""
    hist, dev = cfg.history, model.codec.latent_mean.device
    x_in, x_target = clips["input"], clips["target"]  # on the CPU, where damage is done
    b, frames = x_in.shape[:2]
    with torch.no_grad():  # float: bf16 targets would be coarse
        z_in = latents(model, clips, "z_in", x_in, dev)
        z0 = latents(model, clips, "z0", x_target, dev)
    t = sample_t_logit_normal((b, frames), cfg.optim.t_mean, cfg.optim.t_std, generator=g)
    if cfg.optim.t_uniform > 0:  # drawn only when asked, so older configs replay exactly
        uniform = torch.rand(b, frames, generator=g) < cfg.optim.t_uniform
        t = torch.where(uniform, torch.rand(b, frames, generator=g), t)
    c = _prefix_lengths(b, frames, hist.prefix, g)
    prefix = torch.arange(frames)[None] < c[:, None]  # (B, T)
    code = clips["code"].to(dev) if model.config.denoiser.choice else None
    if code is not None and cfg.optim.choice_dropout > 0:  # drawn only when asked (replays)
        told = torch.rand(b, generator=g) >= cfg.optim.choice_dropout
        code = torch.where(told[:, None], code, torch.from_numpy(null_code()).to(code))
    history, t_history = z0, torch.zeros(b, frames)
    if hist.enabled and prefix.any():
        rollout_frames = int(c.max()) if rollout_now else 0
        history, t_history = augmented_history(model, clips, z0, z_in, cfg, g, prefix,
                                               rollout_frames, code)
        if hist.blank > 0:  # drawn only when asked, so older configs replay exactly
            blank = torch.rand(b, generator=g) < hist.blank
            t_history = torch.where(blank[:, None], torch.ones_like(t_history), t_history)
    t = torch.where(prefix, t_history, t).to(dev)
    prefix = prefix.to(dev)
    clean = torch.where(prefix[..., None, None, None], history, z0)
    noise = torch.randn(z0.shape, generator=g).to(dev, z0.dtype)
    inputs = {"z_t": add_noise(clean, noise, t), "z_in": z_in, "t": t,
              "d": torch.zeros(b, frames, device=dev), "prompts": clips["prompts"], "code": code}
    weight = (~prefix).float()
    return inputs, velocity(z0, noise), weight


@torch.no_grad()
def augmented_history(model: LSDModel, clips: dict, z0: torch.Tensor, z_in: torch.Tensor,
                      cfg: TrainConfig, g: torch.Generator, mask: torch.Tensor,
                      rollout_frames: int = 0,
                      code: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents for frames that serve as history, and their noise levels (B, T): frames in
    `mask` (B, T) get the target damaged in pixel space and re-encoded; those among the
    first `rollout_frames` are replaced by the model's own rollout (frame styles' clips
    only, unless history.rollout_memory_styles; told the picks `code` where the model
    has a choice input); every frame gets a context noise level in
    [0, history.context_noise]."""
    hist, dev = cfg.history, z0.device
    history = z0.clone()
    damaged = damage(clips["target"][mask], hist.damage, g).to(dev)
    history[mask.to(dev)] = model.codec.encode(damaged).to(history.dtype)
    if rollout_frames:
        n = rollout_frames
        own = _own_rollout(model, z_in[:, :n], clips["prompts"], hist.rollout_steps, g, code,
                           history[:, 0] if hist.rollout_primed else None)
        keep = mask[:, :n]
        if not hist.rollout_memory_styles:
            frame_clip = torch.tensor([get_style(s).kind == "frame" for s in clips["styles"]])
            keep = keep & frame_clip[:, None]
        keep = keep[..., None, None, None].to(dev)
        history[:, :n] = torch.where(keep, own.float(), history[:, :n])
    return history, torch.rand(z0.shape[:2], generator=g) * hist.context_noise


def latents(model: LSDModel, clips: dict, key: str, frames: torch.Tensor, dev) -> torch.Tensor:
    """The clip's latents: precomputed by the pool when it has them, else encoded now."""
    if key in clips:
        return clips[key].to(dev, torch.float32)
    return model.codec.encode(frames.to(dev)).float()


@torch.no_grad()
def _own_rollout(model: LSDModel, z_in: torch.Tensor, prompts: list[str], steps: int,
                 g: torch.Generator, code: torch.Tensor | None = None,
                 first: torch.Tensor | None = None) -> torch.Tensor:
    """The model's own frames for the prefix, made the way streaming makes them; with
    `first` (B, C, h, w), frame 0 is that latent, committed as the history they follow."""
    was_training = model.training
    model.eval()
    cache, prompt = model.new_cache(), model.encode_prompts(prompts, code)
    frames = []
    if first is not None:
        commit_frame(model.denoiser, cache, first.to(z_in.dtype), z_in[:, 0], prompt)
        frames, z_in = [first[:, None].to(z_in.dtype)], z_in[:, 1:]
    if z_in.shape[1]:
        frames.append(rollout(model.denoiser, cache, z_in, prompt, SampleConfig(steps=steps), g))
    model.train(was_training)
    return torch.cat(frames, dim=1)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 positions: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per frame, averaged over the frames with weight (B, T). With
    `positions` (B, T, 1, h, w: detail_positions), each latent position's error counts that
    many times within its frame."""
    err = (pred.float() - target.float()).pow(2)
    if positions is not None:
        err = err * positions
    per_frame = err.flatten(2).mean(-1)  # (B, T)
    return (per_frame * weight).sum() / weight.sum().clamp_min(1.0)


def detail_positions(targets: torch.Tensor, size: tuple[int, int], weight: float) -> torch.Tensor:
    """(B, T, 1, h, w): 1 + `weight` x how much each latent position of a (B, T, 3, H, W)
    clip of targets in [0, 1] holds a small bright detail (metrics.small_details, its most
    over the position's pixels). A star is a few pixels of one latent position, a few
    hundredths of a frame's error: weighed, the denoiser learns to draw it and to keep it."""
    details = torch.from_numpy(small_details(targets.movedim(-3, -1).numpy() * 255))
    b, t = details.shape[:2]
    pooled = F.adaptive_max_pool2d(details.flatten(0, 1)[:, None], size)
    return 1 + weight * pooled.view(b, t, 1, *size)
