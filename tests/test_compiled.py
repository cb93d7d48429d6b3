"""The torch.compile fast path: the same frames as eager, compiled once, never recompiled."""

import dataclasses

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from lsd.models import LSDModel
from lsd.stream.engine import Stream
from test_models import randomized, small_config
from test_stream_engine import frames


@pytest.mark.parametrize("sees_input", [False, True], ids=["plain", "seeing_decoder"])
def test_compiled_stream_matches_eager_and_compiles_once(tmp_path, sees_input):
    config = small_config()
    config = dataclasses.replace(config, codec=dataclasses.replace(config.codec, sees_input=sees_input))
    model = randomized(LSDModel(config))
    # last_step commits: the cache is written inside the compiled denoiser graph
    model.save(tmp_path / "m", extra_config={"sample": {"steps": 3, "shortcut": True,
                                                        "commit": "last_step"}})
    inputs = frames(8)  # past the cache's wrap-around (history 2 or 3 frames)
    eager = Stream.from_pretrained(tmp_path / "m", prompt="ink wash")
    want = [eager.step(f) for f in inputs]
    torch._dynamo.reset()
    counters.clear()
    fast = Stream.from_pretrained(tmp_path / "m", prompt="ink wash", backend="compile")
    got = [fast.step(f) for f in inputs]
    # bf16 kernels fuse and round differently: a few 8-bit levels, never a different picture
    diff = [np.abs(g.astype(int) - w.astype(int)) for g, w in zip(got, want)]
    assert max(d.mean() for d in diff) < 1.0 and max(d.max() for d in diff) <= 16
    # encoder + decoder + the denoiser's plain step and cache-writing step, and no more:
    # later frames (other cache slots, other ages) replay the same graphs
    assert counters["stats"]["unique_graphs"] == 4
    assert fast.cache.filled == eager.cache.filled
    assert torch.equal(fast.cache.age, eager.cache.age)
    # a second stream on the same model shares its graphs (not a compile of a compile)
    forward = fast.model.denoiser.forward
    second = Stream(fast.model, "ink wash", backend="compile")
    assert second.model.denoiser.forward is forward
    first = np.abs(second.step(inputs[0]).astype(int) - want[0].astype(int))
    assert first.mean() < 1.0 and first.max() <= 16  # its own fresh history: frame 1 again
    assert counters["stats"]["unique_graphs"] == 4


def test_bench_latency_compare_times_every_backend_in_one_run(tmp_path):
    from lsd.bench.latency import bench_latency
    from lsd.stream.openvino_step import available

    randomized(LSDModel(small_config())).save(tmp_path / "m", extra_config={"sample": {"steps": 2}})
    torch._dynamo.reset()
    r = bench_latency(str(tmp_path / "m"), frames=10, warmup=2, compare=True, dtype="float32")
    eager, fast = r["eager"], r["compile"]
    assert eager["backend"] == "eager" and fast["backend"] == "compile"
    assert ("openvino" in r) == available()
    for name in r["speedup_p50"]:
        assert r["speedup_p50"][name] == round(eager["ms_p50"] / r[name]["ms_p50"], 3)
        assert r[name]["dtype"] == "float32" and r[name]["gflops_per_frame"] == eager["gflops_per_frame"]
    # the compile happens on the first frame (inductor's disk cache may hold the kernels,
    # dynamo still traces), reported apart from the timed frames
    assert fast["first_frame_ms"] > 3 * fast["ms_p95"]
    assert fast["gflops_per_frame"] == eager["gflops_per_frame"] > 0


def test_bench_latency_times_an_untrained_preset_as_the_student_samples():
    from lsd.bench.latency import bench_latency

    r = bench_latency(preset_name="tiny", overrides=["frame_size=[64,64]"], frames=4, warmup=1)
    assert r["checkpoint"] == "preset:tiny frame_size=[64,64]" and r["frame_size"] == [64, 64]
    assert r["steps"] == 3 and r["device"] == "cpu" and r["gflops_per_frame"] > 0


def test_a_drift_run_resumed_with_the_compiled_step_continues_the_eager_one(tmp_path):
    from lsd.bench.drift import bench_drift, read_column

    randomized(LSDModel(small_config())).save(tmp_path / "m", extra_config={"sample": {"steps": 2}})
    run = lambda csv, frames, **kw: bench_drift(str(tmp_path / "m"), frames, "ink_wash",
                                                csv_path=str(tmp_path / csv), window=3,
                                                progress=False, **kw)
    whole = run("whole.csv", 12)
    run("cut.csv", 6)
    torch._dynamo.reset()
    resumed = run("cut.csv", 12, resume=True, backend="compile")
    assert resumed["backend"] == "compile" and whole["backend"] == "eager"
    assert resumed["resumed_from"] == 6
    want, got = read_column(tmp_path / "whole.csv", "psnr_db"), read_column(tmp_path / "cut.csv",
                                                                            "psnr_db")
    assert len(got) == 12 and np.array_equal(got[:6], want[:6])
    assert np.abs(got[6:] - want[6:]).max() < 0.5  # bf16 rounding, not another stream
