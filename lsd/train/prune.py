"""`lsd prune`: cut a checkpoint's FLOPs by a share, keeping every matrix aligned, then
fine-tune the pruned student to do what the unpruned one does at every step size.

Importance is measured, not guessed: a few training clips run through the denoiser the way
streaming does (the history as streaming writes it; t and d over the student's step grid),
and each unit is scored by what it adds to the residual stream, E||gate * (its output)||^2:
a head through its slice of the output projection, an MLP channel as its activation times
its column of the second layer.
Units then go greedily, least importance per FLOP first, until the FLOP cut is reached, a
head at a time and MLP channels `align` at a time (each block keeps >= 1 head and `align`
channels). The cut is checked with torch's FLOP counter on the pruned model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import is_checkpoint, read_config
from ..data.paired import clip
from ..data.pictures import seed_base
from ..diffusion import add_noise
from ..models import LSDModel, load
from ..models.cost import count_flops, streaming_step
from ..models.pruning import prune_block
from ..precision import STORAGE
from ..styles import get_style, style_names
from .config import TrainConfig
from .shortcut import LATTICE, sample_levels
from .trainer import train

CALIBRATION_CLIPS = 8
CALIBRATION_FRAMES = 6


def calibration_batch(model: LSDModel, clips: int = CALIBRATION_CLIPS,
                      frames: int = CALIBRATION_FRAMES) -> dict:
    """Training-split clips, one style each in turn, as latents and prompts."""
    size = tuple(model.config.frame_size)
    names = style_names()
    data = [clip(seed_base("train") + 7919 * i, names[i % len(names)], frames, size)
            for i in range(clips)]
    to_x = lambda key: torch.from_numpy(np.stack([c[key] for c in data])).permute(0, 1, 4, 2, 3).float() / 255
    dtype = model.denoiser.embed.weight.dtype
    with torch.no_grad():
        encode = lambda x: model.codec.encode(x.flatten(0, 1).to(dtype)).unflatten(0, x.shape[:2])
        z_in, z0 = encode(to_x("input")), encode(to_x("target"))
    prompts = [get_style(names[i % len(names)]).prompts[0] for i in range(clips)]
    return {"z_in": z_in, "z0": z0, "prompts": prompts}


@torch.no_grad()
def unit_importance(model: LSDModel, batch: dict, seed: int = 0) -> tuple[list, list]:
    """Per block: head scores (heads,) and MLP channel scores (hidden,)."""
    den, sample = model.denoiser, model.sample
    steps, shortcut = sample.steps, sample.shortcut
    g = torch.Generator().manual_seed(seed)
    z0, z_in = batch["z0"], batch["z_in"]
    b, f = z0.shape[:2]
    if shortcut:  # a student is fine-tuned on its whole step grid: score units on all of it
        grid = model.checkpoint_config.get("train", {}).get("distill", {}).get("d_grid")
        grid = tuple(grid or [LATTICE // steps])
        t_steps, d_steps = sample_levels((b, f), grid, 1 / len(grid), g)  # d uniform on the grid
        t, d = t_steps.to(z0.dtype) / LATTICE, d_steps.float() / LATTICE
    else:  # the levels the teacher's sampler visits: t = 1, 1 - 1/steps, ...
        t = (torch.randint(1, steps + 1, (b, f), generator=g) / steps).to(z0.dtype)
        d = torch.zeros(b, f)
    z_t = add_noise(z0, torch.randn(z0.shape, generator=g).to(z0.dtype), t)
    # the history as streaming writes it: clean, or (last-step commits) at level 1/steps
    level = 1 / steps if sample.commit == "last_step" else 0.0
    hist_level = torch.full((b, f), level)
    history = add_noise(z0, torch.randn(z0.shape, generator=g).to(z0.dtype), hist_level.to(z0.dtype))
    heads = [torch.zeros(blk.attn.heads) for blk in den.blocks]
    channels = [torch.zeros(blk.mlp[0].out_features) for blk in den.blocks]
    gates: dict[int, tuple[float, float]] = {}
    hooks = []
    for i, blk in enumerate(den.blocks):
        def on_ada(_m, _inp, out, i=i):
            _, _, g1, _, _, g2 = out.float().chunk(6, dim=-1)
            gates[i] = (g1.pow(2).mean().item(), g2.pow(2).mean().item())

        def on_proj(m, inp, _out, i=i):
            o = inp[0].float()  # (B, L, heads * hd)
            h = heads[i].numel()
            w = m.weight.float().view(m.out_features, h, -1)  # (dim, heads, hd)
            contrib = torch.einsum("blhd,ehd->blhe", o.unflatten(-1, (h, -1)), w)
            heads[i] += contrib.pow(2).sum(-1).mean((0, 1))

        def on_act(_m, _inp, out, i=i):
            w2 = den.blocks[i].mlp[2].weight.float()  # (dim, hidden)
            channels[i] += out.float().pow(2).mean((0, 1, 2)) * w2.pow(2).sum(0)
        hooks += [blk.ada.register_forward_hook(on_ada), blk.attn.proj.register_forward_hook(on_proj),
                  blk.mlp[1].register_forward_hook(on_act)]
    try:
        den(z_t, z_in, t, d, model.encode_prompts(batch["prompts"]),
            history=(history, hist_level, hist_level if shortcut else torch.zeros(b, f)))
    finally:
        for hk in hooks:
            hk.remove()
    return ([s * gates[i][0] for i, s in enumerate(heads)],
            [s * gates[i][1] for i, s in enumerate(channels)])


def plan_pruning(model: LSDModel, head_scores: list, channel_scores: list, flops_cut: float,
                 align: int, total_flops: int) -> tuple[list[list[int]], list[list[int]]]:
    """Which heads and channels to drop per block so that one streaming step's FLOPs fall by
    `flops_cut`: greedy on importance per FLOP saved."""
    cfg = model.config
    den, n, k = cfg.denoiser, cfg.tokens_per_frame, cfg.denoiser.history
    hd = den.head_dim
    if hd % align:
        raise ValueError(f"head_dim {hd} is not a multiple of --align {align}: heads cannot be "
                         f"dropped without breaking the alignment")
    # one query frame of n tokens against (k + 1) n keys: qkv, proj and the two attention matmuls
    head_flops = 2 * n * den.dim * 3 * hd + 2 * n * hd * den.dim + 4 * n * (k + 1) * n * hd
    chunk_flops = 4 * n * den.dim * align
    heads_left = [list(torch.argsort(s).tolist()) for s in head_scores]  # least important first
    chans_left = [list(torch.argsort(s).tolist()) for s in channel_scores]
    drop_heads = [[] for _ in head_scores]
    drop_chans = [[] for _ in channel_scores]
    for i, c in enumerate(chans_left):
        if len(c) % align:
            raise ValueError(f"block {i} has {len(c)} MLP channels, not a multiple of --align {align}")
    saved = 0
    while saved < flops_cut * total_flops:
        options = []
        for i in range(len(head_scores)):
            if len(heads_left[i]) > 1:
                options.append((float(head_scores[i][heads_left[i][0]]) / head_flops, "head", i))
            if len(chans_left[i]) > align:
                chunk = chans_left[i][:align]
                options.append((float(channel_scores[i][chunk].sum()) / chunk_flops, "mlp", i))
        if not options:
            raise ValueError(f"cannot cut {flops_cut:.0%} of the FLOPs and keep a head and "
                             f"{align} MLP channels in every block")
        _, kind, i = min(options)
        if kind == "head":
            drop_heads[i].append(heads_left[i].pop(0))
            saved += head_flops
        else:
            drop_chans[i] += chans_left[i][:align]
            del chans_left[i][:align]
            saved += chunk_flops
    return drop_heads, drop_chans


@torch.no_grad()
def step_flops(model: LSDModel) -> int:
    return count_flops(streaming_step(model)[0])


def prune_model(model: LSDModel, flops_cut: float, align: int) -> dict:
    """Prune `model` (fp32) in place; returns what was done and the counted FLOPs."""
    before = step_flops(model)
    params_before = model.parameter_counts()["denoiser"]
    head_scores, channel_scores = unit_importance(model, calibration_batch(model))
    drop_heads, drop_chans = plan_pruning(model, head_scores, channel_scores, flops_cut,
                                          align, before)
    for i, (h, c) in enumerate(zip(drop_heads, drop_chans)):
        prune_block(model, i, h, c)
    after = step_flops(model)
    den = model.config.denoiser
    return {"gflops_per_step_before": round(before / 1e9, 4),
            "gflops_per_step_after": round(after / 1e9, 4),
            "flops_cut": round(1 - after / before, 4),
            "denoiser_params_before": params_before,
            "denoiser_params_after": model.parameter_counts()["denoiser"],
            "block_heads": list(den.block_heads), "block_mlp": list(den.block_mlp),
            "align": align, "unaligned": model.config.unaligned(align)}


def prune(checkpoint: str | Path, out: str | Path, flops_cut: float = 0.35, align: int = 64,
          finetune_steps: int = 0, config: str | Path | None = None, resume: bool = False,
          progress: bool = True, device: str | None = None) -> dict:
    """Prune a distilled student into out/pruned, then fine-tune it into out/model (the
    trainer's layout, resumable) for `finetune_steps` with the shortcut objective."""
    if not 0 < flops_cut < 1:
        raise ValueError(f"--flops-cut must be between 0 and 1, not {flops_cut}")
    out, pruned_dir = Path(out), Path(out) / "pruned"
    source = read_config(checkpoint)
    if resume and is_checkpoint(pruned_dir):
        report = read_config(pruned_dir)["prune"]
    else:
        if is_checkpoint(pruned_dir):
            raise FileExistsError(f"{pruned_dir} exists; pass --resume or choose another --out")
        model = load(checkpoint).float()
        report = prune_model(model, flops_cut, align) | {"checkpoint": str(checkpoint)}
        extra = {k: source[k] for k in ("sample", "train") if k in source}
        model.save(pruned_dir, extra | {"prune": report}, dtype=STORAGE)
    report = dict(report, pruned=str(pruned_dir), model=str(pruned_dir))
    if finetune_steps > 0:
        if config:
            cfg = TrainConfig.load(config)
        elif source.get("train", {}).get("objective") == "shortcut":
            cfg = TrainConfig.from_dict(source["train"])
        else:
            raise ValueError(f"{checkpoint} is not a distilled student (lsd distill); pass "
                             f"--config with a shortcut config to fine-tune it")
        cfg.objective, cfg.sample.shortcut = "shortcut", True
        cfg.model = LSDModel.load(pruned_dir).config
        # start from the pruned weights, learn to do what the unpruned student does
        cfg.distill.init, cfg.distill.reference = str(pruned_dir), str(checkpoint)
        # the saved model is the EMA: its horizon must sit well inside the fine-tune, or the
        # pruned weights it starts from dominate it (0.999 over 300 steps kept 74% of them)
        cfg.optim = dataclasses.replace(cfg.optim, steps=finetune_steps,
                                        warmup=min(cfg.optim.warmup, finetune_steps // 10),
                                        ema=min(cfg.optim.ema, max(0.0, 1 - 10 / finetune_steps)))
        # the fine-tuned model says what was pruned, wherever it is copied
        record = {k: v for k, v in report.items() if k not in ("pruned", "model")}
        summary = train(cfg, out, resume and is_checkpoint(out / "state"), progress, device,
                        provenance={"prune": record})
        report.update(finetune=summary, model=str(out / "model"))
    return report
