"""The GPU fast path's second half: a frame's device work (encode, the denoising steps with
the cache commit, decode) captured once as a CUDA graph and replayed every frame.

At 64 to 1,024 tokens a frame a GPU step is a few hundred tiny kernels; launching them from
Python costs more than running them. A graph launches them all at once. What a graph needs
the code already gives: fixed shapes, no host syncs inside, and the history cache at fixed
addresses with its write slot as a device tensor (so one graph serves every slot).

The frame, prompt embedding and noise are copied into static buffers before each replay
(the noise is drawn on the CPU generator outside the graph, so a stream is reproducible on
any device). Warming up runs the work for real and so writes the cache: its state is saved
before and restored after. On a device without CUDA graphs (the CPU) the same static
buffers, warm-up and restore run and `replay` calls the work directly, which is how the
tests check this path off the GPU.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..models.history_cache import HistoryCache

WARMUP_RUNS = 2  # CUDA wants a few eager runs (lazy init, cuBLAS workspaces) before capture


class GraphedStep:
    def __init__(self, work: Callable[..., tuple[torch.Tensor, ...]], example: dict[str, torch.Tensor],
                 cache: HistoryCache):
        """work(**inputs) -> tuple of tensors; `example` fixes the inputs' shapes and device."""
        self.work = work
        self.static = {name: t.clone() for name, t in example.items()}
        device = next(iter(example.values())).device
        saved = cache.state()
        self.graph = torch.cuda.CUDAGraph() if device.type == "cuda" else None
        if self.graph is None:
            for _ in range(WARMUP_RUNS):
                work(**self.static)
        else:
            side = torch.cuda.Stream(device)  # warm-up off the default stream, as capture wants
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(WARMUP_RUNS):
                    work(**self.static)
            torch.cuda.current_stream(device).wait_stream(side)
            # thread_local: other streams' threads (serve sessions) may launch work meanwhile
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.outputs = work(**self.static)
        cache.load_state(saved)

    def __call__(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The work's outputs for these inputs. On CUDA they are the graph's static output
        buffers, overwritten by the next call: read them before calling again."""
        for name, value in inputs.items():
            self.static[name].copy_(value)
        if self.graph is None:
            return self.work(**self.static)
        self.graph.replay()
        return self.outputs
