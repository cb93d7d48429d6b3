"""What a model costs, counted: FLOPs of any call (torch's FLOP counter, taught the CPU
attention kernel) and one streaming denoising step against a full history cache, the unit
`lsd prune` cuts and `lsd bench model` times."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .lsd_model import LSDModel

aten = torch.ops.aten


def _cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# torch's counter knows the GPU attention kernels but not the CPU one
_EXTRA_FORMULAS = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_flops}


def count_flops(fn) -> int:
    """FLOPs (multiply-add = 2) of the matmuls, convolutions and attention in fn()."""
    with FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
        fn()
    return counter.get_total_flops()


def streaming_step(model: LSDModel):
    """(step, commit, cache): one denoising step of one frame against a full history cache
    (as in steady streaming), and the pass that commits a frame into that cache."""
    cfg, den = model.config, model.denoiser
    dtype = den.embed.weight.dtype
    z = torch.randn(1, 1, cfg.latent_channels, *cfg.latent_size,
                    generator=torch.Generator().manual_seed(0)).to(dtype)
    half, zero = torch.full((1, 1), 0.5), torch.zeros(1, 1)
    prompt = model.encode_prompts(["ink wash painting"])
    cache = model.new_cache()

    def commit():
        den(z, z, zero, zero, prompt, cache=cache, write=True)
        cache.advance()

    def step():
        den(z, z, half, zero, prompt, cache=cache)

    with torch.no_grad():
        for _ in range(cfg.denoiser.history):
            commit()
    return step, commit, cache
