"""Structured pruning: the surgery removes exactly the chosen heads and channels, the cut is
counted, every pruned width is aligned, and a pruned checkpoint loads and streams."""

import copy

import pytest
import torch
import torch.nn as nn

from lsd.checkpoint import read_config
from lsd.cli import main
from lsd.config import CodecConfig, DenoiserConfig, ModelConfig, SampleConfig, TextConfig
from lsd.models import LSDModel
from lsd.models.pruning import prune_block
from lsd.stream.engine import Stream
from lsd.train.prune import calibration_batch, plan_pruning, prune_model, step_flops, unit_importance
from test_models import clip_inputs, randomized, small_config


def wide_config() -> ModelConfig:
    """64-wide heads (so heads can go at --align 64) at a size that runs in milliseconds."""
    return ModelConfig(name="test", frame_size=(32, 32), codec=CodecConfig(channels=(64, 64)),
                       text=TextConfig(dim=64, depth=1, heads=1, max_bytes=32, out_dim=64),
                       denoiser=DenoiserConfig(dim=128, depth=2, heads=2, mlp_ratio=4, patch=1, history=2))


def outputs(model: LSDModel, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip pass, and the last frame streamed through the history cache (frame 3:
    past a window of 2)."""
    z_t, z_in, t, d, prompt = clip_inputs(model, frames=4, seed=seed)
    clip = model.denoiser(z_t, z_in, t, d, prompt)
    cache = model.new_cache()
    for i in range(4):
        args = (z_t[:, i:i + 1], z_in[:, i:i + 1], t[:, i:i + 1], d[:, i:i + 1], prompt[:, i:i + 1])
        streamed = model.denoiser(*args, cache=cache, write=True)
        cache.advance()
    return clip, streamed


@torch.no_grad()
def test_pruning_equals_silencing_the_dropped_units():
    model = randomized(LSDModel(small_config(history=2)), seed=3).float()
    hd = model.config.denoiser.head_dim
    silenced = copy.deepcopy(model)
    blk = silenced.denoiser.blocks[1]
    blk.attn.proj.weight[:, 0:hd] = 0  # head 0 of block 1 contributes nothing
    dropped = [3, 17, 40]
    blk.mlp[2].weight[:, dropped] = 0
    prune_block(model, 1, [0], dropped)
    assert model.denoiser.blocks[1].attn.heads == 1 and model.config.denoiser.block_heads == (2, 1)
    assert model.config.denoiser.block_mlp == (256, 253)
    for pruned, reference in zip(outputs(model), outputs(silenced)):
        torch.testing.assert_close(pruned, reference, atol=1e-5, rtol=1e-5)


def test_plan_drops_least_important_per_flop_first():
    model = LSDModel(wide_config())
    heads = [torch.tensor([5.0, 6.0]), torch.tensor([0.001, 7.0])]
    channels = [torch.ones(512), torch.ones(512)]
    drop_heads, drop_chans = plan_pruning(model, heads, channels, 0.01, 64, step_flops(model))
    assert drop_heads == [[], [0]] and drop_chans == [[], []]  # one head is enough for 1%
    channels[0][64:128] = 1e-6  # a cheap MLP chunk now beats every head
    drop_heads, drop_chans = plan_pruning(model, heads, channels, 0.01, 64, step_flops(model))
    assert drop_heads == [[], []] and sorted(drop_chans[0]) == list(range(64, 128))


def test_prune_cuts_the_counted_flops_with_aligned_widths_and_reloads(tmp_path):
    model = randomized(LSDModel(wide_config()), seed=2).float()
    report = prune_model(model, flops_cut=0.35, align=64)
    assert report["flops_cut"] >= 0.35
    assert report["gflops_per_step_after"] == round(step_flops(model) / 1e9, 4)
    for layer in model.denoiser.blocks.modules():
        if isinstance(layer, nn.Linear):
            assert layer.in_features % 64 == 0 and layer.out_features % 64 == 0, layer
    assert report["unaligned"] == [] and model.config.unaligned(64) == []
    model.save(tmp_path / "pruned")
    again = LSDModel.load(tmp_path / "pruned")
    assert again.config.denoiser.block_mlp == model.config.denoiser.block_mlp
    for a, b in zip(outputs(again), outputs(model)):
        torch.testing.assert_close(a, b)
    frame = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy()
    out = Stream(again, "ink wash", SampleConfig(steps=2)).step(frame)
    assert out.shape == frame.shape


def test_prune_refuses_unalignable_heads():
    model = LSDModel(small_config())  # 32-wide heads
    with pytest.raises(ValueError, match="head_dim 32"):
        prune_model(model, 0.35, 64)


def test_prune_command_prunes_then_finetunes_a_student(tmp_path, capsys):
    from lsd.train.distill import distill
    from test_train import small_config as train_config, write_config

    cfg = train_config(optim={"steps": 2}, history={"self_rollout": 0.0},
                       run={"val_every": 2, "checkpoint_every": 2})
    cfg.model = wide_config()
    randomized(LSDModel(cfg.model), seed=1).save(tmp_path / "teacher")
    distill(tmp_path / "teacher", tmp_path / "student", write_config(tmp_path / "d.yaml", cfg),
            progress=False)
    rc = main(["prune", "--checkpoint", str(tmp_path / "student" / "model"), "--out",
               str(tmp_path / "pruned"), "--flops-cut", "0.3", "--finetune-steps", "2",
               "--no-progress", "--json"])
    assert rc == 0
    cfg_out = read_config(tmp_path / "pruned" / "model")
    assert cfg_out["model"]["denoiser"]["block_mlp"] == read_config(tmp_path / "pruned" / "pruned")["prune"]["block_mlp"]
    assert cfg_out["sample"]["shortcut"] is True and cfg_out["step"] == 2
    assert cfg_out["prune"]["block_mlp"] == cfg_out["model"]["denoiser"]["block_mlp"]  # says what it is
    assert cfg_out["prune"]["checkpoint"] == str(tmp_path / "student" / "model")
    assert LSDModel.load(tmp_path / "pruned" / "model").config.denoiser.block_heads
    # it learnt to copy the unpruned student, and what it saved is not the EMA of its start
    train = cfg_out["train"]
    assert train["distill"]["reference"] == str(tmp_path / "student" / "model")
    assert train["optim"]["ema"] == 0.0  # horizon 10 steps at most: 2 steps here


def test_a_student_is_scored_on_its_whole_step_grid_and_its_streaming_history(monkeypatch):
    """The fine-tune trains every grid step, and streaming's history is at level 1/steps
    for a last-step student: importance is measured on exactly those inputs."""
    model = randomized(LSDModel(small_config()))
    model.checkpoint_config = {"sample": {"steps": 3, "shortcut": True, "commit": "last_step"},
                               "train": {"distill": {"d_grid": [1, 2, 4]}}}
    seen = {}
    forward = model.denoiser.forward

    def spy(z_t, z_in, t, d, prompt, history=None, **kw):
        seen.update(d=set((d * 12).round().long().flatten().tolist()), t=t, d_raw=d, history=history)
        return forward(z_t, z_in, t, d, prompt, history=history, **kw)

    monkeypatch.setattr(model.denoiser, "forward", spy)
    unit_importance(model, calibration_batch(model, clips=6, frames=6))
    assert seen["d"] == {1, 2, 4}
    assert torch.all(seen["t"] >= seen["d_raw"] - 1e-6) and torch.all(seen["t"] <= 1)
    _, levels, steps = seen["history"]
    assert torch.allclose(levels, torch.full_like(levels, 1 / 3))
    assert torch.allclose(steps, torch.full_like(steps, 1 / 3))
