"""Training: the objective's bookkeeping, history damage, an exact resume after a real kill,
and 2-process DDP on 127.0.0.1 with weights that agree."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from lsd.checkpoint import load_checkpoint
from lsd.data.pictures import SEEDS_PER_SPLIT, seed_base
from lsd.data.stills import MAX_START
from lsd.models import LSDModel
from lsd.train.config import TrainConfig
from lsd.train.diffusion_forcing import _own_rollout, detail_positions, diffusion_forcing, weighted_mse
from lsd.train.history_damage import DamageConfig, blocks, damage, garbage, warp
from lsd.train.trainer import lr_at, train
from test_models import randomized

SMALL = {
    "model": {"frame_size": [32, 32], "codec": {"channels": [64, 64]},
              "text": {"dim": 64, "depth": 1, "heads": 1, "max_bytes": 32, "out_dim": 64},
              "denoiser": {"dim": 64, "depth": 2, "heads": 1, "patch": 1, "history": 2}},
    "codec": {"steps": 3, "batch": 4, "pool_frames": 8, "val_frames": 2},
    "data": {"clip_frames": 4, "pool_clips": 8, "refresh_every": 3, "val_clips": 2},
    "optim": {"steps": 12, "batch": 4, "warmup": 2},
    "history": {"self_rollout": 0.5, "rollout_steps": 2},
    "run": {"log_every": 2, "val_every": 6, "checkpoint_every": 2, "threads": 2},
}


def small_config(**section_overrides) -> TrainConfig:
    data = yaml.safe_load(yaml.safe_dump(SMALL))
    for section, values in section_overrides.items():
        data.setdefault(section, {}).update(values)
    return TrainConfig.from_dict(data)


def write_config(path, cfg: TrainConfig):
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def run_weights(out) -> dict[str, torch.Tensor]:
    tensors, meta = load_checkpoint(out / "state")
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}, meta


def lsd_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "lsd.cli", *args]


# -- the objective ------------------------------------------------------------------------------


def clips_batch(b=3, t=4, size=32):
    g = torch.Generator().manual_seed(0)
    return {"input": torch.rand(b, t, 3, size, size, generator=g),
            "target": torch.rand(b, t, 3, size, size, generator=g),
            "prompts": (["ink wash", "thermal camera", "sepia"] * b)[:b],
            "styles": (["ink_wash", "thermal", "sepia"] * b)[:b]}


@pytest.mark.parametrize("enabled", [True, False])
def test_history_prefix_carries_no_loss_and_its_level_is_told(enabled):
    cfg = small_config(history={"prefix": 1.0, "enabled": enabled, "context_noise": 0.3})
    model = LSDModel(cfg.model)
    inputs, target, weight = diffusion_forcing(model, clips_batch(), cfg, torch.Generator().manual_seed(1))
    prefix = weight == 0
    assert prefix.any() and (~prefix).any()
    assert (prefix[:, 0]).all() and not prefix[:, -1].any()  # a prefix, then frames to learn
    history_t = inputs["t"][prefix]
    if enabled:
        assert (history_t <= 0.3).all() and (history_t > 0).any()
    else:  # the ablation: clean ground-truth history
        assert (history_t == 0).all()
        z0 = model.codec.encode(clips_batch()["target"])
        torch.testing.assert_close(inputs["z_t"][prefix], z0[prefix])
    assert target.shape == inputs["z_t"].shape


def test_a_blanked_prefix_is_pure_noise_told_as_such():
    """history.blank 1: every prefix frame is at level 1 (pure noise, nothing to copy), the
    frames after it are drawn as without blanking."""
    t = {}
    for blank in (0.0, 1.0):
        cfg = small_config(history={"prefix": 1.0, "blank": blank})
        model = LSDModel(cfg.model)
        inputs, _, weight = diffusion_forcing(model, clips_batch(), cfg, torch.Generator().manual_seed(1))
        prefix = weight == 0
        t[blank] = inputs["t"]
    assert (t[1.0][prefix] == 1).all() and (t[0.0][prefix] <= 0.3).all()
    torch.testing.assert_close(t[1.0][~prefix], t[0.0][~prefix])
    with pytest.raises(ValueError, match="history.blank must be in"):
        small_config(history={"blank": 1.5})


def test_memory_styles_can_keep_their_target_history_when_others_get_the_rollout():
    clips = clips_batch() | {"styles": ["pop_art", "ink_wash", "star_glitter"],
                             "prompts": ["pop art", "ink wash", "glitter stars"]}
    z_t, model = {}, LSDModel(small_config().model)
    for memory in (True, False):
        cfg = small_config(history={"prefix": 1.0, "rollout_memory_styles": memory})
        inputs, _, weight = diffusion_forcing(model, clips, cfg, torch.Generator().manual_seed(1),
                                              rollout_now=True)
        z_t[memory] = inputs["z_t"]
    prefix = weight == 0
    assert prefix.all(1).sum() < len(prefix) and prefix.any(1).all()
    same = lambda i: torch.equal(z_t[True][i][prefix[i]], z_t[False][i][prefix[i]])
    assert same(1)  # the frame style's clip: its own rollout either way
    assert not same(0) and not same(2)  # memory styles: the damaged target instead
    torch.testing.assert_close(z_t[True][~prefix], z_t[False][~prefix])  # the frames it learns


def test_a_primed_rollout_follows_the_clips_first_history_frame():
    # randomized: a new model's zero-initialised blocks would ignore the history altogether
    model = randomized(LSDModel(small_config().model)).eval()
    g = torch.Generator().manual_seed(0)
    c, side = model.config.codec.latent_channels, 32 // model.config.codec.factor
    z_in = torch.randn(2, 3, c, side, side, generator=g)
    first, other = torch.randn(2, c, side, side, generator=g), torch.randn(2, c, side, side, generator=g)
    run = lambda start, n=3: _own_rollout(model, z_in[:, :n], ["pop art", "glitter stars"], 2,
                                          torch.Generator().manual_seed(1), None, start)
    primed = run(first)
    assert primed.shape == z_in.shape and torch.equal(primed[:, 0], first)
    assert not torch.allclose(primed[:, 1:], run(other)[:, 1:])  # the rest follows the first
    assert torch.equal(run(first, n=1), first[:, None])  # a one-frame prefix is the frame alone
    plain = run(None)
    assert plain.shape == primed.shape and not torch.allclose(plain[:, 1:], primed[:, 1:])


def test_damage_kinds_change_frames_within_bounds():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32, generator=g)
    y = garbage(x, g, most=0.3)
    changed = (y != x).any(1).float().mean((1, 2))
    assert (changed <= 0.3 + 0.05).all() and changed.max() > 0.05
    w = warp(x, g)
    assert w.shape == x.shape and 0 < (w - x).abs().mean() < 0.5
    b = blocks(x, g)
    assert b.std() < x.std()  # blocks average detail away
    none = damage(x, DamageConfig(0, 0, 0, 0, 0), g)
    assert torch.equal(none, x)
    every = damage(x, DamageConfig(1, 1, 1, 1, 1), g)
    assert (every - x).abs().mean(dim=(1, 2, 3)).min() > 0.01


def test_recolour_remaps_every_frame():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16, generator=g)
    y = damage(x, DamageConfig(0, 0, 0, 0, 0, recolour=1.0), g)
    moved = (y - x).abs().mean(dim=(1, 2, 3))
    assert moved.min() > 0.02
    # a remap, not noise: each output channel follows one input channel (times a gain)
    for out, inp in zip(y, x):
        for c in range(3):
            corr = [float(torch.corrcoef(torch.stack([out[c].flatten(), inp[j].flatten()]))[0, 1])
                    for j in range(3)]
            assert max(corr) > 0.95
    # recolour 0 draws nothing: older configs replay their damage exactly
    a = damage(x, DamageConfig(), torch.Generator().manual_seed(1))
    b = damage(x, DamageConfig(recolour=0.0), torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_detail_positions_weigh_the_latent_positions_holding_small_bright_spots():
    targets = torch.full((1, 2, 3, 32, 32), 0.2)
    targets[0, 0, :, 3:5, 11:13] = 0.9  # a star in latent position (0, 1) of frame 0
    targets[0, 1, :, 16:32, 16:32] = 0.9  # a large bright area in frame 1
    w = detail_positions(targets, (4, 4), 8.0)
    assert w.shape == (1, 2, 1, 4, 4)
    assert w[0, 0, 0, 0, 1] == 9.0 and (w[0, 0].sum() - 9.0) == 15.0  # the star's position alone
    assert w[0, 1].max() == 1.0  # an area is no detail


def test_weighted_mse_counts_each_position_as_often_as_it_is_weighed():
    pred, target = torch.zeros(2, 3, 4, 2, 2), torch.zeros(2, 3, 4, 2, 2)
    pred[0, 1, :, 0, 0] = 1.0  # one position of one frame is wrong
    frames = torch.ones(2, 3)
    plain = weighted_mse(pred, target, frames)
    assert torch.isclose(plain, torch.tensor(1 / 4 / 6))
    positions = torch.ones(2, 3, 1, 2, 2)
    assert torch.equal(weighted_mse(pred, target, frames, positions), plain)
    positions[0, 1, 0, 0, 0] = 5.0
    assert torch.isclose(weighted_mse(pred, target, frames, positions), 5 * plain)
    positions[0, 1, 0, 0, 0], positions[1, 1, 0, 1, 1] = 1.0, 5.0  # a right position: no change
    assert torch.equal(weighted_mse(pred, target, frames, positions), plain)


def test_lr_warms_up_then_decays():
    cfg = small_config(optim={"steps": 100, "warmup": 10, "lr": 1.0}).optim
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] and max(lrs) == pytest.approx(lrs[9], rel=0.05)
    assert lrs[-1] < 0.15


def test_config_file_errors_name_the_key(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(SMALL))
    bad["optim"]["stepz"] = 3
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        TrainConfig.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="stepz"):
        TrainConfig.load(tmp_path / "bad.yaml")


@pytest.mark.parametrize("name", ["tiny", "tiny-noaug"])
def test_shipped_configs_load(name):
    from pathlib import Path

    cfg = TrainConfig.load(Path(__file__).parent.parent / "configs" / f"{name}.yaml")
    assert cfg.history.enabled == (name == "tiny")
    assert cfg.sample.steps == 12


def test_configs_differ_only_in_augmentation():
    from pathlib import Path

    root = Path(__file__).parent.parent / "configs"
    a = TrainConfig.load(root / "tiny.yaml").to_dict()
    b = TrainConfig.load(root / "tiny-noaug.yaml").to_dict()
    a["history"]["enabled"] = b["history"]["enabled"]
    assert a == b
    # the continued run changes only its schedule, its clips' seed and the context level
    more = TrainConfig.load(root / "tiny-more.yaml").to_dict()
    a = TrainConfig.load(root / "tiny.yaml").to_dict()
    changed = {k for k in a if a[k] != more[k]}
    assert changed == {"optim", "run", "sample"}
    assert {k for k in a["run"] if a["run"][k] != more["run"][k]} == {"seed"}
    assert {k for k in a["sample"] if a["sample"][k] != more["sample"][k]} == {"context_t"}
    # a choice input on the teacher whose decoder sees the input, pop_art drawn more often
    choice = TrainConfig.load(root / "tiny-choice.yaml").to_dict()
    assert {k for k in more if more[k] != choice[k]} == {"model", "data", "optim", "run"}
    assert choice["model"]["denoiser"] == {**more["model"]["denoiser"], "choice": True}
    assert choice["model"]["codec"] == {**more["model"]["codec"], "sees_input": True}
    assert choice["data"] == {**more["data"], "style_weights": {"pop_art": 5}}
    # the polish continued with recoloured history, three times
    polish = TrainConfig.load(root / "tiny-choice-polish.yaml").to_dict()
    hold = TrainConfig.load(root / "tiny-choice-hold.yaml").to_dict()
    assert {k for k in polish if polish[k] != hold[k]} == {"history", "optim", "run"}
    assert hold["history"] == {**polish["history"],
                               "damage": {**polish["history"]["damage"], "recolour": 0.3}}
    assert {k for k in polish["optim"] if polish["optim"][k] != hold["optim"][k]} == {"steps", "lr"}
    assert {k for k in polish["run"] if polish["run"][k] != hold["run"][k]} == {"seed"}
    more_hold = TrainConfig.load(root / "tiny-choice-hold-more.yaml").to_dict()
    assert {k for k in hold if hold[k] != more_hold[k]} == {"history", "run"}
    assert more_hold["history"] == {**hold["history"],
                                    "damage": {**hold["history"]["damage"], "recolour": 0.5}}
    again = TrainConfig.load(root / "tiny-choice-hold-again.yaml").to_dict()
    assert {k for k in more_hold if more_hold[k] != again[k]} == {"run"}
    assert {k for k in more_hold["run"] if more_hold["run"][k] != again["run"][k]} == {"seed"}


def test_a_config_states_what_differs_from_its_base(tmp_path):
    from pathlib import Path

    (tmp_path / "a.yaml").write_text((Path(__file__).parent.parent / "configs/tiny.yaml").read_text())
    (tmp_path / "b.yaml").write_text("base: a.yaml\nmodel: {denoiser: {depth: 3}}\n"
                                     "data: {style_weights: {pop_art: 2}}\nrun: {seed: 7}\n")
    (tmp_path / "c.yaml").write_text("base: b.yaml\ndata: {style_weights: {sepia: 3}}\n")
    a, b, c = (TrainConfig.load(tmp_path / f"{n}.yaml") for n in "abc")
    assert b.model.denoiser.depth == 3 and b.model.denoiser.dim == a.model.denoiser.dim  # merged
    assert b.run.seed == 7 and b.run.log_every == a.run.log_every
    assert c.data.style_weights == {"sepia": 3}  # a mapping of values is replaced, not merged
    assert c.model.denoiser.depth == 3  # through two bases
    (tmp_path / "bad.yaml").write_text("base: a.yaml\noptim: {stepz: 3}\n")
    with pytest.raises(ValueError, match="stepz"):  # the strict check still sees every key
        TrainConfig.load(tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="leads back to itself"):
        TrainConfig.load(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("base: none.yaml\n")
    with pytest.raises(FileNotFoundError, match="none.yaml"):
        TrainConfig.load(tmp_path / "orphan.yaml")


def only(name: str) -> dict:
    from lsd.styles import style_names

    return {n: float(n == name) for n in style_names()}


def test_style_weights_skew_the_draw_and_none_keeps_the_old_one():
    from lsd.train.clips import ClipPool

    plain = ClipPool(1, 2, (16, 16), seed=2)
    skewed = ClipPool(1, 2, (16, 16), seed=2, style_weights={"pop_art": 10.0})
    plain_styles = [plain._spec(k)[1] for k in range(400)]
    skewed_styles = [skewed._spec(k)[1] for k in range(400)]
    assert 0.03 < plain_styles.count("pop_art") / 400 < 0.16  # 1 in 11
    assert 0.4 < skewed_styles.count("pop_art") / 400 < 0.7  # 10 in 20
    # a pool's seeds, starts and (unweighted) styles are what they were before weights existed
    rng = np.random.default_rng([2, 0, 0, 7])
    seed = int(rng.integers(SEEDS_PER_SPLIT))
    style = plain.styles[int(rng.integers(len(plain.styles)))]
    assert plain._spec(7) == (seed_base("train") + seed, style, int(rng.integers(MAX_START)))


@pytest.mark.parametrize("data, message", [({"style_weights": {"pop_artt": 2}}, "pop_artt"),
                                           ({"style_weights": {"pop_art": -1}}, ">= 0"),
                                           ({"far_first": 0.5}, "far_first")])
def test_bad_data_settings_are_refused_by_name(data, message):
    with pytest.raises(ValueError, match=message):
        small_config(data=data)


def test_a_negative_detail_weight_is_refused():
    with pytest.raises(ValueError, match="optim.detail_weight must be >= 0"):
        small_config(optim={"detail_weight": -1.0})


def test_uniform_share_reaches_the_top_levels_and_off_replays_the_old_draws():
    clips = clips_batch(b=256, t=4, size=16)
    levels = {}
    for share in (0.0, 1.0):
        cfg = small_config(history={"prefix": 0.0}, optim={"t_uniform": share})
        inputs, _, _ = diffusion_forcing(LSDModel(cfg.model), clips, cfg, torch.Generator().manual_seed(3))
        levels[share] = inputs["t"]
    top = lambda t: float((t > 0.9).float().mean())
    assert top(levels[0.0]) < 0.03 and 0.07 < top(levels[1.0]) < 0.13  # logit-normal: 1.4%
    # share 0 draws exactly what the logit-normal alone draws (older runs resume the same)
    from lsd.diffusion import sample_t_logit_normal
    torch.testing.assert_close(levels[0.0], sample_t_logit_normal((256, 4), generator=torch.Generator().manual_seed(3)))


# -- the trainer --------------------------------------------------------------------------------


def test_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(tmp_path):
    cfg = small_config()
    straight = tmp_path / "straight"
    summary = train(cfg, straight, progress=False)
    assert summary["steps"] == 12
    assert (straight / "model" / "model.safetensors").is_file()
    log = [yaml.safe_load(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert any("val_loss_t0.5" in e for e in log) and any(e.get("stage") == "codec" for e in log)

    again = train(cfg, straight, resume=True, progress=False)  # finished: no step to take
    assert again["steps"] == 12 and again["final_loss"] == summary["final_loss"] is not None

    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copytree(straight / "codec", killed / "codec")  # same codec stage, saves time
    config = write_config(tmp_path / "run.yaml", cfg)
    proc = subprocess.Popen(lsd_cmd("train", "--config", str(config), "--out", str(killed),
                                    "--no-progress"), stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        cfg_file = killed / "state" / "config.yaml"
        if cfg_file.is_file() and yaml.safe_load(cfg_file.read_text())["step"] >= 4:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, meta = run_weights(killed)
    assert 4 <= meta["step"] < 12, "the run was not interrupted mid-way"

    with pytest.raises(FileExistsError):
        train(cfg, killed, progress=False)  # never silently overwrite a run
    train(cfg, killed, resume=True, progress=False)
    a, meta_a = run_weights(straight)
    b, meta_b = run_weights(killed)
    assert meta_a["step"] == meta_b["step"] == 12
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_never_starts_a_run_again_whose_state_is_gone(tmp_path):
    """A run whose denoiser stage had saved (model/) but whose state/ is lost is refused on
    --resume, not trained again from step 0; a state/ swap cut short is finished first."""
    cfg = small_config()
    out = tmp_path / "run"
    model = LSDModel(cfg.model)
    model.save(out / "codec")
    model.save(out / "model")
    with pytest.raises(FileNotFoundError, match="no state/"):
        train(cfg, out, resume=True, progress=False)
    # killed between the swap's renames: state/ is .state.old-TAG, the new one .state.tmp-TAG
    model.save(out / ".state.old-0123456789ab", {"step": 3})
    model.save(out / ".state.tmp-0123456789ab", {"step": 4})
    model.save(out / ".state.tmp-ba9876543210", {"step": 5})  # an earlier save, never swapped
    from lsd.train.trainer import Trainer

    Trainer(cfg, out, resume=True, progress=False)
    assert load_checkpoint(out / "state")[1]["step"] == 4
    assert sorted(p.name for p in out.iterdir()) == ["codec", "model", "state"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_keeps_weights_identical(tmp_path):
    cfg = small_config(optim={"steps": 4, "batch": 4}, run={"threads": 1, "checkpoint_every": 2,
                                                            "val_every": 4, "log_every": 2})
    config = write_config(tmp_path / "ddp.yaml", cfg)
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "-m", "lsd.cli", "train", "--config", str(config), "--out", str(out), "--no-progress"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    digests = [(out / f"weights-rank{r}.sha256").read_text() for r in range(2)]
    assert digests[0] == digests[1]
    _, meta = run_weights(out)
    assert meta["step"] == 4 and meta["world"] == 2
    # the weights did move: training happened, not just a broadcast of the initial weights
    torch.manual_seed(cfg.run.seed)
    init = LSDModel(cfg.model)
    trained, _ = run_weights(out)
    moved = [k for k, v in init.denoiser.state_dict().items()
             if not torch.equal(v, trained[f"weights.denoiser.{k}"])]
    assert moved


# -- shortcut distillation -------------------------------------------------------------------


def test_step_splits_and_levels_stay_on_the_lattice():
    from lsd.train.shortcut import LATTICE, sample_levels, split_of

    grid = (1, 2, 4, 6, 8, 12)
    assert [split_of(d, grid) for d in grid[1:]] == [(1, 1), (2, 2), (4, 2), (4, 4), (6, 6)]
    t, d = sample_levels((2000,), grid, 0.25, torch.Generator().manual_seed(0))
    assert ((d >= 1) & (t >= d) & (t <= LATTICE)).all()  # a step never overshoots t = 0
    assert 0.2 < (d == 1).float().mean() < 0.3 and set(d.tolist()) == set(grid)


def test_shortcut_target_is_the_mean_of_two_half_steps():
    from lsd.train.shortcut import shortcut_distillation
    from test_models import randomized

    cfg = small_config()
    cfg.objective = "shortcut"
    torch.manual_seed(0)
    teacher = randomized(LSDModel(cfg.model), seed=1)
    ema = randomized(LSDModel(cfg.model), seed=2)
    clips = clips_batch()
    with torch.no_grad():
        inputs, target, weight = shortcut_distillation(ema, clips, cfg, torch.Generator().manual_seed(3),
                                                       ema=ema, teacher=teacher, forced_d=2)
        z_t, z_in, t, d, hist = (inputs[k] for k in ("z_t", "z_in", "t", "d", "history"))
        p = ema.encode_prompts(clips["prompts"])
        half = d / 2
        v1 = ema.denoiser(z_t, z_in, t, half, p, history=hist)
        v2 = ema.denoiser(z_t - half[..., None, None, None] * v1, z_in, t - half, half, p, history=hist)
        assert torch.allclose(d, torch.full_like(d, 2 / 12))
        torch.testing.assert_close(target, (v1 + v2) / 2, atol=1e-5, rtol=1e-4)
        # the base step's target is the teacher's own velocity (d = 0 to the teacher)
        inputs, target, _ = shortcut_distillation(ema, clips, cfg, torch.Generator().manual_seed(3),
                                                  ema=ema, teacher=teacher, forced_d=1)
        v_teacher = teacher.denoiser(inputs["z_t"], inputs["z_in"], inputs["t"],
                                     torch.zeros_like(inputs["d"]),
                                     teacher.encode_prompts(clips["prompts"]), history=inputs["history"])
        torch.testing.assert_close(target, v_teacher, atol=1e-5, rtol=1e-4)
    assert (weight == 1).all() and target.abs().mean() > 0.01


def test_with_a_reference_the_target_is_its_velocity_at_every_step_size():
    """Pruning's fine-tune: the pruned model copies the unpruned student at (t, d)."""
    from lsd.train.shortcut import shortcut_distillation
    from test_models import randomized

    cfg = small_config()
    cfg.objective = "shortcut"
    student = randomized(LSDModel(cfg.model), seed=1)
    pruned = randomized(LSDModel(cfg.model), seed=2)
    clips = clips_batch()
    with torch.no_grad():
        inputs, target, weight = shortcut_distillation(
            pruned, clips, cfg, torch.Generator().manual_seed(3), ema=pruned, reference=student)
        want = student.denoiser(inputs["z_t"], inputs["z_in"], inputs["t"], inputs["d"],
                                student.encode_prompts(clips["prompts"]), history=inputs["history"])
    assert len(inputs["d"].unique()) > 1  # several step sizes in one batch, each copied
    torch.testing.assert_close(target, want)
    assert (weight == 1).all() and target.abs().mean() > 0.01


