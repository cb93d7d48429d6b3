"""The CPU fast path: a frame's whole device work (encode, every denoising step, the cache
commit, decode) run by OpenVINO as one compiled graph.

At 64 tokens a frame a step is hundreds of small ops; run one by one from Python (eager
torch) their dispatch costs as much as their math where bf16 is native. OpenVINO gets the frame as one graph
(`frame_graph.FrameFunction`, traced to ONNX in memory), fuses it and runs it without
Python in between, in fp32, or in bf16 where lsd.precision chose it (a CPU with native
bf16: AMX or AVX512-BF16). The history cache stays a torch `HistoryCache`: its keys and
values go in, the new frame's come out and are written back (`frame_graph.commit`).

The graph is built once per model and sampling setup and shared by every stream on that
model (serve's sessions), each with its own infer request. A model with an upsampler gets a
second graph, per output size: the frame shown drawn from the first's output
(lsd.stream.drawing). Only OpenVINO's runtime is
used (`Core.read_model` on ONNX bytes): not its model converter, which sends telemetry.
"""

from __future__ import annotations

import importlib.util
import io
import warnings

import torch

from .frame_graph import CACHE_INPUTS, FrameFunction, cache_inputs, commit

OV_PRECISION = {torch.float32: "f32", torch.bfloat16: "bf16"}
MAX_GRAPHS = 8  # compiled graphs kept per model (the drawing's: one per frame size)


def available() -> bool:
    """Whether OpenVINO and ONNX (the exporter writes ONNX with it) are installed; looked
    up, not imported: importing OpenVINO takes a while."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "openvino"))


def to_onnx(function: torch.nn.Module, example: list[torch.Tensor], names: list[str]) -> bytes:
    """The traced function as ONNX bytes (TorchScript exporter: seconds, not the dynamo
    exporter's tens of seconds; shapes are fixed, nothing is dynamic)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on Python branches, all shape-static
        torch.onnx.export(function, tuple(example), buf, input_names=names, dynamo=False,
                          opset_version=17, do_constant_folding=True)
    return buf.getvalue()


def compile_graph(onnx_bytes: bytes, dtype: torch.dtype, threads: int):
    """OpenVINO's compiled graph, computing in `dtype` (bf16 only where OpenVINO runs it on
    this CPU: a forced bf16 elsewhere computes in fp32, as OpenVINO itself would)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(onnx_bytes, b"")
    precision = OV_PRECISION[dtype]
    if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        precision = "f32"
    return core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})


class OpenVINOGraph:
    def __init__(self, build, owner: torch.nn.Module, example: dict[str, torch.Tensor],
                 dtype: torch.dtype, key: tuple):
        """build() -> the module to compile, a function of the tensors in `example` (whose
        names and shapes the graph fixes), computing in `dtype`. Graphs are kept on `owner`
        by `key` (what the module bakes in), shapes, dtype and threads, so every stream on
        a model shares them, each with its own infer request."""
        if not hasattr(owner, "openvino_graphs"):
            owner.openvino_graphs = {}
        shared = owner.openvino_graphs
        names = list(example)
        self.key = key
        self.shapes = [(n, tuple(t.shape)) for n, t in example.items()]
        key = (*key, tuple(self.shapes), dtype, torch.get_num_threads())
        if key not in shared:
            onnx_bytes = to_onnx(build(), [example[n] for n in names], names)
            if len(shared) >= MAX_GRAPHS:  # a camera that keeps changing size: drop the oldest
                shared.pop(next(iter(shared)))
            shared[key] = compile_graph(onnx_bytes, dtype, torch.get_num_threads())
        self.graph = shared[key]
        self.request = self.graph.create_infer_request()
        self.fed = {name for i in self.graph.inputs for name in i.get_names()}  # unused: dropped

    def takes(self, tensors: dict[str, torch.Tensor]) -> bool:
        """Whether these are the tensors, names and shapes, the graph was built for."""
        return self.shapes == [(n, tuple(t.shape)) for n, t in tensors.items()]

    def __call__(self, tensors: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        # shared: OpenVINO reads the tensors in place (no copy of the cache each frame)
        result = self.request.infer({n: t.numpy() for n, t in tensors.items() if n in self.fed},
                                    share_inputs=True)
        # the outputs are copies the request hands over (share_outputs is off): no copy here
        return [torch.from_numpy(result[o]) for o in self.graph.outputs]


class OpenVINOStep:
    def __init__(self, work, model: torch.nn.Module, example: dict[str, torch.Tensor], cache,
                 dtype: torch.dtype, key: tuple):
        """work(cache, **inputs) -> (z_in, image, z): the stream's frame work, running
        `model`; `example` fixes the inputs' names and shapes; `dtype`: the compute dtype
        OpenVINO runs in; `key`: the sampling settings the graph bakes in."""
        self.cache = cache
        self.names = list(example)
        tensors = example | dict(zip(CACHE_INPUTS, cache_inputs(cache)))
        self.graph = OpenVINOGraph(lambda: FrameFunction(work, self.names, model), model,
                                   tensors, dtype, ("frame", *key))

    def __call__(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.graph(inputs | dict(zip(CACHE_INPUTS, cache_inputs(self.cache))))
        commit(self.cache, outputs[3:])
        return tuple(outputs[:3])
