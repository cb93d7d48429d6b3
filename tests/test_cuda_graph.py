"""The CUDA-graph path (lsd.stream.cuda_graph) in its CPU form: the same static buffers,
warm-up and cache restore as on a GPU, with the work called where a graph would replay."""

import numpy as np
import pytest
import torch

from lsd.models import LSDModel
from lsd.models.history_cache import HistoryCache
from lsd.stream.cuda_graph import GraphedStep
from lsd.stream.engine import Stream
from test_models import randomized, small_config
from test_stream_engine import frames


@pytest.mark.parametrize("sample", [
    {"steps": 3, "shortcut": True, "commit": "last_step"},  # the shipped student
    {"steps": 2, "context_t": 0.1},  # a teacher: a separate commit pass on re-noised latents
])
def test_graph_path_streams_exactly_what_the_plain_path_streams(tmp_path, sample):
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "m", extra_config={"sample": sample})
    plain = Stream.from_pretrained(tmp_path / "m", prompt="ink wash")
    graphed = Stream.from_pretrained(tmp_path / "m", prompt="ink wash", cuda_graph=True)
    assert graphed.cuda_graph and not plain.cuda_graph  # on by default on CUDA only
    for i, frame in enumerate(frames(8)):  # past the ring buffer's wrap-around
        if i == 3:  # a blend changes the prompt buffer's contents frame by frame
            for s in (plain, graphed):
                s.set_prompt("thermal camera", blend_frames=3)
        assert np.array_equal(graphed.step(frame), plain.step(frame)), f"frame {i}"
    assert torch.equal(graphed.cache.age, plain.cache.age)
    assert torch.equal(graphed.cache.keys, plain.cache.keys)
    graphed.reset(), plain.reset()  # a scene cut: same buffers, zeroed
    frame = frames(1, seed=5)[0]
    assert np.array_equal(graphed.step(frame), plain.step(frame))


def test_warm_up_leaves_the_cache_as_it_found_it():
    cache = HistoryCache(layers=1, frames=2, tokens=3, heads=1)
    cache.allocate(batch=1, head_dim=4, dtype=torch.float32, device="cpu")

    def work(value):  # writes the cache and ages it, as a frame's commit does
        kv = value.expand(1, 1, 3, 4)
        cache.write(0, kv, kv)
        cache.advance()
        return (value * 2,)

    before = cache.state()
    step = GraphedStep(work, {"value": torch.ones(())}, cache)
    assert all(torch.equal(a, b) for a, b in zip(before, cache.state()))  # warm-up undone
    (out,) = step(value=torch.tensor(3.0))
    assert out.item() == 6.0 and cache.filled == 1  # the real call did write, once
    assert torch.equal(cache.keys[0, 0, 0, :3], torch.full((3, 4), 3.0))
    assert cache.slot.item() == 1


def test_bench_latency_counts_a_graphed_streams_flops_on_an_eager_twin(tmp_path):
    from lsd.bench.latency import bench_latency

    randomized(LSDModel(small_config())).save(tmp_path / "m", extra_config={"sample": {"steps": 2}})
    plain = bench_latency(str(tmp_path / "m"), frames=3, warmup=1)
    graphed = bench_latency(str(tmp_path / "m"), frames=3, warmup=1, cuda_graph=True)
    assert graphed["cuda_graph"] and not plain["cuda_graph"]
    assert graphed["gflops_per_frame"] == plain["gflops_per_frame"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error(tmp_path):
    randomized(LSDModel(small_config())).save(tmp_path / "m")
    with pytest.raises(ValueError, match="no CUDA device"):
        Stream.from_pretrained(tmp_path / "m", device="cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        Stream(LSDModel(small_config()), device="cuda:0")