def test_a_taught_clip_targets_its_data_and_the_reference_runs_on_the_rest_alone():
    """`lsd learn`: a clip in the taught look targets the data's velocity; the reference runs
    on the other clips only and gives them what it gives them in the whole batch; their
    frames weigh as told."""
    from lsd.train.shortcut import shortcut_distillation
    from test_models import randomized

    cfg = small_config()
    cfg.objective = "shortcut"
    student = randomized(LSDModel(cfg.model), seed=1)
    pruned = randomized(LSDModel(cfg.model), seed=2)
    clips, taught = clips_batch(), torch.tensor([True, False, False])
    calls = []
    student.denoiser.register_forward_hook(lambda m, args, out: calls.append(len(out)))
    with torch.no_grad():
        inputs, target, weight = shortcut_distillation(
            pruned, clips, cfg, torch.Generator().manual_seed(3), reference=student, taught=taught,
            reference_weight=2.5)
        want = student.denoiser(inputs["z_t"], inputs["z_in"], inputs["t"], inputs["d"],
                                student.encode_prompts(clips["prompts"]), history=inputs["history"])
        z0 = pruned.codec.encode(clips["target"].flatten(0, 1)).unflatten(0, (3, 4))
    assert calls[0] == 2  # the reference saw the two old clips, not the taught one
    assert weight.shape == (3, 4) and (weight[taught] == 1).all() and (weight[~taught] == 2.5).all()
    torch.testing.assert_close(target[~taught], want[~taught], atol=1e-5, rtol=1e-4)
    t = inputs["t"][taught][..., None, None, None]
    torch.testing.assert_close(target[taught], (inputs["z_t"][taught] - z0[taught]) / t,
                               atol=1e-4, rtol=1e-3)  # z_t = (1 - t) z0 + t noise; v = noise - z0
    assert not torch.allclose(target[taught], want[taught], atol=1e-2)


