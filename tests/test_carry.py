"""bench.carry: how much of star_glitter's stars a model carries from a primed history."""

import numpy as np
import pytest
import torch

from lsd.bench.carry import bench_carry, star_agreement
from lsd.data import VAL_SEED_START, paired_stream
from lsd.io import to_uint8
from lsd.models import LSDModel
from lsd.styles.memory import StarGlitter

from test_models import randomized, small_config


def test_the_bare_night_is_the_target_without_its_stars():
    stream = list(paired_stream(VAL_SEED_START + 109, "star_glitter", frames=3))
    for sample in stream:
        bare = to_uint8(StarGlitter.night(sample.input / 255.0))
        differs = (bare != sample.target).any(-1)
        assert 0 < differs.mean() < 0.1  # the stars' few pixels, nothing else
        assert (sample.target[differs].astype(int).sum(-1) > bare[differs].astype(int).sum(-1)).mean() > 0.9


def test_star_agreement_is_one_when_carried_in_full_and_falls_with_what_is_lost():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(3, 4, 8, 4, 4, generator=g)
    full = star_agreement(target, target)
    assert full["cosine"] == [1.0] * 4 and full["amplitude"] == [1.0] * 4
    faded = target * torch.tensor([1.0, 0.5, 0.25, 0.0])[None, :, None, None, None]
    half = star_agreement(faded, target)
    assert half["amplitude"] == [1.0, 0.5, 0.25, 0.0] and half["cosine"][:3] == [1.0] * 3
    assert abs(star_agreement(torch.randn(3, 4, 8, 4, 4, generator=g), target)["cosine"][0]) < 0.2


def test_bench_carry_scores_the_frames_after_the_priming(tmp_path):
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "m", {"sample": {"steps": 2}})
    report = bench_carry(str(tmp_path / "m"), frames=3, prime=2, streams=2)
    assert len(report["cosine"]) == len(report["amplitude"]) == len(report["unprimed_cosine"]) == 3
    assert report["cosine"] != report["unprimed_cosine"]  # the priming reaches the frames made
    still = bench_carry(str(tmp_path / "m"), frames=3, prime=2, streams=2, shift=0)
    assert still["shift"] == 0 and report["shift"] is None and still["cosine"] != report["cosine"]
    moved = bench_carry(str(tmp_path / "m"), frames=3, prime=2, streams=2, shift=4)
    assert moved["cosine"] != still["cosine"]
    assert (still["motion_px_per_frame"], moved["motion_px_per_frame"]) == (0.0, 4.0)
    assert 0 < report["motion_px_per_frame"] < 4  # the world's camera drifts slowly
    guided = bench_carry(str(tmp_path / "m"), frames=3, prime=2, streams=2, history_guidance=3.0)
    assert guided["history_guidance"] == 3.0 and guided["amplitude"] != report["amplitude"]
    assert guided["unprimed_cosine"] != report["unprimed_cosine"]  # it guides the unprimed run too
    with pytest.raises(ValueError, match="--history-guidance must be >= 0"):
        bench_carry(str(tmp_path / "m"), history_guidance=-1.0)
