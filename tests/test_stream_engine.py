"""lsd.Stream: one frame in, one out, no lag; prompt blending; NaN recovery; constant memory."""

import numpy as np
import pytest
import torch

import lsd
from lsd.config import SampleConfig
from lsd.models import LSDModel
from lsd.stream import engine
from lsd.stream.engine import Stream
from test_models import randomized, small_config


def frames(n, h=32, w=32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def ckpt(tmp_path):
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "ckpt", extra_config={"sample": {"steps": 2, "context_t": 0.0}})
    return tmp_path / "ckpt"


def test_from_pretrained_reads_the_sampling_settings(ckpt):
    s = lsd.Stream.from_pretrained(ckpt, prompt="ink wash")
    assert s.steps == 2 and not s.sample.shortcut
    assert Stream.from_pretrained(ckpt, steps=3).steps == 3


def test_a_last_step_student_streams_one_pass_a_frame_cheaper(tmp_path):
    from lsd.models.cost import count_flops

    model = randomized(LSDModel(small_config()))
    f = frames(1)[0]

    def frame_flops(commit, steps):
        model.save(tmp_path / commit, extra_config={"sample": {"steps": 3, "shortcut": True,
                                                               "commit": commit}})
        s = Stream.from_pretrained(tmp_path / commit, prompt="ink wash", steps=steps)
        assert s.sample.commit == commit
        s.step(f)
        flops = count_flops(lambda: s.step(f))
        assert s.cache.filled == 2  # each step still commits exactly one frame
        return flops

    one_pass = frame_flops("clean", 3) - frame_flops("clean", 2)
    assert one_pass > 0 and frame_flops("clean", 3) - frame_flops("last_step", 3) == one_pass


def test_one_frame_in_one_frame_out_without_lag(ckpt):
    inputs = frames(6)
    a = Stream.from_pretrained(ckpt, prompt="ink wash")
    outs_a = [a.step(f) for f in inputs]
    assert len(outs_a) == 6 and all(o.shape == (32, 32, 3) and o.dtype == np.uint8 for o in outs_a)
    # change only the last input: only the last output may change, and it must
    b = Stream.from_pretrained(ckpt, prompt="ink wash")
    changed = inputs[:5] + [255 - inputs[5]]
    outs_b = [b.step(f) for f in changed]
    for i in range(5):
        assert np.array_equal(outs_a[i], outs_b[i])
    assert np.abs(outs_a[5].astype(int) - outs_b[5]).mean() > 0.05  # frame i answers input i


def test_any_input_size_comes_back_at_its_size(ckpt):
    s = Stream.from_pretrained(ckpt)
    out = s.step(np.zeros((45, 80, 3), np.uint8))
    assert out.shape == (45, 80, 3)
    with pytest.raises(ValueError, match="uint8"):
        s.step(np.zeros((45, 80, 3), np.float32))


def test_prompt_blend_moves_monotonically_to_the_new_prompt(ckpt):
    s = Stream.from_pretrained(ckpt, prompt="ink wash painting")
    old = s._embedding.clone()
    new = s._embed("thermal camera")
    s.set_prompt("thermal camera", blend_frames=12)
    to_new, to_old = [], []
    for f in frames(14):
        s.step(f)
        to_new.append(float((s._embedding - new).norm()))
        to_old.append(float((s._embedding - old).norm()))
    assert all(x > y for x, y in zip(to_new[:11], to_new[1:12]))  # strictly closer each frame
    assert all(x < y for x, y in zip(to_old[:11], to_old[1:12]))
    assert to_new[11] == 0 and to_new[12] == 0  # arrived after exactly 12 frames, stays
    assert to_new[0] == pytest.approx(float((old - new).norm()) * 11 / 12, rel=1e-2)  # bf16


def test_settling_samples_the_first_frame_again_before_showing_it(tmp_path):
    """settle k shows what a plain stream shows after k more passes on the first frame (and
    after a reset). 0 is off; from the checkpoint."""
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "m", extra_config={"sample": {"steps": 2}})
    fs = frames(4)
    by_hand = Stream.from_pretrained(tmp_path / "m", prompt="sepia", seed=3)
    for _ in range(2):
        by_hand.step(fs[0])
    hand = [by_hand.step(f) for f in fs]
    settled = Stream(lsd.models.load(tmp_path / "m"), "sepia", SampleConfig(steps=2, settle=2),
                     seed=3)
    outs = [settled.step(f) for f in fs]
    assert all(np.array_equal(a, b) for a, b in zip(outs, hand))
    assert settled.frames == 4  # the passes are not frames
    plain = Stream.from_pretrained(tmp_path / "m", prompt="sepia", seed=3)
    assert not np.array_equal(plain.step(fs[0]), outs[0])
    calls = []
    work = settled._work
    settled._work = lambda cache, **kw: calls.append(1) or work(cache, **kw)
    settled.step(fs[1])
    settled.reset()  # a new history is settled again
    settled.step(fs[2])
    assert len(calls) == 1 + 3
    with pytest.raises(ValueError, match="settle must be"):
        SampleConfig(settle=-1)
    loaded = lsd.models.load(tmp_path / "m")
    loaded.checkpoint_config["sample"]["settle"] = 5
    assert Stream(loaded).sample.settle == 5
    assert Stream(loaded, "", loaded.sample.but(settle=0)).sample.settle == 0