@pytest.mark.parametrize("commit", ["clean", "last_step"])
def test_student_history_is_noised_to_the_level_it_is_told(commit):
    """The history rows are noised to the level the student is told: a random context level
    (clean commit) or the last step's 1/steps with that step size (last-step commit)."""
    from lsd.train.shortcut import shortcut_distillation

    no_damage = {k: 0.0 for k in ("blur", "colour", "warp", "blocks", "garbage")}
    cfg = small_config(sample={"steps": 3, "shortcut": True, "commit": commit},
                       history={"damage": no_damage})
    model = LSDModel(cfg.model)
    clips = clips_batch()
    with torch.no_grad():
        inputs, _, _ = shortcut_distillation(model, clips, cfg, torch.Generator().manual_seed(3),
                                             ema=model, teacher=model)
        history, t_hist, d_hist = inputs["history"]
        z0 = model.codec.encode(clips["target"].flatten(0, 1)).unflatten(0, (3, 4))
    if commit == "last_step":
        assert torch.allclose(t_hist, torch.full_like(t_hist, 1 / 3)) and torch.equal(d_hist, t_hist)
    else:
        assert t_hist.max() <= cfg.history.context_noise and t_hist.std() > 0 and not d_hist.any()
    # history = (1 - t) z0 + t * noise: what it implies for the noise is unit, fresh noise
    t = t_hist[..., None, None, None]
    noise = ((history - (1 - t) * z0) / t)[t_hist > 0.05]
    assert 0.8 < noise.std() < 1.2
    assert torch.corrcoef(torch.stack([noise.flatten(), z0[t_hist > 0.05].flatten()]))[0, 1].abs() < 0.1


