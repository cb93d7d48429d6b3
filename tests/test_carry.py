"""bench.carry: how much of star_glitter's stars a model carries from a primed history."""

import numpy as np
import pytest
import torch

from lsd.bench.carry import bench_carry, move_latent, star_agreement
from lsd.data import VAL_SEED_START, paired_stream
from lsd.io import to_uint8
from lsd.models import LSDModel
from lsd.styles.memory import StarGlitter

from test_models import leaning_on_history, randomized, small_config


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
    torch.manual_seed(0)  # unseeded, two of its scores came out equal about one run in 20
    model = leaning_on_history(randomized(LSDModel(small_config())))  # the priming must show
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
    # strong guidance: a random model's history effect is small, and rounded to 3 decimals
    guided = bench_carry(str(tmp_path / "m"), frames=3, prime=2, streams=2, history_guidance=30.0)
    assert guided["history_guidance"] == 30.0 and guided["amplitude"] != report["amplitude"]
    assert guided["unprimed_cosine"] != report["unprimed_cosine"]  # it guides the unprimed run too
    with pytest.raises(ValueError, match="--history-guidance must be >= 0"):
        bench_carry(str(tmp_path / "m"), history_guidance=-1.0)


def test_move_latent_moves_whole_positions_exactly_and_blends_between_them():
    z = torch.arange(2 * 4 * 6, dtype=torch.float32).view(2, 4, 6)
    right = np.array([[1.0, 0, 16], [0, 1, 8], [0, 0, 1]])  # 2 positions right, 1 down at 8 px each
    assert torch.equal(move_latent(z, np.eye(3), (32, 48)), z)
    assert torch.equal(move_latent(z, right, (32, 48), wrap=True), z.roll((1, 2), dims=(1, 2)))
    cut = move_latent(z, right, (32, 48))
    assert torch.equal(cut[:, 1:, 2:], z[:, :-1, :-2]) and not cut[:, 0].any() and not cut[:, :, :2].any()
    half = move_latent(z, np.array([[1.0, 0, 4], [0, 1, 0], [0, 0, 1]]), (32, 48), wrap=True)
    assert torch.allclose(half, (z + z.roll(1, dims=2)) / 2)


def test_the_copy_references_hold_a_still_picture_and_move_whole_positions(tmp_path):
    torch.manual_seed(0)
    model = randomized(LSDModel(small_config(size=64)))  # 32 px frames may hold no star
    model.save(tmp_path / "m", {"sample": {"steps": 2}})
    still = bench_carry(str(tmp_path / "m"), frames=3, prime=2, streams=2, shift=0)
    assert still["copy_held"] == still["copy_moved"] == {"cosine": [1.0] * 3, "amplitude": [1.0] * 3}
    cell = bench_carry(str(tmp_path / "m"), frames=3, prime=2, streams=2, shift=8)  # 8 px: one latent position
    # a random codec's latent moves with the picture only roughly near the borders of 8x8
    assert min(cell["copy_moved"]["cosine"]) > 0.7 and max(map(abs, cell["copy_held"]["cosine"])) < 0.2
    world = bench_carry(str(tmp_path / "m"), frames=3, prime=2, streams=2)
    assert world["copy_held"] != world["copy_moved"]  # the world's camera moves
