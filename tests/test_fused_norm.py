"""The Triton adaLN kernel, run on the CPU by Triton's interpreter (in a subprocess: the
interpreter is chosen by an environment variable read when kernels are made)."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from lsd.models.fused_norm import norm_modulate, triton_runs_on

pytest.importorskip("triton")

CHECK = textwrap.dedent("""
    import torch, torch.nn as nn
    from lsd.models.fused_norm import norm_modulate, triton_runs_on
    from lsd.models.layers import modulate
    g = torch.Generator().manual_seed(0)
    for dtype, dim in [(torch.float32, 96), (torch.bfloat16, 256)]:  # 96: a masked block
        x = (torch.randn(2, 3, 5, dim, generator=g) * 3 + 1).to(dtype)
        ada = torch.randn(2, 3, 1, 2 * dim, generator=g).to(dtype)
        shift, scale = ada.chunk(2, dim=-1)  # strided views, as the blocks make them
        norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        assert triton_runs_on(x)
        got = norm_modulate(norm, x, shift, scale)
        want = modulate(norm(x.float()), shift.float(), scale.float())
        assert got.dtype == dtype and got.shape == x.shape
        err = (got.float() - want).abs().max().item()
        tol = 1e-4 if dtype == torch.float32 else 0.1
        assert err < tol, (dtype, err)
        print("ok", dtype, err)

    # training needs gradients, which the kernel has not: the plain ops run
    x = torch.randn(1, 2, 3, 64, requires_grad=True)
    shift, scale = torch.zeros(1, 2, 1, 64), torch.zeros(1, 2, 1, 64)
    norm = nn.LayerNorm(64, elementwise_affine=False)
    norm_modulate(norm, x, shift, scale).sum().backward()
    assert x.grad is not None
    print("ok grad")

    # wired into the denoiser: a streaming frame with the kernel = the same frame without
    import lsd.models.fused_norm as fused
    from lsd.models import LSDModel
    from test_models import randomized, small_config
    model = randomized(LSDModel(small_config())).eval()
    den, cfg = model.denoiser, model.config
    z = torch.randn(1, 1, cfg.latent_channels, *cfg.latent_size, generator=g)
    level, prompt = torch.full((1, 1), 0.5), model.encode_prompts(["ink wash"])
    with torch.no_grad():
        fast = den(z, z, level, level, prompt, cache=den.new_cache(), write=True)
        fused.triton_runs_on = lambda x: False
        plain = den(z, z, level, level, prompt, cache=den.new_cache(), write=True)
    assert (fast - plain).abs().max().item() < 1e-4
    print("ok model")
""")


def test_kernel_matches_the_plain_ops_in_the_interpreter():
    tests = os.path.dirname(__file__)
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ok") == 4


def test_plain_ops_run_where_triton_cannot():
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("this process interprets Triton")
    x = torch.randn(1, 2, 4, 8)
    assert not triton_runs_on(x)  # a CPU tensor, no interpreter
    norm = torch.nn.LayerNorm(8, elementwise_affine=False)
    shift, scale = torch.randn(1, 2, 1, 8), torch.randn(1, 2, 1, 8)
    assert torch.equal(norm_modulate(norm, x, shift, scale), norm(x) * (1 + scale) + shift)
