"""The checkpoints committed under checkpoints/: each loads without unpickling, stays under
the repo's size limit; the no-augmentation twin is the 5,000-step teacher's config but for
history augmentation (so the ablation compares one thing), and the shipped teacher is that
teacher continued by configs/tiny-more.yaml, given a decoder that sees the input by
`lsd decoder`, then taught the told picks by the configs/tiny-choice*.yaml chain (the last
three stages with recoloured history)."""

from pathlib import Path

import pytest
import torch

from lsd.checkpoint import is_checkpoint, read_config
from lsd.config import ModelConfig
from lsd.models import load
from lsd.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "checkpoints"
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
    teacher, twin = ROOT / "lsd-tiny-teacher-5k", ROOT / "lsd-tiny-noaug"
    config_a, config_b = read_config(teacher), read_config(twin)
    a = TrainConfig.from_dict(config_a["train"]).to_dict()
    b = TrainConfig.from_dict(config_b["train"]).to_dict()
    assert a["history"]["enabled"] and not b["history"]["enabled"]
    b["history"]["enabled"] = True
    assert a == b
    assert config_a["step"] == config_b["step"]  # the same budget
    # ... and the same codec, taken over with `lsd train --codec-from`
    assert_same_codec(teacher, twin)


def assert_same_codec(a: Path, b: Path, encoder_only: bool = False) -> None:
    decoding = ("decoder.", "frame_") if encoder_only else ()  # else: the whole codec
    ca, cb = ({k: v for k, v in load(p).codec.state_dict().items() if not k.startswith(decoding)}
              for p in (a, b))
    assert ca and ca.keys() == cb.keys()
    assert all(torch.equal(ca[k], cb[k]) for k in ca)


# the told-picks chain (configs/tiny-choice*.yaml), last stage first; its first stage
# continued the teacher of configs/tiny-more.yaml, its decoder made to see the input
CHOICE_CHAIN = ("tiny-choice-hold-again", "tiny-choice-hold-more", "tiny-choice-hold",
                "tiny-choice-polish", "tiny-choice-mix", "tiny-choice-focus", "tiny-choice-blank",
                "tiny-choice-more", "tiny-choice")


def provenance(config: dict) -> list[dict]:
    """The init_from chain of a checkpoint's config, latest first."""
    chain, link = [], config.get("init_from")
    while link:
        chain.append(link)
        link = link.get("init_from")
    return chain


def test_shipped_teacher_is_the_5000_step_one_continued_by_the_repos_configs():
    """5,000 steps of tiny.yaml, 2,500 of tiny-more.yaml, `lsd decoder`'s decoder, then the
    told-picks chain. A checkpoint keeps only its last stage's config (checked whole); the
    init_from chain keeps every earlier stage's step count (checked against its config)."""
    first, shipped = read_config(ROOT / "lsd-tiny-teacher-5k"), read_config(ROOT / "lsd-tiny-teacher")
    train_config = lambda c: TrainConfig.from_dict(c["train"]).to_dict()
    assert train_config(first) == TrainConfig.load(REPO / "configs/tiny.yaml").to_dict()
    chain = [TrainConfig.load(REPO / f"configs/{name}.yaml") for name in CHOICE_CHAIN]
    chain.append(TrainConfig.load(REPO / "configs/tiny-more.yaml"))
    assert train_config(shipped) == chain[0].to_dict()
    steps = [shipped["step"]] + [link["step"] for link in provenance(shipped)]
    assert steps == [c.optim.steps for c in chain] + [first["step"]] and first["step"] == 5000
    model = ModelConfig.from_dict(shipped["model"])
    assert model.codec.sees_input and model.denoiser.choice  # lsd decoder's, told picks
    model.codec.sees_input = model.denoiser.choice = False
    assert model == ModelConfig.from_dict(first["model"])  # nothing else in the model changed
    sample = train_config(shipped)["sample"]  # runs as its config says (keys added since: defaults)
    assert {**sample, **shipped["sample"]} == sample
    assert_same_codec(ROOT / "lsd-tiny-teacher-5k", ROOT / "lsd-tiny-teacher", encoder_only=True)


def test_shipped_pruned_student_is_the_student_pruned_by_half_and_says_so():
    pruned, student = read_config(ROOT / "lsd-tiny-pruned"), read_config(ROOT / "lsd-tiny")
    record = pruned["prune"]
    assert record["checkpoint"] == "checkpoints/lsd-tiny" and record["flops_cut"] > 0.5
    assert pruned["model"]["denoiser"]["block_mlp"] == record["block_mlp"]
    assert all(width % record["align"] == 0 for width in record["block_mlp"])
    assert pruned["sample"].items() >= student["sample"].items()  # streamed as the student is
    assert_same_codec(ROOT / "lsd-tiny", ROOT / "lsd-tiny-pruned")  # only the denoiser is cut


@pytest.mark.parametrize("dtype,name", [("float32", "lsd-tiny-pruned"), ("bfloat16", "lsd-tiny")])
def test_the_default_checkpoint_is_the_one_this_cpu_keeps_up_with(monkeypatch, dtype, name):
    from lsd.stream.runner import default_checkpoint

    monkeypatch.setenv("LSD_DTYPE", dtype)
    assert default_checkpoint().name == name
    assert default_checkpoint("cuda").name == "lsd-tiny"
