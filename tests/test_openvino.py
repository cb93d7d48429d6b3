"""The openvino backend: a frame as one OpenVINO graph gives the frames eager torch gives,
for every sampling setup a checkpoint can ask for, and streams on one model share it; so
does the upsampler's graph."""

import dataclasses

import numpy as np
import pytest
import torch

from lsd.models import LSDModel
from lsd.models.pruning import prune_block
from lsd.models.upsampler import resize, resize_matrix
from lsd.stream.backends import decide_backend
from lsd.stream.engine import Stream
from lsd.stream.openvino_step import available
from test_choice import with_choice
from test_models import randomized, small_config
from test_stream_engine import frames
from test_upsampler import with_upsampler

pytestmark = pytest.mark.skipif(not available(), reason="openvino and onnx are not installed")

STUDENT = {"steps": 3, "shortcut": True, "commit": "last_step"}
SETUPS = {
    "student": (small_config(), STUDENT),
    "seeing_decoder": (small_config(), STUDENT),
    "pruned": (small_config(), STUDENT),
    # a teacher's sampling: clean commits at a context level, picks guidance, settling
    "teacher": (with_choice(small_config()), {"steps": 2, "context_t": 0.1, "settle": 1,
                                              "choice_guidance": 2.0}),
}


def model_for(name: str) -> LSDModel:
    config, sample = SETUPS[name]
    if name == "seeing_decoder":
        config = dataclasses.replace(config, codec=dataclasses.replace(config.codec, sees_input=True))
    model = randomized(LSDModel(config))
    if name == "pruned":  # layers with different head counts and MLP widths
        prune_block(model, 0, [1], list(range(100)))
    model.checkpoint_config = {"sample": sample}
    return model


def streams(model: LSDModel, **kwargs) -> tuple[Stream, Stream]:
    make = lambda backend: Stream(model, "ink wash", dtype=torch.float32, backend=backend, **kwargs)
    return make("eager"), make("openvino")


@pytest.mark.parametrize("name", list(SETUPS))
def test_openvino_streams_what_eager_streams(name):
    model = model_for(name)
    eager, fast = streams(model)
    inputs = frames(8)  # past the cache's wrap-around
    for i, f in enumerate(inputs):
        want, got = eager.step(f), fast.step(f)
        diff = np.abs(want.astype(int) - got.astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05, (name, i)  # fp32 kernels round differently
    assert torch.equal(eager.cache.age, fast.cache.age)
    assert (eager.cache.keys - fast.cache.keys).abs().max() < 1e-3
    assert fast.stats["backend"] == "openvino"


def test_streams_on_one_model_share_its_graph_and_not_their_history():
    model = model_for("student")
    inputs = frames(3)
    first = Stream(model, "ink wash", dtype=torch.float32, backend="openvino")
    outputs = [first.step(f) for f in inputs]
    second = Stream(model, "ink wash", dtype=torch.float32, backend="openvino")
    assert np.array_equal(second.step(inputs[0]), outputs[0])  # its own, empty, history
    assert np.array_equal(second.step(inputs[1]), outputs[1])
    assert len(model.openvino_graphs) == 1  # built once, for both


def test_a_reset_and_a_prompt_switch_run_through_the_graph():
    model = model_for("teacher")
    eager, fast = streams(model)
    inputs = frames(6)
    for i, f in enumerate(inputs):
        if i == 2:
            for s in (eager, fast):
                s.set_prompt("thermal camera", blend_frames=2)
        if i == 4:
            for s in (eager, fast):
                s.reset()
        assert np.abs(eager.step(f).astype(int) - fast.step(f).astype(int)).max() <= 2, i


def test_bf16_on_openvino_runs_and_stays_close():
    model = model_for("student")
    eager = Stream(model, "ink wash", dtype=torch.float32, backend="eager")
    want = [eager.step(f) for f in frames(3)]
    fast = Stream(model, "ink wash", dtype=torch.bfloat16, backend="openvino")
    assert fast.dtype == torch.float32 and fast.precision.dtype == torch.bfloat16  # OV computes it
    got = [fast.step(f) for f in frames(3)]
    # bf16 where the CPU has it (8-bit mantissas: a few levels), fp32 where OpenVINO falls back
    assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(want, got)) < 3


def test_the_backend_decision(monkeypatch):
    monkeypatch.delenv("LSD_BACKEND")  # the test set's default (conftest)
    assert decide_backend("cpu", openvino=True).name == "openvino"
    assert decide_backend("cpu", openvino=False).name == "eager"
    assert decide_backend("cpu", "compile", openvino=True).reason == "asked for compile"
    with pytest.raises(ValueError, match="pip install openvino onnx"):
        decide_backend("cpu", "openvino", openvino=False)
    with pytest.raises(ValueError, match="auto, eager, compile, openvino"):
        decide_backend("cpu", "tensorrt")


def test_the_environment_picks_the_backend(monkeypatch):
    monkeypatch.setenv("LSD_BACKEND", "compile")
    assert decide_backend("cpu", openvino=True).reason == "LSD_BACKEND=compile"
    assert decide_backend("cpu", "eager", openvino=True).name == "eager"  # asked beats it
    monkeypatch.setenv("LSD_BACKEND", "auto")
    assert decide_backend("cpu", openvino=True).name == "openvino"


def test_the_upsampler_draws_through_its_own_graph_as_eager_draws():
    model = with_upsampler(randomized(LSDModel(small_config())))
    eager, fast = streams(model)
    for size in [(40, 56), (40, 56), (64, 48)]:  # a new camera size: a graph for it
        f = np.random.default_rng(size[0]).integers(0, 256, (*size, 3), dtype=np.uint8)
        for _ in range(3):  # the look memory too
            want, got = eager.step(f), fast.step(f)
            assert want.shape == got.shape == (*size, 3)
            assert np.abs(want.astype(int) - got.astype(int)).max() <= 2, size
    assert len(model.upsampler.openvino_graphs) == 2  # one per output size


def test_the_exported_resize_is_torchs_antialiased_resize():
    x = torch.rand(1, 3, 45, 80)
    for size in [(12, 12), (45, 80), (90, 160), (17, 250)]:
        want = resize(x, size)
        a, b = resize_matrix(45, size[0]), resize_matrix(80, size[1])
        assert torch.allclose(a @ x @ b.T, want, atol=1e-5), size
