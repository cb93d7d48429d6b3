"""The fast path: the networks of the streaming step (encoder, denoiser pass, decoder)
compiled by torch.compile (inductor) with static shapes.

Compiling fuses the small elementwise ops around every matmul (adaLN modulate, LayerNorm,
GELU, residual adds, the cache's index copies) and drops Python's per-op overhead, which at
64 tokens a frame is a large share of the step. The history cache is allocated up front and
its slot is a tensor, so the denoiser compiles to two graphs (a plain step and the step
that writes the cache) on the first frame and every later frame replays them; shapes never
change, so nothing recompiles. Inductor keeps compiled code in its on-disk cache, so a
second process starts faster. Frame 1 pays for the compile: benches report it apart.
On a GPU the compiled kernels are then captured, with everything else a frame does, in one
CUDA graph (lsd.stream.cuda_graph), so inductor's own CUDA graphs are not asked for.
"""

from __future__ import annotations

import torch

from ..models import LSDModel
from ..models.history_cache import HistoryCache

# on the CPU, freezing folds the (inference-only) weights into the graph as constants, so
# oneDNN gets them prepacked; it needs no_grad, which the stream always runs under
CPU_OPTIONS = {"freezing": True}


def compile_streaming(model: LSDModel, cache: HistoryCache, batch: int = 1) -> None:
    """Replace `model`'s encoder, decoder and denoiser forward with compiled versions (in
    place: anything else using this model object gets them too; a model already compiled is
    left as it is, so streams can share one) and allocate `cache`."""
    den = model.denoiser
    dtype, device = den.embed.weight.dtype, den.embed.weight.device
    cache.allocate(batch, den.cfg.head_dim, dtype, device)
    if getattr(model, "compiled_for_streaming", False):
        return
    model.compiled_for_streaming = True
    options = CPU_OPTIONS if device.type == "cpu" else None
    wrap = lambda fn: torch.compile(fn, dynamic=False, options=options)
    den.forward = wrap(den.forward)
    model.codec._encode = wrap(model.codec._encode)
    model.codec._decode = wrap(model.codec._decode)