def test_distill_trains_a_shortcut_student_from_the_teacher(tmp_path):
    from lsd.checkpoint import read_config
    from lsd.train.distill import distill
    from test_models import randomized

    cfg = small_config(optim={"steps": 4}, history={"self_rollout": 0.0},
                       run={"val_every": 4, "checkpoint_every": 4})
    torch.manual_seed(0)
    randomized(LSDModel(cfg.model), seed=1).save(tmp_path / "teacher")
    summary = distill(tmp_path / "teacher", tmp_path / "student",
                      write_config(tmp_path / "d.yaml", cfg), progress=False)
    assert summary["steps"] == 4 and "val_loss_d4of12" in summary
    sample = read_config(tmp_path / "student" / "model")["sample"]
    assert sample["shortcut"] is True
    teacher, _ = load_checkpoint(tmp_path / "teacher")
    student, _ = run_weights(tmp_path / "student")
    assert torch.equal(teacher["codec.encoder.1.weight"], student["weights.codec.encoder.1.weight"])
    moved = [k for k, v in teacher.items() if k.startswith("denoiser.")
             and not torch.equal(v, student[f"weights.{k}"])]
    assert moved  # the student learned; the codec stayed the teacher's


def test_codec_from_gives_the_run_the_donor_codec_and_refuses_another_shape(tmp_path):
    from test_models import randomized

    cfg = small_config(optim={"steps": 2}, history={"enabled": False},
                       run={"val_every": 2, "checkpoint_every": 2})
    torch.manual_seed(99)  # a codec unlike the one the run would initialise
    randomized(LSDModel(cfg.model), seed=3).save(tmp_path / "donor")
    train(cfg, tmp_path / "twin", progress=False, codec_from=str(tmp_path / "donor"))
    donor, _ = load_checkpoint(tmp_path / "donor")
    twin, _ = run_weights(tmp_path / "twin")
    codec_keys = [k for k in donor if k.startswith("codec.")]
    assert codec_keys and all(torch.equal(donor[k], twin[f"weights.{k}"]) for k in codec_keys)
    log = [yaml.safe_load(line) for line in (tmp_path / "twin" / "log.jsonl").read_text().splitlines()]
    codec_events = [e for e in log if e.get("stage") == "codec"]
    assert codec_events == [{"stage": "codec", "codec_from": str(tmp_path / "donor")}]  # none trained

    other = small_config(model={"codec": {"channels": [32, 64]}})
    LSDModel(other.model).save(tmp_path / "other")
    with pytest.raises(ValueError, match="codec"):
        train(cfg, tmp_path / "refused", progress=False, codec_from=str(tmp_path / "other"))


