"""Training configuration: one YAML file (configs/tiny.yaml) read into these dataclasses.
Unknown keys are errors, like the model config's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import ModelConfig, SampleConfig, build_dataclass, load_yaml, plain
from ..styles import style_names
from .history_damage import DamageConfig


OBJECTIVES = ("diffusion_forcing", "shortcut")


@dataclass
class CodecTrainConfig:
    steps: int = 3000
    batch: int = 32
    lr: float = 2e-3
    pool_frames: int = 6000  # random stills (inputs and styled targets) to train on
    val_frames: int = 300


@dataclass
class DataConfig:
    clip_frames: int = 8  # T: frames per training clip
    pool_clips: int = 1200  # clips held in memory
    refresh_every: int = 200  # steps between replacing part of the pool with new clips
    refresh_share: float = 0.1
    val_clips: int = 32  # held-out clips for the validation loss
    # how often each style is drawn, relative to 1 for a style not named (empty: all equal)
    style_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        unknown = sorted(set(self.style_weights) - set(style_names()))
        if unknown:
            raise ValueError(f"data.style_weights: unknown style(s) {', '.join(unknown)}; "
                             f"known: {', '.join(style_names())}")
        if any(not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0
               for w in self.style_weights.values()):
            raise ValueError(f"data.style_weights: weights must be numbers >= 0, got {self.style_weights}")


@dataclass
class OptimConfig:
    steps: int = 5000
    batch: int = 16  # clips per step (over all processes)
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: int = 200
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema: float = 0.999
    t_mean: float = 0.0  # logit-normal noise levels: sigmoid(N(t_mean, t_std))
    t_std: float = 1.0
    # share of frames whose level is uniform in [0, 1] instead: the logit-normal almost never
    # draws t near 1, where every sampling run starts
    t_uniform: float = 0.0
    # a choice input's projection starts at zero and each pick's row learns only from the
    # clips with that pick: it gets this multiple of the learning rate
    choice_lr_scale: float = 1.0
    # share of clips told no picks (picks.null_code), so that the model also learns the
    # branch that classifier-free guidance on the code compares with (sample.choice_guidance)
    choice_dropout: float = 0.0
    # each latent position's loss counts 1 + this x how much its target pixels hold a small
    # bright detail (diffusion_forcing.detail_positions): star_glitter's stars, thin lines
    detail_weight: float = 0.0


@dataclass
class HistoryConfig:
    """History augmentation. A clip gets a history prefix with probability `prefix`: its
    first frames stand for already generated output, carry no loss, and the frames after
    them must be right anyway. With `enabled` the prefix is damaged (pixel damage, context
    noise at a level the model is told, or the model's own rollout); without, it is the
    clean target (the no-augmentation ablation)."""
    enabled: bool = True
    prefix: float = 0.75
    context_noise: float = 0.3  # prefix frames get a noise level uniform in [0, this]
    damage: DamageConfig = field(default_factory=DamageConfig)
    self_rollout: float = 0.25  # share of steps whose prefix is the model's own rollout
    rollout_steps: int = 3  # Euler steps of that rollout (cheaper than the 12 of sampling)
    # a memory style's target holds per-stream random choices (a palette, where the stars
    # are) that the model's own rollout makes differently: a rolled-out history then
    # teaches it to ignore the choice its history holds. false: those clips keep the
    # damaged target as history
    rollout_memory_styles: bool = True
    # the rollout starts from the clip's first history frame (the damaged target, written
    # into the history as an output would be) instead of an empty history: its frames
    # then carry on the target's choices (its stars, its palette) as the model's own
    # copies of them, each a little off, and the frames after them must be the target's
    # again: the model learns to restore what its own copies lose, not just to copy them
    rollout_primed: bool = False
    # share of clips whose prefix is blanked to pure noise (told t = 1): the frame after it
    # has nothing to copy a choice from and must make it (from the picks, with a choice
    # input), as a stream's first frame must; without blanking only a clip's frame 0 does
    blank: float = 0.0


@dataclass
class DistillConfig:
    """Shortcut distillation (objective: shortcut): step sizes in twelfths."""
    teacher: str = ""  # the teacher checkpoint directory (lsd distill --teacher)
    init: str = ""  # the student's starting weights (a pruned student); empty: the teacher's
    d_grid: tuple[int, ...] = (1, 2, 4, 6, 8, 12)  # 1/12 1/6 1/3 1/2 2/3 1
    base_share: float = 0.25  # frames trained on the teacher's own step (d = 1/12)
    # a finished student to copy at every (t, d) (pruning's fine-tune: the unpruned student);
    # empty: the shortcut targets above
    reference: str = ""


@dataclass
class RunConfig:
    seed: int = 0
    log_every: int = 10
    val_every: int = 250
    checkpoint_every: int = 100
    threads: int = 0  # torch threads per process; 0 = torch's default


@dataclass
class TrainConfig:
    objective: str = "diffusion_forcing"  # or "shortcut" (distillation from a teacher)
    model: ModelConfig = field(default_factory=ModelConfig)
    codec: CodecTrainConfig = field(default_factory=CodecTrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if self.objective == "shortcut" and self.model.denoiser.choice:
            raise ValueError("shortcut distillation of a model with a choice input "
                             "(model.denoiser.choice) is not supported yet")
        if not 0 <= self.history.blank <= 1:
            raise ValueError(f"history.blank must be in [0, 1], not {self.history.blank}")
        if self.optim.choice_lr_scale <= 0:
            raise ValueError(f"optim.choice_lr_scale must be > 0, not {self.optim.choice_lr_scale}")
        if not 0 <= self.optim.choice_dropout < 1:
            raise ValueError(f"optim.choice_dropout must be in [0, 1), not {self.optim.choice_dropout}")
        if self.optim.detail_weight < 0:
            raise ValueError(f"optim.detail_weight must be >= 0, not {self.optim.detail_weight}")
        if self.sample.choice_guidance != 1.0 and not self.model.denoiser.choice:
            raise ValueError("sample.choice_guidance needs a choice input (model.denoiser.choice)")

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return build_dataclass(cls, data, "config")

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            return cls.from_dict(load_yaml(path, cls))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
