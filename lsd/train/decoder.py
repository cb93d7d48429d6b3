"""`lsd decoder`: give a trained model a decoder that also sees the input frame (see
lsd.models.codec) and train that decoder on the model's own rolled-out latents.

The encoder, prompt encoder and denoiser stay as they are, so the latent space and every
rollout are unchanged: only how a finished latent becomes pixels is learnt again. The pairs
come from the streaming rollout itself on training streams (the latents the decoder will
meet live, drift included), decoded against the style's target. A memory style's target
holds per-stream random choices (a palette, decorations) that the model makes its own way,
so for those styles the pair is the target's own latent instead, which teaches the decoder
to keep what a latent says; frame styles get both kinds. A model with a choice input is told
its stream's picks in the rollout as it is live, so a style whose only choice is the picks
(pop_art's palette) gets both kinds too.

A model whose decoder already sees the input has it trained further, from where it is, on
pairs from its denoiser as it is now (one that was trained on after it got its decoder).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import ModelConfig
from ..data import VAL_SEED_START, clip
from ..data.pictures import SEEDS_PER_SPLIT
from ..diffusion import rollout
from ..metrics import psnr, small_details
from ..models import LSDModel, load
from ..precision import STORAGE, autocast, decide
from ..styles import get_style, style_names
from ..styles.picks import null_code, picks_code
from .clips import to_frames, to_uint8

VAL_SEED_OFFSET = 500  # validation worlds apart from lsd bench quality's (offset 100)


def picks_codes(model: LSDModel, seeds: list[int]) -> torch.Tensor | None:
    """The worlds' picks codes (B, K), as a model with a choice input is told them; None
    for a model without one."""
    return torch.from_numpy(np.stack([picks_code(s) for s in seeds])) if model.config.denoiser.choice else None


@torch.no_grad()
def roll_as_streamed(model: LSDModel, cache, z_in: torch.Tensor, seeds: list[int],
                     prompts: list[str], generator: torch.Generator,
                     progress: str | None = None) -> torch.Tensor:
    """Roll `model` on from whatever `cache` holds over z_in (B, T, C, h, w) as a Stream
    samples (its checkpoint's settings), told world seeds' picks where it has a choice
    input; a frame at a time (the same as one call) so that `progress` can name a bar."""
    plain = model.encode_prompts(prompts)  # the prompts' text alone
    prompt = model.denoiser.with_choice(plain, picks_codes(model, seeds))
    sample = model.sample
    # guided as a Stream is: against the prompts told the null code
    unguided = (model.denoiser.with_choice(plain, torch.from_numpy(null_code())[None])
                if sample.guided else None)
    frames = z_in.shape[1]
    return torch.cat([
        rollout(model.denoiser, cache, z_in[:, j:j + 1], prompt, sample, generator, unguided)
        for j in tqdm(range(frames), desc=progress, disable=progress is None, leave=False)], dim=1)


@torch.no_grad()
def look_as_streamed(model: LSDModel, z_in: torch.Tensor, look: str,
                     progress: str | None = None, chunk: int = 32) -> torch.Tensor:
    """Latents of `look` drawn over windows z_in (B, T, C, h, w) as a Stream with seed 0
    draws them from an empty history, `chunk` windows at a time (chunk i from noise seed i)."""
    dtype = next(model.parameters()).dtype
    return torch.cat([roll_as_streamed(model, model.new_cache(), z.to(dtype), [0] * len(z),
                                       [look] * len(z), torch.Generator().manual_seed(i), progress)
                      for i, z in zip(range(0, len(z_in), chunk), z_in.split(chunk))])


@torch.no_grad()
def rolled_out(model: LSDModel, seeds: list[int], styles: list[str], frames: int,
               seed: int, progress: bool = False) -> dict[str, torch.Tensor]:
    """Roll `model` out as it streams (roll_as_streamed) on one world per (seed, style):
    input and target frames (N, T, H, W, 3) uint8 with the sampled latents (N, T, C, h, w)
    and the targets' own latents."""
    size = tuple(model.config.frame_size)
    clips = [clip(s, name, frames, size) for s, name in zip(seeds, styles)]
    inputs = np.stack([c["input"] for c in clips])
    targets = np.stack([c["target"] for c in clips])
    dtype = model.denoiser.embed.weight.dtype
    z_in = model.codec.encode(to_frames(inputs).to(dtype))
    rng = np.random.default_rng(seed)
    prompts = [str(rng.choice(get_style(name).prompts)) for name in styles]
    latents = roll_as_streamed(model, model.new_cache(), z_in, seeds, prompts,
                               torch.Generator().manual_seed(seed),
                               f"rolling out {len(styles)} streams" if progress else None)
    return {"input": torch.from_numpy(inputs), "target": torch.from_numpy(targets),
            "latent": latents.float(), "target_latent": model.codec.encode(to_frames(targets).to(dtype)).float()}


def sampled_pairs_fit(style: str, told: bool) -> bool:
    """Does a rollout's own latent of `style` fit its target? For frame styles, and where
    the rollout was `told` the picks, for styles the input frame and the picks fix
    (Style.path_free: pop_art); not where the target holds a choice the model makes."""
    return get_style(style).path_free if told else get_style(style).kind == "frame"


def training_pairs(rolls: dict[str, torch.Tensor], styles: list[str],
                   told: bool = False) -> dict[str, torch.Tensor]:
    """Flatten rollouts into (latent, input, target) pairs: every style's target latent,
    and the sampled latent where it fits the target (sampled_pairs_fit)."""
    sampled = torch.tensor([sampled_pairs_fit(s, told) for s in styles])
    flat = lambda x, keep=None: (x if keep is None else x[keep]).flatten(0, 1)
    return {"latent": torch.cat([flat(rolls["target_latent"]), flat(rolls["latent"], sampled)]),
            "input": torch.cat([flat(rolls["input"]), flat(rolls["input"], sampled)]),
            "target": torch.cat([flat(rolls["target"]), flat(rolls["target"], sampled)])}


@torch.no_grad()
def decoded_psnr(codec, rolls: dict[str, torch.Tensor]) -> float:
    """Mean PSNR of the decoded sampled latents against their targets (validation: styles
    whose sampled latents fit their targets)."""
    dtype = next(codec.parameters()).dtype
    x = to_frames(rolls["input"].flatten(0, 1).numpy()).to(dtype)
    out = to_uint8(codec.decode(rolls["latent"].flatten(0, 1).to(dtype), x).float())
    return round(float(np.mean([psnr(a, b) for a, b in zip(out, rolls["target"].flatten(0, 1).numpy())])), 2)


def seeing_model(model: LSDModel) -> LSDModel:
    """The same model with a decoder that sees the input frame, its frame branch at zero."""
    cfg = ModelConfig.from_dict(model.config.to_dict())
    cfg.codec.sees_input = True
    seeing = LSDModel(cfg).to(next(model.parameters()).dtype)
    seeing.load_state_dict(model.state_dict(), strict=False)
    seeing.checkpoint_config = model.checkpoint_config
    return seeing


def train_decoder(checkpoint: str, out: str, streams: int = 16, frames: int = 32, steps: int = 3000,
          batch: int = 32, lr: float = 1e-3, val_frames: int = 24, seed: int = 0,
          progress: bool = True, detail_weight: float = 0.0,
          streams_of: dict[str, int] | None = None) -> dict:
    """Write OUT/model: `checkpoint` with a decoder that sees the input, trained on its own rollouts,
    `streams` per style (`streams_of`: style -> streams, for those it names). With
    `detail_weight` w, a pixel's loss counts 1 + w * small_details() of its target."""
    t0 = time.time()
    if min(streams, frames, steps, batch, val_frames) < 1:
        raise ValueError("--streams, --frames and --steps must be at least 1")
    if lr <= 0:
        raise ValueError(f"--lr must be > 0, not {lr}")
    if detail_weight < 0:
        raise ValueError(f"--detail-weight must be >= 0, not {detail_weight}")
    if (Path(out) / "model").exists():
        raise FileExistsError(f"{Path(out) / 'model'} exists: pick another --out")
    precision = decide("cpu")
    model = load(checkpoint, dtype=precision.dtype)  # rolled out in the compute dtype
    if model.config.codec.kind != "conv":
        raise ValueError(f"{checkpoint}: only a conv codec's decoder can see the input")
    names = style_names()
    rng = np.random.default_rng(seed)
    streams_of = streams_of or {}
    unknown = sorted(set(streams_of) - set(names))
    if unknown or min(streams_of.values(), default=1) < 1:
        raise ValueError(f"streams_of: unknown styles {unknown} or a count below 1 in {streams_of}")
    styles = [n for n in names for _ in range(streams_of.get(n, streams))]
    seeds = [int(s) for s in rng.integers(SEEDS_PER_SPLIT, size=len(styles))]
    told, source_sees = model.config.denoiser.choice, model.codec.sees_input
    pairs = training_pairs(rolled_out(model, seeds, styles, frames, seed, progress), styles, told)
    val_styles = [n for n in names if sampled_pairs_fit(n, told)]
    val_seeds = [VAL_SEED_START + VAL_SEED_OFFSET + i for i in range(len(val_styles))]
    val = rolled_out(model, val_seeds, val_styles, val_frames, seed + 1, progress)

    seeing = (model if source_sees else seeing_model(model)).float()
    codec = seeing.codec
    before = decoded_psnr(codec, val)
    trained = [p for n, p in codec.named_parameters() if not n.startswith("encoder.")]
    opt = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(  # 5% warm-up, at least two steps of it
        opt, lr, total_steps=max(steps, 4), pct_start=min(0.5, max(0.05, 2 / steps)))
    g = torch.Generator().manual_seed(seed)
    codec.train()
    losses = []
    bar = tqdm(range(steps), desc="decoder", disable=not progress)
    for _ in bar:
        i = torch.randint(len(pairs["latent"]), (batch,), generator=g)
        x, y = to_frames(pairs["input"][i].numpy()), to_frames(pairs["target"][i].numpy())
        with autocast("cpu", precision):
            recon = codec.decode(pairs["latent"][i], x).float()
        # L1 + MSE, each pixel weighed (1 everywhere without detail_weight)
        w = (1 + detail_weight * torch.from_numpy(small_details(pairs["target"][i].numpy()))[:, None]
             if detail_weight else 1.0)
        err = recon - y
        loss = (w * err.abs()).mean() + (w * err.square()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}")
    codec.eval()
    seeing = seeing.to(precision.dtype)
    after = decoded_psnr(seeing.codec, val)
    report = {"source": str(checkpoint), "streams_per_style": streams, "frames": frames,
              "pairs": len(pairs["latent"]), "steps": steps, "batch": batch, "lr": lr, "seed": seed,
              "detail_weight": detail_weight, **({"streams_of": streams_of} if streams_of else {}),
              "final_loss": round(float(np.mean(losses[-50:])), 4),
              "source_sees_input": source_sees, "told_picks": told,
              "val_psnr_db": {"source_decoder": before, "new_decoder": after},
              **precision.to_dict(), "seconds": round(time.time() - t0, 1)}
    # everything the source says about itself (training, provenance, sampling) still holds
    extra = {k: v for k, v in model.checkpoint_config.items() if k not in ("lsd_version", "model")}
    seeing.save(Path(out) / "model", extra | {"decoder": report}, dtype=STORAGE)
    return {"model": str(Path(out) / "model"), **report}
