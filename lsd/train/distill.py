"""`lsd distill`: a 3-step student from a 12-step teacher, by shortcut distillation, with the
same trainer (and so the same resume, EMA, DDP and validation) as `lsd train`."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import read_config
from ..config import ModelConfig
from .config import TrainConfig
from .trainer import train


def distill(teacher: str | Path, out: str | Path, config: str | Path, resume: bool = False,
            progress: bool = True, device: str | None = None) -> dict:
    cfg = TrainConfig.load(config)
    teacher_config = read_config(teacher)  # the student has the teacher's shape
    cfg.model = ModelConfig.from_dict(teacher_config["model"])
    cfg.objective = "shortcut"
    cfg.distill.teacher = str(teacher)
    cfg.sample.shortcut = True
    return train(cfg, out, resume, progress, device)
