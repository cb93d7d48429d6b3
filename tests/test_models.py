"""The model's spec: frame causality, streaming == clip pass, constant memory, checkpoint
round trips, and the shapes and sizes the configs promise."""

import pickle

import pytest
import torch

import lsd
from lsd.checkpoint import MODEL_FILE, CheckpointError
from lsd.config import CodecConfig, DenoiserConfig, ModelConfig, SampleConfig, TextConfig, preset
from lsd.diffusion import rollout
from lsd.models import LSDModel, PatchCodec, build_codec

B = 2


def small_config(history: int = 2, depth: int = 2, size: int = 32) -> ModelConfig:
    """Every feature of the real model at a size that runs in milliseconds."""
    return ModelConfig(
        name="test", frame_size=(size, size),
        codec=CodecConfig(channels=(64, 64)),
        text=TextConfig(dim=64, depth=1, heads=1, max_bytes=32, out_dim=64),
        denoiser=DenoiserConfig(dim=64, depth=depth, heads=2, patch=1, history=history))


def randomized(model: LSDModel, seed: int = 0) -> LSDModel:
    """adaLN-Zero starts every block as the identity and the output at zero; give the
    zero-initialised weights values so that every path actually computes something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def clip_inputs(model: LSDModel, frames: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    c, (h, w) = model.config.latent_channels, model.config.latent_size
    z_t = torch.randn(B, frames, c, h, w, generator=g)
    z_in = torch.randn(B, frames, c, h, w, generator=g)
    t = torch.rand(B, frames, generator=g)
    d = torch.rand(B, frames, generator=g) * 0.3
    prompt = torch.randn(B, frames, model.config.text.out_dim, generator=g)
    return z_t, z_in, t, d, prompt


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomized(LSDModel(small_config()))


# -- causality ------------------------------------------------------------------------------


@pytest.mark.parametrize("j", [0, 2, 4])
def test_later_frames_never_change_earlier_outputs(model, j):
    frames = 6
    inputs = clip_inputs(model, frames)
    changed = [x.clone() for x in inputs]
    g = torch.Generator().manual_seed(9)
    for x in changed:
        x[:, j + 1:] = torch.randn(x[:, j + 1:].shape, generator=g)
    with torch.no_grad():
        a, b = model.denoiser(*inputs), model.denoiser(*changed)
    assert torch.equal(a[:, : j + 1], b[:, : j + 1])
    assert (a[:, j + 1:] - b[:, j + 1:]).abs().amax() > 1e-3  # the change did reach them


def test_a_frame_sees_exactly_k_frames_back():
    """With one layer the receptive field is the window itself: frame i depends on frame
    i-k and not on frame i-k-1 (deeper models see further through their history's own
    history, as a streamed model does through its cache)."""
    k = 2
    torch.manual_seed(0)
    m = randomized(LSDModel(small_config(history=k, depth=1)))
    inputs = clip_inputs(m, 5)

    def output_after_changing(frame):
        changed = [x.clone() for x in inputs]
        changed[0][:, frame] += 1.0  # the noisy latent of one frame
        with torch.no_grad():
            return m.denoiser(*changed)[:, 4]

    with torch.no_grad():
        base = m.denoiser(*inputs)[:, 4]
    assert torch.equal(output_after_changing(4 - k - 1), base)
    assert (output_after_changing(4 - k) - base).abs().amax() > 1e-3


# -- streaming --------------------------------------------------------------------------------


def stream_frames(model, inputs):
    z_t, z_in, t, d, prompt = inputs
    cache, outs = model.new_cache(), []
    with torch.no_grad():
        for j in range(z_t.shape[1]):
            s = slice(j, j + 1)
            outs.append(model.denoiser(z_t[:, s], z_in[:, s], t[:, s], d[:, s], prompt[:, s],
                                       cache=cache, write=True))
            cache.advance()
    return torch.cat(outs, dim=1)


def test_streaming_with_the_cache_equals_the_clip_pass(model):
    inputs = clip_inputs(model, 7)  # longer than the window, so the ring buffer wraps
    with torch.no_grad():
        full = model.denoiser(*inputs)
    streamed = stream_frames(model, inputs)
    assert full.abs().mean() > 0.1
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-4)


def test_streaming_equivalence_holds_in_bf16():
    torch.manual_seed(0)
    m = randomized(LSDModel(small_config())).to(torch.bfloat16)
    inputs = [x.to(torch.bfloat16) for x in clip_inputs(m, 6)]
    with torch.no_grad():
        full = m.denoiser(*inputs).float()
    streamed = stream_frames(m, inputs).float()
    err = (streamed - full).abs().amax() / full.abs().amax()
    assert err < 0.03  # bf16 rounding (8 bits of mantissa) through the layers, no more


def test_reading_the_cache_without_writing_leaves_it_alone(model):
    z_t, z_in, t, d, prompt = clip_inputs(model, 3)
    cache = model.new_cache()
    with torch.no_grad():
        model.denoiser(z_t[:, :1], z_in[:, :1], t[:, :1], d[:, :1], prompt[:, 0], cache=cache,
                       write=True)
        cache.advance()
        keys = cache.keys.clone()
        a = model.denoiser(z_t[:, 1:2], z_in[:, 1:2], t[:, 1:2], d[:, 1:2], prompt[:, 1], cache=cache)
        b = model.denoiser(z_t[:, 1:2], z_in[:, 1:2], t[:, 1:2], d[:, 1:2], prompt[:, 1], cache=cache)
    assert torch.equal(cache.keys, keys) and torch.equal(a, b)


def test_cache_memory_is_constant_over_10000_frames():
    torch.manual_seed(0)
    m = randomized(LSDModel(small_config(history=3, depth=1, size=16)))
    z_t, z_in, t, d, prompt = clip_inputs(m, 1)
    cache = m.new_cache()
    sizes, pointers = {}, set()
    with torch.no_grad():
        for step in range(1, 10_001):
            m.denoiser(z_t, z_in, t, d, prompt, cache=cache, write=True)
            cache.advance()
            if step in (3, 10_000):
                sizes[step] = cache.nbytes()
            pointers.add(cache.keys.data_ptr())
    assert sizes[3] == sizes[10_000] > 0
    assert len(pointers) == 1  # the same buffer all along, never reallocated
    assert sorted(cache.age.tolist()) == [1, 2, 3]  # ages stay bounded by k


def test_rollout_matches_sampling_with_the_clip_pass(model):
    """The cached frame-by-frame rollout gives the frames that re-running the whole
    history through the clip pass at every denoising step gives."""
    frames, steps = 4, 3
    _, z_in, _, _, prompt = clip_inputs(model, frames)
    prompt = prompt[:, 0]
    g = torch.Generator().manual_seed(5)
    fast = rollout(model.denoiser, model.new_cache(), z_in, prompt, SampleConfig(steps=steps), g)

    g = torch.Generator().manual_seed(5)
    done = []
    for j in range(frames):
        x = torch.randn(z_in[:, j].shape, generator=g)
        for i in range(steps):
            level, size = 1 - i / steps, 1 / steps
            history = torch.stack(done + [x], dim=1)
            t = torch.zeros(B, j + 1)
            t[:, -1] = level
            with torch.no_grad():
                v = model.denoiser(history, z_in[:, : j + 1], t, torch.zeros(B, j + 1), prompt)
            x = x - size * v[:, -1]
        done.append(x)
    torch.testing.assert_close(fast, torch.stack(done, dim=1), atol=1e-4, rtol=1e-4)


def test_cache_refuses_a_clip():
    m = LSDModel(small_config())
    z_t, z_in, t, d, prompt = clip_inputs(m, 2)
    with pytest.raises(ValueError, match="one frame at a time"):
        m.denoiser(z_t, z_in, t, d, prompt, cache=m.new_cache())


# -- codec ------------------------------------------------------------------------------------


def test_codec_shapes_and_calibrated_statistics():
    cfg = small_config(size=64)
    codec = build_codec(cfg.codec)
    frames = torch.rand(3, 4, 3, 64, 64)
    z = codec.encode(frames)
    assert z.shape == (3, 4, 8, 8, 8)
    assert codec.decode(z).shape == frames.shape
    codec.calibrate(frames)
    z = codec.encode(frames).movedim(-3, 0).reshape(8, -1)
    torch.testing.assert_close(z.mean(1), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(1), torch.ones(8), atol=1e-3, rtol=0)


def test_pixel_space_codec_is_lossless():
    codec = PatchCodec(CodecConfig(kind="patches"))
    frames = torch.rand(2, 3, 32, 48)
    codec.calibrate(frames)
    z = codec.encode(frames)
    assert z.shape == (2, 192, 4, 6)
    torch.testing.assert_close(codec.decode(z), frames, atol=1e-6, rtol=0)


# -- text -------------------------------------------------------------------------------------


def test_prompt_encoder_handles_any_string(model):
    prompts = ["ink wash painting", "  INK   wash Painting ", "水墨画", "", "x" * 500, "thermal"]
    with torch.no_grad():
        e = model.encode_prompts(prompts)
    assert e.shape == (6, model.config.text.out_dim) and torch.isfinite(e).all()
    assert torch.equal(e[0], e[1])  # case and spacing carry no style
    assert (e[0] - e[5]).abs().amax() > 1e-3  # different prompts differ
    with pytest.raises(TypeError):
        model.encode_prompts([3])


# -- configs and checkpoints -------------------------------------------------------------------


def test_tiny_fits_the_cpu_budget_and_is_aligned():
    m = LSDModel(preset("tiny"))
    counts = m.parameter_counts()
    assert counts["total"] <= 10_000_000
    assert m.config.unaligned() == []


def test_base_is_a_gpu_size_and_runs_a_streaming_step():
    torch.manual_seed(0)
    m = LSDModel(preset("base")).to(torch.bfloat16).eval()
    assert 150e6 <= m.parameter_counts()["denoiser"] <= 300e6
    assert m.config.unaligned() == []
    c, (h, w) = m.config.latent_channels, m.config.latent_size
    z = torch.randn(1, 1, c, h, w, dtype=torch.bfloat16)
    cache = m.new_cache()
    with torch.no_grad():
        prompt = m.encode_prompts(["cyberpunk neon"])
        v = m.denoiser(z, z, torch.full((1, 1), 0.5), torch.zeros(1, 1), prompt, cache=cache,
                       write=True)
    assert v.shape == z.shape and torch.isfinite(v.float()).all()


def test_config_yaml_round_trip_and_strictness(tmp_path):
    import yaml

    cfg = preset("base")
    text = yaml.safe_dump(cfg.to_dict())
    assert "tuple" not in text
    assert ModelConfig.from_dict(yaml.safe_load(text)) == cfg
    bad = cfg.to_dict()
    bad["denoiser"]["dpeth"] = 3
    with pytest.raises(ValueError, match="dpeth"):
        ModelConfig.from_dict(bad)
    with pytest.raises(ValueError, match="depth"):
        ModelConfig.from_dict({"denoiser": {"depth": "six"}})
    with pytest.raises(ValueError, match="multiples"):
        ModelConfig(frame_size=(100, 128))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_save_load_round_trip_is_bit_identical(model, tmp_path, dtype):
    m = randomized(LSDModel(small_config()), seed=3).to(dtype)
    m.codec.calibrate(torch.rand(4, 3, 32, 32).to(dtype))
    m.save(tmp_path / "ckpt", extra_config={"train": {"steps": 7}})
    back = lsd.load(tmp_path / "ckpt")
    assert back.config == m.config and not back.training
    a, b = m.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    inputs = [x.to(dtype) for x in clip_inputs(m, 3)]
    with torch.no_grad():
        assert torch.equal(m.denoiser(*inputs), back.denoiser(*inputs))


def test_load_refuses_pickles_and_mismatched_weights(tmp_path):
    m = LSDModel(small_config())
    m.save(tmp_path / "ok")
    (tmp_path / "ok" / MODEL_FILE).write_bytes(pickle.dumps(m.state_dict()))
    with pytest.raises(CheckpointError, match="safetensors"):
        lsd.load(tmp_path / "ok")

    m.save(tmp_path / "other")
    import yaml

    cfg_path = tmp_path / "other" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["denoiser"]["depth"] = 3
    cfg_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        lsd.load(tmp_path / "other")
    with pytest.raises(FileNotFoundError):
        lsd.load(tmp_path / "missing")


@pytest.mark.parametrize("history_d", [False, True])
def test_history_mode_equals_streaming_on_committed_history(model, history_d):
    """Every frame generated against history frames (at their levels, and step sizes when
    given, as a last-step commit writes them), in one pass, equals committing those history
    frames to a cache and stepping the frame."""
    frames = 5
    z_t, z_in, t, d, prompt = clip_inputs(model, frames)
    g = torch.Generator().manual_seed(4)
    z_hist = torch.randn(z_t.shape, generator=g)
    t_hist = torch.rand(B, frames, generator=g) * 0.2
    d_hist = torch.rand(B, frames, generator=g) * 0.4 if history_d else torch.zeros(B, frames)
    history = (z_hist, t_hist, d_hist) if history_d else (z_hist, t_hist)
    with torch.no_grad():
        together = model.denoiser(z_t, z_in, t, d, prompt, history=history)
        for j in range(frames):
            cache = model.new_cache()
            for i in range(j):  # commit the history frames before j
                s = slice(i, i + 1)
                model.denoiser(z_hist[:, s], z_in[:, s], t_hist[:, s], d_hist[:, s],
                               prompt[:, s], cache=cache, write=True)
                cache.advance()
            s = slice(j, j + 1)
            alone = model.denoiser(z_t[:, s], z_in[:, s], t[:, s], d[:, s], prompt[:, s], cache=cache)
            torch.testing.assert_close(together[:, s], alone, atol=1e-5, rtol=1e-4)
        plain = model.denoiser(z_t, z_in, t, d, prompt)
    assert (plain[:, 1:] - together[:, 1:]).abs().amax() > 1e-3  # the history did matter
    torch.testing.assert_close(plain[:, 0], together[:, 0], atol=1e-5, rtol=1e-4)  # frame 0 has none


def test_config_overrides_change_a_preset_and_are_checked():
    from lsd.config import with_overrides

    cfg = with_overrides(preset("tiny"), ["denoiser.patch=1", "denoiser.history=2"])
    assert cfg.tokens_per_frame == 256 and cfg.denoiser.history == 2
    assert preset("tiny").denoiser.patch == 2  # the preset itself is untouched
    with pytest.raises(ValueError, match="dpeth"):
        with_overrides(preset("tiny"), ["denoiser.dpeth=3"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        with_overrides(preset("tiny"), ["denoiser.patch"])


def test_a_grown_denoiser_computes_what_it_grew_from_and_can_learn():
    import dataclasses

    from lsd.models.grow import grown_state

    start = randomized(LSDModel(small_config(depth=2)))
    deeper = LSDModel(small_config(depth=3))
    deeper.load_state_dict(grown_state(start, deeper))
    z_t, z_in, t, d, prompt = clip_inputs(start, frames=3)
    with torch.no_grad():
        torch.testing.assert_close(deeper.denoiser(z_t, z_in, t, d, prompt),
                                   start.denoiser(z_t, z_in, t, d, prompt))
    # the new block is the identity through zero gates, yet its gates get a gradient
    deeper.denoiser(z_t, z_in, t, d, prompt).square().mean().backward()
    assert deeper.denoiser.blocks[2].ada[-1].weight.grad.abs().max() > 0
    wider = dataclasses.replace(small_config(depth=3), denoiser=DenoiserConfig(dim=32, depth=3, heads=2, patch=1, history=2))
    with pytest.raises(ValueError, match="larger denoiser.depth"):
        grown_state(start, LSDModel(wider))
    with pytest.raises(ValueError, match="larger denoiser.depth"):
        grown_state(deeper, start)  # shallower
