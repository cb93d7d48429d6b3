"""adaLN's LayerNorm + modulate as one Triton kernel, for eager runs on a GPU.

Eagerly, `modulate(norm(x), shift, scale)` is four kernels that each read and write the
whole activation (norm, 1 + scale, multiply, add); every block does it twice. The kernel
reads x once and writes the result once. Under torch.compile inductor already fuses the
same ops, so the kernel steps aside there; it has no backward, so training takes the plain
ops too. It only runs where Triton can: CUDA tensors, or any tensor in Triton's interpreter (TRITON_INTERPRET=1, set before the first call:
that is how the tests check it on a CPU). Elsewhere the plain ops run.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch
import torch.nn as nn

from .layers import modulate


@functools.cache
def _triton(cuda: bool) -> bool:
    """Whether Triton can run kernels on such tensors (looked up once: this is per pass)."""
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    return (cuda or interpreting) and importlib.util.find_spec("triton") is not None


def triton_runs_on(x: torch.Tensor) -> bool:
    if torch.compiler.is_compiling():  # inductor fuses these ops itself
        return False
    return _triton(x.is_cuda)


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def norm_modulate_kernel(x_ptr, shift_ptr, scale_ptr, out_ptr, tokens, dim, eps,
                             BLOCK: tl.constexpr):
        row = tl.program_id(0)  # one token a program; its frame's conditioning row:
        cond = row // tokens
        cols = tl.arange(0, BLOCK)
        inside = cols < dim
        x = tl.load(x_ptr + row * dim + cols, mask=inside, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=0) / dim
        centred = tl.where(inside, x - mean, 0.0)
        normed = centred / tl.sqrt(tl.sum(centred * centred, axis=0) / dim + eps)
        shift = tl.load(shift_ptr + cond * dim + cols, mask=inside, other=0.0).to(tl.float32)
        scale = tl.load(scale_ptr + cond * dim + cols, mask=inside, other=0.0).to(tl.float32)
        y = normed * (1.0 + scale) + shift
        tl.store(out_ptr + row * dim + cols, y.to(out_ptr.dtype.element_ty), mask=inside)

    return norm_modulate_kernel, triton.next_power_of_2


def norm_modulate(norm: nn.LayerNorm, x: torch.Tensor, shift: torch.Tensor,
                  scale: torch.Tensor) -> torch.Tensor:
    """modulate(norm(x), shift, scale) for x (B, F, N, D) and shift, scale (B, F, 1, D);
    `norm` has no affine weights (adaLN's). The kernel has no backward: training takes the
    plain ops."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, shift, scale))
    if needs_grad or not triton_runs_on(x) or norm.elementwise_affine or x.ndim != 4:
        return modulate(norm(x), shift, scale)
    kernel, next_power_of_2 = _kernel()
    b, f, n, dim = x.shape
    x = x.contiguous()
    out = torch.empty_like(x)
    rows = lambda t: t.expand(b, f, 1, dim).reshape(b * f, dim).contiguous()  # tiny: B * F rows
    kernel[(b * f * n,)](x, rows(shift), rows(scale), out, n, dim, norm.eps,
                         BLOCK=next_power_of_2(dim))
    return out
