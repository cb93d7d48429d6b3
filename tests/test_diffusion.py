"""Flow matching convention and samplers, checked on cases with known answers."""

import math

import pytest
import torch

from lsd.diffusion import (add_noise, euler_step, predict_x0, sample_euler, sample_shortcut,
                           sample_t_logit_normal, time_grid, velocity)


def test_interpolation_end_points_and_per_frame_levels():
    x0, noise = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)
    assert torch.equal(add_noise(x0, noise, torch.zeros(2)), x0)
    assert torch.equal(add_noise(x0, noise, torch.ones(2)), noise)
    t = torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.25, 0.0]])  # (B, T): own level per frame
    xt = add_noise(x0, noise, t)
    torch.testing.assert_close(xt[0, 1], 0.5 * x0[0, 1] + 0.5 * noise[0, 1])
    torch.testing.assert_close(xt[1, 1], 0.75 * x0[1, 1] + 0.25 * noise[1, 1])
    assert torch.equal(xt[1, 2], x0[1, 2]) and torch.equal(xt[0, 2], noise[0, 2])


def test_velocity_moves_along_the_straight_path():
    x0, noise = torch.randn(4, 8), torch.randn(4, 8)
    t, d = torch.full((4,), 0.7), 0.2
    stepped = euler_step(add_noise(x0, noise, t), velocity(x0, noise), d)
    torch.testing.assert_close(stepped, add_noise(x0, noise, t - d))
    torch.testing.assert_close(predict_x0(add_noise(x0, noise, t), velocity(x0, noise), t), x0)


@pytest.mark.parametrize("steps", [1, 3, 12])
@pytest.mark.parametrize("shortcut", [False, True])
def test_oracle_velocity_recovers_x0(steps, shortcut):
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 16, 16, generator=gen), torch.randn(3, 4, 16, 16, generator=gen)
    seen_d = []

    def oracle(x_t, t, d):
        seen_d.append(d)
        return (x_t - x0) / t.view(-1, 1, 1, 1)  # = noise - x0 on the true path

    sampler = sample_shortcut if shortcut else sample_euler
    out = sampler(oracle, noise, steps)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)
    assert len(seen_d) == steps
    expected_d = 1.0 / steps if shortcut else 0.0
    assert all(torch.allclose(d, torch.full_like(d, expected_d)) for d in seen_d)


def test_time_grid_lands_exactly_on_zero():
    for steps in (1, 2, 3, 6, 7, 12):
        g = time_grid(steps)
        assert g[0] == 1.0 and g[-1] == 0.0 and len(g) == steps + 1
        assert torch.allclose(g[:-1] - g[1:], torch.full((steps,), 1 / steps, dtype=g.dtype))
    with pytest.raises(ValueError):
        time_grid(0)


def test_logit_normal_levels():
    t = sample_t_logit_normal((200_000,), generator=torch.Generator().manual_seed(0))
    assert 0 < t.min() and t.max() < 1
    assert abs(t.median().item() - 0.5) < 0.01  # symmetric around 0.5 for mean 0
    # P(t < sigmoid(1)) = P(z < 1) for z ~ N(0, 1)
    share = (t < 1 / (1 + math.exp(-1))).float().mean().item()
    assert abs(share - 0.8413) < 0.005


@pytest.mark.parametrize("commit", ["clean", "last_step"])
def test_commit_modes_write_the_history_once_per_frame(commit):
    """clean: steps passes + one pass over the finished frame (t = 0) writes the cache;
    last_step: the last of the steps passes (t = d = 1/steps) writes it, one pass fewer."""
    from lsd.config import SampleConfig
    from lsd.diffusion import generate_frame
    from lsd.models import LSDModel
    from test_models import randomized, small_config

    model = randomized(LSDModel(small_config()))
    calls = []

    def recording(*args, **kw):
        calls.append((round(float(args[2][0, 0]), 4), round(float(args[3][0, 0]), 4), kw.get("write", False)))
        return model.denoiser(*args, **kw)

    cache = model.new_cache()
    c, (h, w) = model.config.latent_channels, model.config.latent_size
    z_in, noise = torch.randn(1, c, h, w), torch.randn(1, c, h, w)
    prompt = model.encode_prompts(["ink wash"])
    with torch.no_grad():
        generate_frame(recording, cache, z_in, prompt, noise,
                       SampleConfig(steps=3, shortcut=True, commit=commit))
    writes = [call for call in calls if call[2]]
    assert cache.filled == 1 and len(writes) == 1
    if commit == "clean":
        assert len(calls) == 4 and writes[0][:2] == (0.0, 0.0)
    else:
        assert len(calls) == 3 and calls[-1] == (round(1 / 3, 4), round(1 / 3, 4), True)
    with pytest.raises(ValueError, match="commit"):
        SampleConfig(steps=3, commit="later")
