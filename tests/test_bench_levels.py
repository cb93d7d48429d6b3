"""lsd bench levels on a small model with the pixel codec (an exact round trip) and an output
layer still at zero (v = 0, so the estimate at level t is the noised latent itself): the
numbers must fall with t, and at t = 0 be the targets' round trip through bf16."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from lsd.bench.levels import FRAME_GAP
from lsd.cli import main
from lsd.data import VAL_SEED_START, paired_stream
from lsd.metrics import psnr
from lsd.config import AutoencoderConfig
from lsd.models import LSDModel
from lsd.precision import decide
from lsd.styles import get_style, style_names
from lsd.train.clips import to_frames, to_uint8
from test_models import small_config


def test_levels_fall_with_noise_and_start_at_the_codec_round_trip(tmp_path, capsys):
    config = dataclasses.replace(small_config(), autoencoder=AutoencoderConfig(kind="patches"))
    model = LSDModel(config)
    model.save(tmp_path / "ckpt")
    assert main(["bench", "levels", "--checkpoint", str(tmp_path / "ckpt"), "--frames", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    frame_styles = [n for n in style_names() if get_style(n).kind == "frame"]
    means = [row["mean_psnr_db"] for row in report["levels"]]
    assert [row["t"] for row in report["levels"]][0] == 0.0
    assert all(a > b for a, b in zip(means, means[1:]))
    assert set(report["levels"][0]["per_style"]) == set(frame_styles)

    name = frame_styles[0]
    samples = list(paired_stream(VAL_SEED_START + 100 + style_names().index(name), name,
                                 size=32, frames=2 * FRAME_GAP))[::FRAME_GAP]
    dtype = decide("cpu").dtype  # the bench's compute dtype
    codec = LSDModel.load(tmp_path / "ckpt", dtype=dtype).codec
    with torch.no_grad():
        round_trip = codec.decode(codec.encode(to_frames(np.stack([s.target for s in samples])).to(dtype)))
    expected = np.mean([psnr(a, s.target) for a, s in zip(to_uint8(round_trip), samples)])
    assert report["levels"][0]["per_style"][name] == pytest.approx(expected, abs=0.01)  # inf: exact
    assert report["levels"][-1]["t"] == 1.0 and means[-1] < 15  # pure noise
