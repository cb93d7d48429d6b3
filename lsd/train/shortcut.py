"""The student's objective: shortcut distillation (Frans et al. 2024), 12 -> 3 steps.

The student gets the step size d as well as t and learns the *average* velocity over a step
of size d, so that x_{t-d} = x_t - d v(x_t, t, d). Step sizes come from a grid built on
the teacher's d0 = 1/12. For d0 the target is the teacher's velocity (one step of its
12-step Euler trajectory). A larger d is split into two smaller grid steps d_a + d_b, and
the target is what the EMA student does in those two steps (stop-gradient):

    v_a = S(x_t, t, d_a);  x' = x_t - d_a v_a;  v_b = S(x', t - d_a, d_b)
    target = (d_a v_a + d_b v_b) / d

Every frame of a clip is a training frame, generated against the clip's history frames
(clean target latents, damaged and lightly noised as in the teacher's history augmentation)
through the denoiser's history mode: exactly what streaming does, so the student learns the
steps it will take. Levels t lie on the 1/12 lattice in [d, 1], where the samplers step.
With `sample.commit: last_step` the history is what streaming then writes: each frame at
the last step's level 1/steps, told that step size.

With a `reference` (a finished student, for the fine-tune of its pruned copy) the target at
every (t, d) is the reference's own velocity: plain distillation. `lsd learn` adds clips of
a look the reference lacks (`taught`): theirs is the data's velocity, whose last step lands
on the mean of the targets the frame could have (the sharpest steady choice for PSNR). Shortcut targets would
build each step size from the pruned model's own smaller steps, so an error at d = 1/12
would pass up the whole grid unseen (each level only has to agree with the one below).
"""

from __future__ import annotations

import torch

from ..diffusion import add_noise, velocity
from ..models import LSDModel
from .config import TrainConfig
from .diffusion_forcing import augmented_history, latents

LATTICE = 12  # t and d are multiples of 1/12, the teacher's step


def split_of(d_steps: int, grid: tuple[int, ...]) -> tuple[int, int]:
    """d (in 1/12 units) as two smaller grid steps: halves when they are on the grid, else the
    largest grid step below d and the rest (1 = 2/3 + 1/3, 1/2 = 1/3 + 1/6)."""
    if d_steps % 2 == 0 and d_steps // 2 in grid:
        return d_steps // 2, d_steps // 2
    for a in sorted(grid, reverse=True):
        if a < d_steps and d_steps - a in grid:
            return a, d_steps - a
    raise ValueError(f"step {d_steps}/12 cannot be split into two grid steps of {grid}")


def sample_levels(shape, grid: tuple[int, ...], base_share: float, g: torch.Generator,
                  forced: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, d) in 1/12 units per frame: d = the base step with probability base_share, else
    uniform over the larger grid steps (or `forced`); t uniform on the lattice in [d, 12]."""
    larger = torch.tensor(sorted(grid)[1:] or list(grid))  # a one-step grid has only the base
    pick = larger[torch.randint(len(larger), shape, generator=g)]
    d = torch.where(torch.rand(shape, generator=g) < base_share, min(grid), pick)
    if forced is not None:
        d = torch.full(shape, forced)
    t = d + (torch.rand(shape, generator=g) * (LATTICE - d + 1)).floor().long()
    return t.clamp(max=LATTICE), d


def shortcut_distillation(model: LSDModel, clips: dict, cfg: TrainConfig, g: torch.Generator,
                          rollout_now: bool = False, ema: LSDModel | None = None,
                          teacher: LSDModel | None = None, forced_d: int | None = None,
                          reference: LSDModel | None = None, taught: torch.Tensor | None = None,
                          reference_weight: float = 1.0):
    """Returns (inputs, target, weight) for the student; inputs carry `history`. With a
    `reference`, the clips not `taught` target its predictions, and their frames weigh
    `reference_weight` against a taught clip's."""
    dc, dev = cfg.distill, model.codec.latent_mean.device
    grid = tuple(dc.d_grid)
    b, frames = clips["input"].shape[:2]
    with torch.no_grad():
        z_in = latents(model, clips, "z_in", clips["input"], dev)
        z0 = latents(model, clips, "z0", clips["target"], dev)
        every = torch.ones(b, frames, dtype=torch.bool)
        rollout_frames = frames - 1 if rollout_now else 0
        history, t_hist = augmented_history(model, clips, z0, z_in, cfg, g, every, rollout_frames)
        d_hist = torch.zeros(b, frames)
        if cfg.sample.commit == "last_step":
            t_hist = d_hist = torch.full((b, frames), 1 / cfg.sample.steps)
        noise = torch.randn(history.shape, generator=g).to(dev, history.dtype)
        history = add_noise(history, noise, t_hist.to(dev))
    t_steps, d_steps = sample_levels((b, frames), grid, dc.base_share, g, forced_d)
    first_part = torch.zeros(LATTICE + 1, dtype=torch.long)  # d -> d_a (0 for the base step)
    for step in grid:
        if step != min(grid):
            first_part[step] = split_of(step, grid)[0]
    a_steps = first_part[d_steps]
    t, d, d_a = (x.float().to(dev) / LATTICE for x in (t_steps, d_steps, a_steps))
    d_b = d - d_a
    noise = torch.randn(z0.shape, generator=g).to(dev, z0.dtype)
    z_t = add_noise(z0, noise, t)
    hist = (history, t_hist.to(dev), d_hist.to(dev))
    prompts = clips["prompts"]
    inputs = {"z_t": z_t, "z_in": z_in, "t": t, "d": d, "prompts": prompts, "history": hist}
    if reference is not None:
        target = velocity(z0, noise).float()  # a taught clip's; the reference runs on the rest
        kept = torch.ones(b, dtype=torch.bool) if taught is None else ~taught.cpu()
        if kept.any():
            rows = lambda x: x[kept.to(dev)]
            with torch.no_grad():
                target[kept.to(dev)] = reference.denoiser(
                    rows(z_t), rows(z_in), rows(t), rows(d),
                    reference.encode_prompts([p for p, k in zip(prompts, kept) if k]),
                    history=tuple(map(rows, hist))).float()
        weight = torch.where(kept, reference_weight, 1.0)[:, None].expand(b, frames)
        return inputs, target, weight.to(dev)
    with torch.no_grad():
        zero = torch.zeros_like(d)
        v_teacher = teacher.denoiser(z_t, z_in, t, zero, teacher.encode_prompts(prompts), history=hist)
        p = ema.encode_prompts(prompts)
        v_a = ema.denoiser(z_t, z_in, t, d_a, p, history=hist)
        z_mid = z_t - d_a[..., None, None, None] * v_a
        v_b = ema.denoiser(z_mid, z_in, t - d_a, d_b, p, history=hist)
        two_steps = (d_a[..., None, None, None] * v_a + d_b[..., None, None, None] * v_b) / d[..., None, None, None]
        base = (d_steps == min(grid)).to(dev)[..., None, None, None]
        target = torch.where(base, v_teacher.float(), two_steps.float())
    return inputs, target, torch.ones(b, frames, device=dev)