@pytest.mark.parametrize("cuda_graph", [False, True])  # True: the graph path's CPU form
def test_nan_step_resets_the_history_and_carries_on(ckpt, cuda_graph):
    s = Stream.from_pretrained(ckpt, prompt="ink wash", cuda_graph=cuda_graph)
    for f in frames(4):
        s.step(f)
    assert s.cache.filled == 2  # k = 2 frames of history
    poison = {"calls": 0}

    def hook(module, args, output):
        if poison["calls"] > 0:
            poison["calls"] -= 1
            return output * float("nan")

    s.model.denoiser.register_forward_hook(hook)
    poison["calls"] = s.steps + 1  # every pass of one frame's generation and commit
    out = s.step(frames(1, seed=9)[0])
    assert s.recoveries == 1 and out.dtype == np.uint8
    assert s.cache.filled == 1  # the poisoned history is gone; the redone frame is in
    assert torch.isfinite(s.cache.keys.float()).all()
    nxt = s.step(frames(1, seed=10)[0])
    assert s.recoveries == 1 and s.cache.filled == 2 and nxt.std() > 0


def test_memory_and_latency_window_stay_bounded(ckpt, monkeypatch):
    s = Stream.from_pretrained(ckpt, prompt="ink wash")
    monkeypatch.setattr(s, "_latency_ms", engine.deque(maxlen=50))
    pool = frames(8)
    s.step(pool[0])
    start = s.stats["cache_bytes"]
    pointer = s.cache.keys.data_ptr()
    for i in range(300):
        s.step(pool[i % 8])
    st = s.stats
    assert st["frames"] == 301 and st["latency_window"] == 50
    assert st["cache_bytes"] == start and s.cache.keys.data_ptr() == pointer
    assert st["ms_p50"] <= st["ms_p95"] <= st["ms_p99"]


def test_reset_forgets_history_but_keeps_the_prompt(ckpt):
    s = Stream.from_pretrained(ckpt, prompt="sepia")
    for f in frames(3):
        s.step(f)
    s.reset()
    assert s.cache.filled == 0 and s.prompt == "sepia"


def test_mixed_prompts_parse_and_stream_the_weighted_mean(ckpt):
    from lsd.stream.prompt_mix import parse_mix

    assert parse_mix("ink wash") == [("ink wash", 1.0)]
    assert parse_mix("thermal camera + pencil sketch") == [("thermal camera", 0.5),
                                                           ("pencil sketch", 0.5)]
    assert parse_mix("ink wash:0.7, sepia:0.3") == [("ink wash", 0.7), ("sepia", 0.3)]
    assert parse_mix("ink wash:3 + sepia") == [("ink wash", 0.75), ("sepia", 0.25)]
    assert parse_mix("flat colours, bold outlines") == [("flat colours, bold outlines", 1.0)]
    for bad in ("a:0 + b:0", "a + ", " + b"):
        with pytest.raises(ValueError):
            parse_mix(bad)
    s = Stream.from_pretrained(ckpt, prompt="ink wash:0.7, sepia:0.3", dtype=torch.float32)
    with torch.no_grad():
        one = lambda p: s.model.encode_prompts([p])
        torch.testing.assert_close(s._embedding, 0.7 * one("ink wash") + 0.3 * one("sepia"))
        assert torch.equal(s._embed("sepia"), one("sepia"))  # a plain prompt: as before
    assert s.step(frames(1)[0]).shape == (32, 32, 3)
    s.set_prompt("thermal camera + sepia photo", blend_frames=0)
    torch.testing.assert_close(s._embedding, (one("thermal camera") + one("sepia photo")) / 2)
    with pytest.raises(ValueError, match="add up to more than 0"):
        s.set_prompt("sepia:0 + ink wash:0")


def test_a_stream_says_what_its_prompt_was_understood_as(ckpt, monkeypatch):
    """A training prompt is understood as its own look with confidence 1; a mix part by
    part; a switch to a prompt far from every look (here: a model without a prompt reader,
    measured by cosine) is not made, and the warning names the looks and what still plays."""
    from lsd.stream import understood
    from lsd.stream.understood import Looks

    s = Stream.from_pretrained(ckpt, prompt="thermal camera", dtype=torch.float32)
    assert s.understood == [{"look": "thermal", "confidence": 1.0, "known": True, "weight": 1.0}]
    assert s.stats["understood_as"] == "thermal 1.00" and s.stats["warning"] is None
    s.set_prompt("sepia photo + pencil sketch", blend_frames=0)
    assert s.stats["understood_as"] == "sepia 1.00 x0.5 + pencil_sketch 1.00 x0.5"
    playing = s._embedding.clone()
    monkeypatch.setattr(understood, "UNKNOWN", 1.01)  # now nothing is near enough
    s.set_prompt("underwater coral reef", blend_frames=0)
    assert s.prompt == "sepia photo + pencil sketch" and torch.equal(s._embedding, playing)
    assert "names no look LSD knows" in s.warning and "thermal, pencil_sketch" in s.warning
    assert "still playing 'sepia photo + pencil sketch'" in s.warning
    assert s.stats["warning"] == s.warning and s.understood[0]["known"] is False
    assert Looks(s.model).nearest("underwater coral reef")[0] in s.warning
    first = Stream.from_pretrained(ckpt, prompt="underwater coral reef", dtype=torch.float32)
    assert first.prompt == "underwater coral reef" and "playing the nearest" in first.warning