def test_init_from_continues_from_the_checkpoints_weights_and_records_it(tmp_path):
    from test_models import randomized

    cfg = small_config(optim={"steps": 2, "lr": 1e-9}, history={"enabled": False},
                       run={"val_every": 2, "checkpoint_every": 2})
    torch.manual_seed(98)  # weights unlike those the run would initialise
    randomized(LSDModel(cfg.model), seed=5).save(tmp_path / "start", {"step": 40})
    train(cfg, tmp_path / "more", progress=False, init_from=str(tmp_path / "start"))
    start, _ = load_checkpoint(tmp_path / "start")
    more, meta = run_weights(tmp_path / "more")
    # a near-zero learning rate: every weight (denoiser, prompt encoder, codec) is the start's
    assert all(torch.allclose(v, more[f"weights.{k}"], atol=1e-6) for k, v in start.items())
    fresh = LSDModel(cfg.model).state_dict()
    assert not torch.allclose(fresh["denoiser.out.weight"], start["denoiser.out.weight"])
    assert meta["init_from"] == {"path": str(tmp_path / "start"), "step": 40, "init_from": None}
    shipped = yaml.safe_load((tmp_path / "more" / "model" / "config.yaml").read_text())
    assert shipped["init_from"]["step"] == 40 and shipped["step"] == 2

    # a deeper config grows the start model: its blocks first, the new one after them
    deeper = cfg.to_dict()
    deeper["model"]["denoiser"]["depth"] = 3
    deeper = TrainConfig.from_dict(deeper)
    train(deeper, tmp_path / "grown", progress=False, init_from=str(tmp_path / "start"))
    grown, meta = run_weights(tmp_path / "grown")
    assert all(torch.allclose(v, grown[f"weights.{k}"], atol=1e-6)
               for k, v in start.items() if k != "denoiser.age_bias")
    torch.testing.assert_close(grown["weights.denoiser.age_bias"][:2], start["denoiser.age_bias"], atol=1e-6, rtol=0)
    assert "weights.denoiser.blocks.2.ada.1.weight" in grown and meta["init_from"]["step"] == 40

    other = small_config(model={"denoiser": {"dim": 32}})
    LSDModel(other.model).save(tmp_path / "other")
    with pytest.raises(ValueError, match="model config differs"):
        train(cfg, tmp_path / "refused", progress=False, init_from=str(tmp_path / "other"))
