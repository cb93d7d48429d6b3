"""`lsd train` and `lsd distill`: the codec first (a student keeps its teacher's), then the
denoiser and prompt encoder together, with the objective the config names (Diffusion
Forcing for a teacher, shortcut distillation for a student).

Run directory (`--out`):
  codec/      the model after the codec stage (the codec is frozen from then on)
  state/      everything needed to continue: weights, EMA, AdamW moments, step, RNG states
  model/      the EMA model stored in bf16, a checkpoint `lsd.load` reads (what gets shipped)
  log.jsonl   one JSON line per log/validation event
All three directories are written atomically. `--resume` continues from state/ so that the
run ends exactly where an uninterrupted one would (a test kills a run and checks this).
Under torchrun every process trains on its own clips and DDP averages the gradients.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..checkpoint import is_checkpoint, load_checkpoint, recover, save_checkpoint
from ..data.stills import still_frames
from ..models import LSDModel, load
from ..models.grow import grown_state
from ..precision import STORAGE, autocast, decide
from .codec import reconstruction_psnr, train_codec
from .clips import ClipPool
from .config import TrainConfig
from .diffusion_forcing import detail_positions, diffusion_forcing, weighted_mse
from .distributed import Dist, setup, teardown
from .shortcut import shortcut_distillation

VAL_LEVELS = (0.25, 0.5, 0.75)  # fixed noise levels of the validation loss


class Trainable(nn.Module):
    """The parts that learn in the denoiser stage (what DDP wraps): the predicted velocity,
    the prompts moved by the picks `code` where the model has a choice input."""

    def __init__(self, model: LSDModel):
        super().__init__()
        self.denoiser, self.text = model.denoiser, model.text

    def forward(self, z_t, z_in, t, d, prompts, history=None, code=None):
        prompt = self.denoiser.with_choice(self.text(prompts), code)
        return self.denoiser(z_t, z_in, t, d, prompt, history=history)


def _param_groups(trainable: nn.Module, oc) -> list[dict]:
    """AdamW groups: everything at the schedule's rate, a choice input's projection (if
    any) at optim.choice_lr_scale times it."""
    named = list(trainable.named_parameters())
    is_code = lambda name: name.startswith("denoiser.choice_embed.")
    code = [p for n, p in named if is_code(n)]
    rest = [p for n, p in named if not is_code(n)]
    groups = [{"params": rest, "lr_scale": 1.0}]
    return groups + ([{"params": code, "lr_scale": oc.choice_lr_scale}] if code else [])


def lr_at(step: int, cfg) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    progress = min(1.0, step / max(1, cfg.steps))
    return cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


# -----------------------------------------------------------------------------
# run state <-> tensors


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return {f"optim.{i}.{k}": v for i, s in opt.state_dict()["state"].items() for k, v in s.items()}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("optim."):
            _, i, k = name.split(".", 2)
            state.setdefault(int(i), {})[k] = v.cpu() if k == "step" else v  # AdamW keeps step on the CPU
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


def _gather_states(g: torch.Generator, d: Dist) -> list[torch.Tensor]:
    state = g.get_state()
    if d.world == 1:
        return [state]
    out = [torch.empty_like(state) for _ in range(d.world)]
    torch.distributed.all_gather(out, state)
    return out


# -----------------------------------------------------------------------------


class Trainer:
    def __init__(self, cfg: TrainConfig, out: str | Path, resume: bool = False,
                 progress: bool = True, device: str | None = None, codec_from: str | None = None,
                 init_from: str | None = None, provenance: dict | None = None):
        """provenance: more config sections every saved model carries (lsd prune's record)."""
        self.cfg, self.out, self.progress = cfg, Path(out), progress
        self.codec_from = codec_from
        self.codec_source: str | None = None  # the checkpoint whose codec the model starts with
        self.provenance: dict = dict(provenance or {})
        self.dist = setup(device)
        self.dev = self.dist.device
        self.precision = decide(self.dev)  # autocast's dtype (fp32: none) and the teacher's
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        state_dir = self.out / "state"
        if self.dist.main:  # a save killed mid-way is finished, its leftovers cleared
            for saved in ("codec", "state", "model"):
                recover(self.out / saved)
        self.dist.barrier()
        if not resume and is_checkpoint(state_dir):
            raise FileExistsError(f"{self.out} already holds a run; pass --resume to continue it "
                                  f"or choose another --out")
        if resume and not is_checkpoint(state_dir):
            if is_checkpoint(self.out / "model"):  # the denoiser stage had saved: never restart it
                raise FileNotFoundError(f"{self.out} has a model/ but no state/ to resume it from; "
                                        f"refusing to start the training again from step 0")
            if not is_checkpoint(self.out / "codec"):
                raise FileNotFoundError(f"nothing to resume in {self.out} (no state/ or codec/)")
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.run.seed)  # same initial weights in every process
        self.model = LSDModel(cfg.model).to(self.dev)
        self.teacher = self.reference = None
        if cfg.objective == "shortcut":  # the student starts as the teacher (or distill.init)
            frozen = lambda path: load(path, self.dev).requires_grad_(False) if path else None
            self.teacher, self.reference = frozen(cfg.distill.teacher), frozen(cfg.distill.reference)
            if not (self.teacher or self.reference) or not (cfg.distill.init or self.teacher):
                raise ValueError("shortcut distillation needs distill.teacher (or both "
                                 "distill.init and distill.reference)")
            self._start_from(load(cfg.distill.init, self.dev) if cfg.distill.init else self.teacher,
                             cfg.distill.init or cfg.distill.teacher)
            for frozen_model in (self.teacher, self.reference):  # they only run: as fast as can be
                if frozen_model is not None:
                    frozen_model.to(self.precision.dtype)
            self.codec_source = cfg.distill.teacher if self.teacher is not None else None
        elif init_from:  # continued training: a new schedule from a finished model's weights
            start = load(init_from, self.dev)
            # the same model, or one grown deeper (anything else is refused)
            self.model.load_state_dict(grown_state(start, self.model))
            self.codec_source = str(init_from)
            self.provenance |= {"init_from": {"path": str(init_from),
                                             "step": start.checkpoint_config.get("step"),
                                             "init_from": start.checkpoint_config.get("init_from")}}
        self.g = torch.Generator().manual_seed(cfg.run.seed * 1000 + self.dist.rank)
        self.step = 0
        self.loss: float | None = None  # the mean of the last steps' losses (kept in state/)

    def _start_from(self, start: LSDModel, source: str) -> None:
        if start.config != self.cfg.model:
            raise ValueError(f"model config differs from the one in {source}")
        self.model.load_state_dict({k: v.float() for k, v in start.state_dict().items()})

    # -- logging ---------------------------------------------------------------------------

    def log(self, **event) -> None:
        if self.dist.main:
            with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")

    # -- stage 1: codec ---------------------------------------------------------------------

    def codec_stage(self) -> None:
        path = self.out / "codec"
        if not is_checkpoint(path) and self.codec_from:
            if self.dist.main:  # an ablation twin shares its original's codec exactly
                self._copy_codec(self.codec_from, path)
            self.dist.barrier()
        elif not is_checkpoint(path) and self.codec_source:
            if self.dist.main:  # a student or a continued run keeps the codec it started with
                self.log(stage="codec", codec_from=self.codec_source)
                self.model.save(path, {"train": self.cfg.to_dict(), "codec_from": self.codec_source})
            self.dist.barrier()
        elif not is_checkpoint(path):
            if self.dist.main:
                cc = self.cfg.codec
                size = tuple(self.cfg.model.frame_size)
                frames = still_frames(cc.pool_frames, size, "train", self.cfg.run.seed)
                t0 = time.time()
                losses = train_codec(self.model.codec, frames, cc.steps, cc.batch, cc.lr,
                                     self.cfg.run.seed, self.progress)
                val = still_frames(cc.val_frames, size, "val", self.cfg.run.seed)
                score = reconstruction_psnr(self.model.codec, val)
                self.log(stage="codec", steps=cc.steps, seconds=round(time.time() - t0, 1),
                         final_loss=sum(losses[-20:]) / len(losses[-20:]), val_psnr_db=score)
                self.model.save(path, {"train": self.cfg.to_dict(), "codec_val_psnr_db": score})
            self.dist.barrier()
        tensors, _ = load_checkpoint(path, self.dev)
        codec = {k[len("codec."):]: v for k, v in tensors.items() if k.startswith("codec.")}
        self.model.codec.load_state_dict(codec)
        self.model.codec.requires_grad_(False).eval()

    def _copy_codec(self, source: str, path: Path) -> None:
        donor = load(source, "cpu")
        if donor.config.codec != self.cfg.model.codec:
            raise ValueError(f"{source}'s codec ({donor.config.codec}) is not the one "
                             f"this config trains ({self.cfg.model.codec})")
        self.model.codec.load_state_dict({k: v.float() for k, v in donor.codec.state_dict().items()})
        self.log(stage="codec", codec_from=str(source))
        self.model.save(path, {"train": self.cfg.to_dict(), "codec_from": str(source)})

    # -- stage 2: denoiser ------------------------------------------------------------------

    def _save(self, opt) -> None:
        states = _gather_states(self.g, self.dist)
        if not self.dist.main:
            return
        tensors = {f"weights.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in self.ema.state_dict().items()}
        tensors |= _optimizer_tensors(opt)
        tensors |= {f"rng.train.{r}": s for r, s in enumerate(states)}
        meta = {"step": self.step, "loss": self.loss, "world": self.dist.world,
                "train": self.cfg.to_dict(), **self.provenance}
        save_checkpoint(self.out / "state", tensors, meta)
        # model/ is what runs: the EMA weights stored in bf16 (state/ keeps them in full
        # precision; loading casts to the compute dtype)
        self.ema.save(self.out / "model", {"train": self.cfg.to_dict(), "step": self.step,
                                           "sample": dataclasses.asdict(self.cfg.sample),
                                           **self.provenance},
                      dtype=STORAGE)

    def _restore(self, opt) -> None:
        tensors, meta = load_checkpoint(self.out / "state", self.dev)
        self.model.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("weights.")})
        self.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        _load_optimizer(opt, tensors)
        key = f"rng.train.{self.dist.rank}"
        if meta.get("world") == self.dist.world and key in tensors:
            self.g.set_state(tensors[key].cpu())
        else:  # a different process count: the data order cannot be the old one anyway
            self.g.manual_seed(self.cfg.run.seed * 1000 + self.dist.rank + int(meta["step"]))
        self.step, self.loss = int(meta["step"]), meta.get("loss")

    def objective(self, model: LSDModel, clips: dict, cfg: TrainConfig, g: torch.Generator,
                  rollout_now: bool = False, **forced):
        if cfg.objective == "shortcut":
            return shortcut_distillation(model, clips, cfg, g, rollout_now, self.ema,
                                         self.teacher, reference=self.reference, **forced)
        return diffusion_forcing(model, clips, cfg, g, rollout_now)

    @torch.no_grad()
    def validate(self, clips: dict) -> dict:
        """EMA model, held-out clips, fixed noise: the teacher at fixed noise levels without a
        history prefix; a student per step size."""
        g = torch.Generator().manual_seed(1234)
        cfg = copy.deepcopy(self.cfg)
        cfg.history.prefix, cfg.optim.t_uniform = 0.0, 0.0  # fixed levels, no prefix
        out = {}
        if cfg.objective == "shortcut":
            for d in cfg.distill.d_grid:
                with self._autocast():
                    inputs, target, weight = self.objective(self.ema, clips, cfg, g, forced_d=d)
                    pred = Trainable(self.ema)(**inputs)
                out[f"val_loss_d{d}of12"] = round(float(weighted_mse(pred, target, weight)), 5)
            return out
        for level in VAL_LEVELS:
            cfg.optim.t_mean, cfg.optim.t_std = math.log(level / (1 - level)), 0.0
            with self._autocast():
                inputs, target, weight = diffusion_forcing(self.ema, clips, cfg, g)
                pred = Trainable(self.ema)(**inputs)
            out[f"val_loss_t{level}"] = round(float(weighted_mse(pred, target, weight)), 5)
        return out

    def _encoder(self):
        """The frozen codec's encoder as the training step runs it (same device and
        autocast), for the pool to precompute latents with."""
        def encode(frames: torch.Tensor) -> torch.Tensor:
            with torch.no_grad(), self._autocast():
                return self.model.codec.encode(frames.to(self.dev))
        return encode

    def _autocast(self):
        return autocast(self.dev, self.precision)

    def denoiser_stage(self) -> dict:
        cfg, d = self.cfg, self.dist
        oc = cfg.optim
        trainable = Trainable(self.model)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        opt = torch.optim.AdamW(_param_groups(trainable, oc), lr=oc.lr, betas=tuple(oc.betas),
                                weight_decay=oc.weight_decay)
        if is_checkpoint(self.out / "state"):
            self._restore(opt)
        wrapped = DistributedDataParallel(trainable) if d.world > 1 else trainable
        per_rank = max(1, oc.batch // d.world)
        size = tuple(cfg.model.frame_size)
        encode = self._encoder()
        pool = ClipPool(cfg.data.pool_clips // d.world or 1, cfg.data.clip_frames, size, "train",
                        cfg.run.seed, d.rank, cfg.data.refresh_share, self.progress and d.main,
                        encode, cfg.data.style_weights)
        pool.advance_to(self.step // cfg.data.refresh_every)
        val_clips = None
        if d.main:
            val_pool = ClipPool(cfg.data.val_clips, cfg.data.clip_frames, size, "val", cfg.run.seed,
                                encode=encode)
            val_clips = val_pool.sample(cfg.data.val_clips, torch.Generator().manual_seed(0))
        ema_params = list(Trainable(self.ema).parameters())
        params = list(trainable.parameters())
        bar = tqdm(total=oc.steps, initial=self.step, desc="train", disable=not (self.progress and d.main))
        recent: list[float] = []
        t_start, steps_start = time.time(), self.step
        try:
            while self.step < oc.steps:
                if self.step and self.step % cfg.data.refresh_every == 0:
                    pool.advance_to(self.step // cfg.data.refresh_every)
                lr = lr_at(self.step, oc)
                for group in opt.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                clips = pool.sample(per_rank, self.g)
                rollout_now = bool(torch.rand((), generator=self.g) < cfg.history.self_rollout)
                with self._autocast():
                    inputs, target, weight = self.objective(
                        self.model, clips, cfg, self.g, rollout_now and cfg.history.enabled)
                    pred = wrapped(**inputs)
                positions = (detail_positions(clips["target"], target.shape[-2:], oc.detail_weight)
                             .to(target.device) if oc.detail_weight > 0 else None)
                loss = weighted_mse(pred, target, weight, positions)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, oc.grad_clip)
                opt.step()
                with torch.no_grad():
                    for pe, p in zip(ema_params, params):
                        pe.lerp_(p, 1 - oc.ema)
                self.step += 1
                recent = (recent + [loss.item()])[-50:]
                self.loss = sum(recent) / len(recent)
                bar.update(1)
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", lr=f"{lr:.1e}")
                if self.step % cfg.run.log_every == 0:
                    self.log(step=self.step, loss=round(d.mean(sum(recent) / len(recent)), 5),
                             lr=lr, grad_norm=round(float(grad_norm), 4),
                             sec_per_step=round((time.time() - t_start) / (self.step - steps_start), 3))
                if d.main and (self.step % cfg.run.val_every == 0 or self.step == oc.steps):
                    self.log(step=self.step, **self.validate(val_clips))
                if self.step % cfg.run.checkpoint_every == 0 or self.step == oc.steps:
                    self._save(opt)
        except KeyboardInterrupt:
            self._save(opt)  # Ctrl-C keeps the work: --resume picks up here
            raise
        finally:
            bar.close()
        # a finished run resumed takes no step: its last loss is the one state/ kept
        summary = {"steps": self.step,
                   "final_loss": None if self.loss is None else round(self.loss, 5),
                   **self.precision.to_dict(),
                   "seconds": round(time.time() - t_start, 1)}
        if d.main and val_clips is not None:
            summary.update(self.validate(val_clips))
        return summary


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter's bytes, in order: equal digests = identical weights."""
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
          device: str | None = None, codec_from: str | None = None,
          init_from: str | None = None, provenance: dict | None = None) -> dict:
    trainer = Trainer(cfg, out, resume, progress, device, codec_from, init_from, provenance)
    try:
        trainer.codec_stage()
        summary = trainer.denoiser_stage()
        if trainer.dist.world > 1:  # lets anyone check that the processes stayed in sync
            digest = weights_digest(trainer.model)
            (trainer.out / f"weights-rank{trainer.dist.rank}.sha256").write_text(digest + "\n")
        summary.update(out=str(trainer.out), model=str(trainer.out / "model"),
                       world=trainer.dist.world)
        return summary
    finally:
        teardown()
