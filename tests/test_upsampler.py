"""The upsampler: a fresh one draws exactly the stretched output (and a fresh look head
adds nothing), its gains put back the detail the model's resize took, streams draw at --out-size, and `lsd upsampler` trains it
and nothing else."""

import dataclasses

import numpy as np
import pytest
import torch

from lsd.config import UpsamplerConfig
from lsd.io import read_frames
from lsd.cli import main
from lsd.models import LSDModel
from lsd.models.upsampler import Upsampler, output_size, resize, resized_window
from lsd.stream import Stream
from lsd.train.upsampler import train_upsampler
from test_models import randomized, small_config


def test_output_size_keeps_the_aspect_on_multiples_of_4():
    assert output_size((720, 1280), 256) == (256, 456)
    assert output_size((480, 640), 512) == (512, 684)
    assert output_size((128, 128), 256) == (256, 256)


def test_a_window_of_a_stretch_is_that_window_of_the_whole_stretch():
    look = torch.rand(3, 32, 75)
    for size, top, left, side in [((256, 604), 0, 0, 96), ((256, 604), 160, 508, 96),
                                  ((64, 151), 12, 40, 24), ((32, 75), 4, 8, 16)]:
        want = resize(look[None], size)[0, :, top:top + side, left:left + side]
        torch.testing.assert_close(resized_window(look, size, top, left, side), want,
                                   atol=1e-5, rtol=0)


def test_uint8_frames_resize_in_uint8_rounded():
    frame = torch.randint(0, 256, (1, 3, 270, 480), dtype=torch.uint8)
    small = resize(frame, (64, 114))  # a camera frame, shrunk as a Stream shrinks it
    err = small.float() - resize(frame.float(), (64, 114))
    assert small.dtype == torch.uint8
    assert err.abs().max() <= 1 and err.mean().abs() < 0.1  # rounded, not cut off


def test_a_fresh_upsampler_draws_the_stretched_output():
    up = Upsampler(UpsamplerConfig(channels=8)).eval()
    look, frame = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(up(look, frame), resize(look, (64, 96)))


def test_a_look_head_draws_in_place_of_the_gains_and_heads_belong_to_learnt_looks():
    up = Upsampler(UpsamplerConfig(channels=8, heads=["x", "y"])).eval()
    look, frame = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 64, 96)
    stretched = resize(look, (64, 96))
    with torch.no_grad():
        up.gains.bias.fill_(0.5)  # gains that show
        assert not torch.allclose(up(look, frame), stretched)
        assert torch.equal(up(look, frame, 1), stretched)  # a fresh head: no gains, nothing drawn
        up.heads[1].out.bias.fill_(0.1)
        torch.testing.assert_close(up(look, frame, 1), stretched + 0.1)
        assert torch.equal(up(look, frame, 0), stretched)  # each look its own head
    with pytest.raises(ValueError, match="must be learnt looks"):
        dataclasses.replace(small_config(), upsampler=UpsamplerConfig(channels=8, heads=["x"]))


def test_unit_gains_on_a_model_that_copies_its_input_give_the_input_back():
    """Gains of one on the detail: the output of a model that drew exactly the (shrunk)
    grey input, upsampled, is the full-size input; stretched it is not."""
    up = Upsampler(UpsamplerConfig(channels=8)).eval()
    with torch.no_grad():
        up.gains.bias.fill_(1.0)
        frame = torch.rand(1, 1, 64, 64).expand(1, 3, 64, 64)  # grey: its detail is brightness
        look = resize(frame, (32, 32))
        out = up(look, frame)
    torch.testing.assert_close(out, frame, atol=1e-5, rtol=0)
    assert (resize(look, (64, 64)) - frame).abs().mean() > 0.05


def with_upsampler(model: LSDModel, out_size: int = 48) -> LSDModel:
    cfg = dataclasses.replace(model.config, upsampler=UpsamplerConfig(channels=8, out_size=out_size))
    torch.manual_seed(0)  # the upsampler's own first weights
    grown = LSDModel(cfg)
    grown.load_state_dict(model.state_dict(), strict=False)
    return randomized(grown)


def test_streams_draw_at_the_output_size():
    model = randomized(LSDModel(small_config()))
    frame = np.random.default_rng(0).integers(0, 256, (72, 128, 3), dtype=np.uint8)
    assert Stream(model, "sepia photo", dtype=torch.float32).step(frame).shape == (72, 128, 3)
    assert Stream(model, "sepia photo", dtype=torch.float32, out_size=36).step(frame).shape == (36, 64, 3)
    up = with_upsampler(model)
    assert Stream(up, "sepia photo", dtype=torch.float32).step(frame).shape == (48, 84, 3)
    assert Stream(up, "sepia photo", dtype=torch.float32, out_size=64).step(frame).shape == (64, 112, 3)
    # by default a camera smaller than the upsampler's size is not blown up; told, it is
    small = frame[:40, :60]
    assert Stream(up, "sepia photo", dtype=torch.float32).step(small).shape == (40, 60, 3)
    assert Stream(up, "sepia photo", dtype=torch.float32, out_size=48).step(small).shape == (48, 72, 3)
    for bad in (0, 30, 7):
        with pytest.raises(ValueError, match="out_size"):
            Stream(model, "sepia photo", out_size=bad)


def test_lsd_upsampler_trains_only_the_upsampler(tmp_path):
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "src", {"sample": {"steps": 2}})
    report = train_upsampler(str(tmp_path / "src"), str(tmp_path / "run"), size=64, channels=8,
                             streams=1, frames=2, steps=3, batch=2, progress=False)
    assert set(report["val_psnr_db"]) == {"stretched", "upsampled"}
    out, src = LSDModel.load(tmp_path / "run" / "model"), LSDModel.load(tmp_path / "src")
    assert out.upsampler is not None and out.config.upsampler.out_size == 64
    assert all(torch.equal(out.state_dict()[k], v) for k, v in src.state_dict().items())
    assert any(out.upsampler.gains.weight.flatten() != 0)  # it learnt something
    assert out.checkpoint_config["sample"] == {"steps": 2}
    with pytest.raises(FileExistsError):
        train_upsampler(str(tmp_path / "src"), str(tmp_path / "run"), size=64, channels=8,
                        streams=1, frames=2, steps=1, progress=False)


def test_lsd_run_writes_at_out_size(tmp_path):
    model = with_upsampler(randomized(LSDModel(small_config())))
    model.save(tmp_path / "ckpt")
    out = tmp_path / "out.mp4"
    assert main(["run", "--source", "synthetic:1", "--frames", "3", "--prompt", "sepia photo",
                 "--checkpoint", str(tmp_path / "ckpt"), "--out", str(out), "--out-size", "64",
                 "--json"]) == 0
    assert next(iter(read_frames(out))).shape[:2] == (64, 64)


def test_look_memory_averages_the_coarse_look_over_frames_and_reset_forgets_it():
    base = randomized(LSDModel(small_config()))
    frames = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)

    def outputs(memory):
        model = with_upsampler(base)
        model.upsampler.look_size, model.upsampler.look_memory = 8, memory
        s = Stream(model, "sepia photo", dtype=torch.float32, seed=4)
        return s, [s.step(f) for f in frames]
    plain, without = outputs(0.0)
    kept, with_memory = outputs(0.5)
    assert np.array_equal(without[0], with_memory[0])  # nothing to remember yet
    assert not np.array_equal(without[2], with_memory[2])
    assert kept._look.shape[-2:] == (8, 8)
    kept.reset()
    assert kept._look is None
