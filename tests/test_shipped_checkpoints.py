"""The checkpoints committed under checkpoints/: each loads without unpickling, stays under
the repo's size limit, and the no-augmentation twin is the teacher's config but for
history augmentation (so the ablation compares one thing)."""

from pathlib import Path

import pytest
import torch

from lsd.checkpoint import is_checkpoint, read_config
from lsd.models import load
from lsd.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = sorted(p for p in ROOT.iterdir() if p.is_dir()) if ROOT.is_dir() else []
SIZE_LIMIT = 40 * 2**20  # bytes; the repo stays light


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_checkpoint_loads_and_is_small(path):
    assert is_checkpoint(path)
    assert (path / "model.safetensors").stat().st_size < SIZE_LIMIT
    weights = list(load(path).parameters())
    assert weights and all(torch.isfinite(p).all() for p in weights)
    assert read_config(path)["step"] > 0  # trained, not a fresh init


def test_twin_differs_from_the_teacher_only_in_history_augmentation():
    teacher, twin = ROOT / "lsd-tiny-teacher", ROOT / "lsd-tiny-noaug"
    config_a, config_b = read_config(teacher), read_config(twin)
    a = TrainConfig.from_dict(config_a["train"]).to_dict()
    b = TrainConfig.from_dict(config_b["train"]).to_dict()
    assert a["history"]["enabled"] and not b["history"]["enabled"]
    b["history"]["enabled"] = True
    assert a == b
    assert config_a["step"] == config_b["step"]  # the same budget
    # ... and the same codec, taken over with `lsd train --codec-from`
    ca, cb = load(teacher).codec.state_dict(), load(twin).codec.state_dict()
    assert ca and ca.keys() == cb.keys()
    assert all(torch.equal(ca[k], cb[k]) for k in ca)
