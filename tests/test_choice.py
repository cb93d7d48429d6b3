"""The choice input (denoiser.choice): the stream's picks (lsd/styles/picks.py) are the
pop_art palette's colours, an added input starts silent, a stream keeps one code for
every frame and prompt, the trainer is told the picks each clip's world drew, and
training moves the projection."""

import dataclasses

import numpy as np
import pytest
import torch

from lsd.config import SampleConfig
from lsd.models import LSDModel
from lsd.models.grow import grown_state
from lsd.stream.engine import Stream
from lsd.styles.memory import POP_COLOURS, pop_palette
from lsd.styles.picks import CODE_SIZE, OPTIONS, PICKS, null_code, picks_code, stream_picks

from test_models import clip_inputs, randomized, small_config
from test_train import small_config as small_train_config


def code_of(seed: int) -> torch.Tensor:
    return torch.from_numpy(picks_code(seed))[None]


def with_choice(cfg, choice: bool = True):
    return dataclasses.replace(cfg, denoiser=dataclasses.replace(cfg.denoiser, choice=choice))


def test_an_added_code_changes_nothing_until_trained():
    start = randomized(LSDModel(small_config()))
    grown = LSDModel(with_choice(small_config()))
    grown.load_state_dict(grown_state(start, grown))
    z_t, z_in, t, d, _ = clip_inputs(start, frames=3)
    with torch.no_grad():
        prompt = grown.encode_prompts(["pop art", "sepia"], torch.cat([code_of(1), code_of(2)]))
        torch.testing.assert_close(prompt, start.encode_prompts(["pop art", "sepia"]))
        torch.testing.assert_close(grown.denoiser(z_t, z_in, t, d, prompt),
                                   start.denoiser(z_t, z_in, t, d, prompt))
    with pytest.raises(ValueError, match="added denoiser.choice"):
        grown_state(grown, start)  # a code cannot be taken away


def test_picks_are_distinct_options_drawn_from_the_seed_and_the_palette_is_them():
    picks = stream_picks(3)
    assert np.array_equal(picks, stream_picks(3)) and len(set(picks.tolist())) == PICKS
    assert picks.min() >= 0 and picks.max() < OPTIONS
    assert any(not np.array_equal(stream_picks(s), picks) for s in range(4, 8))
    code = picks_code(3).reshape(PICKS, OPTIONS)
    assert code.sum() == PICKS and np.array_equal(code.argmax(1), picks)
    # the renderer's palette is the picks the model is told
    assert np.array_equal(pop_palette(3), POP_COLOURS[code.argmax(1)])


def test_a_stream_keeps_its_own_picks_for_every_prompt():
    model = randomized(LSDModel(with_choice(small_config())))
    stream = Stream(model, "pop art", SampleConfig(steps=2), seed=3, dtype=torch.float32)
    text = lambda p: model.text([p])
    moved = lambda p: text(p) + model.denoiser.choice_embed(code_of(3))
    assert torch.equal(stream.code, code_of(3))
    with torch.no_grad():
        torch.testing.assert_close(stream._embedding, moved("pop art"))
        assert (stream._embedding - text("pop art")).abs().max() > 1e-3
        stream.set_prompt("sepia photo", blend_frames=0)
        torch.testing.assert_close(stream._embedding, moved("sepia photo"))
    # a model without a code: the plain prompt
    plain = Stream(randomized(LSDModel(small_config())), "pop art", SampleConfig(steps=2), seed=3)
    assert plain.code is None


def test_outputs_follow_the_picks_not_the_seed_alone():
    """Two streams with the same sampling noise but other picks make other frames; the
    same picks make the same frames."""
    model = randomized(LSDModel(with_choice(small_config())))
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)

    def first_frame(code_seed: int) -> np.ndarray:
        stream = Stream(model, "pop art", SampleConfig(steps=2), seed=0, dtype=torch.float32)
        stream.code = code_of(code_seed)
        stream._embeddings.clear()
        stream._embedding = stream._embed("pop art")
        return stream.step(frame)

    assert np.array_equal(first_frame(1), first_frame(1))
    assert not np.array_equal(first_frame(1), first_frame(2))


def test_the_trainer_is_told_the_picks_each_clips_world_drew():
    from lsd.train.clips import ClipPool
    from lsd.train.diffusion_forcing import diffusion_forcing

    pool = ClipPool(3, 2, (32, 32))
    for i, key in enumerate(pool.keys):
        assert np.array_equal(pool.code[i], picks_code(pool._spec(int(key))[0]))
    g = torch.Generator().manual_seed(0)
    clips = pool.sample(4, g)
    assert clips["code"].shape == (4, CODE_SIZE)
    cfg = small_train_config()
    model = LSDModel(with_choice(cfg.model))
    inputs = diffusion_forcing(model, clips, cfg, g)[0]
    assert torch.equal(inputs["code"], clips["code"])
    # a model without a choice input is told nothing
    assert diffusion_forcing(LSDModel(cfg.model), clips, cfg, g)[0]["code"] is None
    # with choice_dropout, a share of the clips is told no picks (the null code), the rest theirs
    clips = pool.sample(64, g)
    dropping = small_train_config(optim={"choice_dropout": 0.5})
    code = diffusion_forcing(model, clips, dropping, g)[0]["code"]
    untold = (code == torch.from_numpy(null_code())).all(1)
    assert torch.equal(code[~untold], clips["code"][~untold]) and 16 < untold.sum() < 48


def test_the_null_code_is_every_streams_code_averaged():
    codes = np.stack([picks_code(seed) for seed in range(3000)])
    np.testing.assert_allclose(codes.mean(0), null_code(), atol=0.02)
    assert null_code().reshape(PICKS, OPTIONS).sum(1) == pytest.approx(np.ones(PICKS))


def test_training_moves_the_projection(tmp_path):
    from lsd.models import load
    from lsd.train.trainer import train

    model = dict(small_train_config().to_dict()["model"])
    model["denoiser"] = {**model["denoiser"], "choice": True}
    cfg = small_train_config(model=model, optim={"choice_lr_scale": 10.0, "steps": 6})
    train(cfg, tmp_path / "run", progress=False)
    trained = load(tmp_path / "run" / "model").float()
    torch.manual_seed(cfg.run.seed)  # the trainer's initial weights
    start = LSDModel(cfg.model)
    assert not start.denoiser.choice_embed.weight.any()
    # every clip is told one option per pick: each pick's block has rows that moved
    moved = trained.denoiser.choice_embed.weight.abs().amax(0).view(PICKS, OPTIONS) > 0
    assert moved.any(1).all()


def test_bad_choice_settings_are_refused():
    with pytest.raises(ValueError, match="denoiser.choice must be true or false"):
        with_choice(small_config(), 8).validate()
    model = dict(small_train_config().to_dict()["model"])
    model["denoiser"] = {**model["denoiser"], "choice": True}
    with pytest.raises(ValueError, match="optim.choice_lr_scale must be > 0"):
        small_train_config(model=model, optim={"choice_lr_scale": 0.0})
    from lsd.train.config import TrainConfig

    with pytest.raises(ValueError, match="shortcut distillation of a model with a choice input"):
        TrainConfig.from_dict({**small_train_config().to_dict(), "model": model,
                               "objective": "shortcut"})
    guided = lambda w, m=model: {**small_train_config().to_dict(), "model": m,
                                 "sample": {"choice_guidance": w}}
    assert TrainConfig.from_dict(guided(2.0)).sample.choice_guidance == 2.0
    with pytest.raises(ValueError, match="sample.choice_guidance_t_min must be in"):
        TrainConfig.from_dict({**guided(2.0), "sample": {"choice_guidance": 2.0,
                                                         "choice_guidance_t_min": -0.1}})
    with pytest.raises(ValueError, match="optim.choice_dropout must be in"):
        small_train_config(model=model, optim={"choice_dropout": 1.0})
    with pytest.raises(ValueError, match="sample.choice_guidance must be >= 0"):
        TrainConfig.from_dict(guided(-1.0))
    with pytest.raises(ValueError, match="sample.choice_guidance needs a choice input"):
        TrainConfig.from_dict(guided(2.0, small_train_config().to_dict()["model"]))


def test_choice_guidance_pushes_each_step_away_from_the_prompt_without_the_code():
    """One Euler step is linear in the velocity, so a guided frame is the unguided one
    moved `guidance` times the way the code moves it; the history hears only the prompt."""
    from lsd.diffusion import commit_frame, generate_frame

    model = randomized(LSDModel(with_choice(small_config())))
    z_in = torch.randn(1, model.config.latent_channels, *model.config.latent_size)
    noise = torch.randn(z_in.shape)
    with torch.no_grad():
        told, plain = model.encode_prompts(["pop art"], code_of(3)), model.encode_prompts(["pop art"])

        def frame(prompt, **guide):
            cache = model.new_cache()
            sample = SampleConfig(steps=1, **guide)
            return generate_frame(model.denoiser, cache, z_in, prompt, noise, sample, unguided=plain), cache

        (z_told, _), (z_plain, _) = frame(told), frame(plain)
        z_guided, cache_guided = frame(told, choice_guidance=2.5)
        torch.testing.assert_close(z_guided, z_plain + 2.5 * (z_told - z_plain))
        assert (z_guided - z_told).abs().amax() > 1e-3
        assert torch.equal(frame(told, choice_guidance=1.0)[0], z_told)  # 1: off
        assert torch.equal(frame(told, choice_guidance=2.5, choice_guidance_t_min=0.5)[0],
                           z_guided)  # the one step starts at level 1 >= 0.5: guided
    # the guided frame is committed with the told prompt, as an unguided stream commits
    with torch.no_grad():
        cache = model.new_cache()
        commit_frame(model.denoiser, cache, z_guided, z_in, told)
    torch.testing.assert_close(cache_guided.keys, cache.keys)


def test_guidance_stops_below_its_lowest_level():
    """With guidance_t_min, the steps that start below it are not guided: of two Euler steps
    (levels 1 and 0.5), t_min 0.75 guides only the first."""
    from lsd.diffusion import euler_step, generate_frame

    model = randomized(LSDModel(with_choice(small_config())))
    z_in = torch.randn(1, model.config.latent_channels, *model.config.latent_size)
    noise = torch.randn(z_in.shape)
    with torch.no_grad():
        told, plain = model.encode_prompts(["pop art"], code_of(3)), model.encode_prompts(["pop art"])
        cache = model.new_cache()
        v = lambda x, t, prompt: model.denoiser(x[:, None], z_in[:, None], torch.full((1, 1), t),
                                                torch.zeros(1, 1), prompt, cache=cache)[:, 0]
        u, g = v(noise, 1.0, plain), v(noise, 1.0, told)
        x = euler_step(noise, u + 2.0 * (g - u), 0.5)
        expected = euler_step(x, v(x, 0.5, told), 0.5)
        z = generate_frame(model.denoiser, model.new_cache(), z_in, told, noise,
                           SampleConfig(steps=2, choice_guidance=2.0, choice_guidance_t_min=0.75),
                           unguided=plain)
        torch.testing.assert_close(z, expected)
        everywhere = generate_frame(model.denoiser, model.new_cache(), z_in, told, noise,
                                    SampleConfig(steps=2, choice_guidance=2.0), unguided=plain)
        assert (everywhere - z).abs().amax() > 1e-3


def test_a_stream_guides_on_its_own_picks():
    model = randomized(LSDModel(with_choice(small_config())))
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    stream = lambda **kw: Stream(model, "pop art", model.sample.but(steps=2, **kw), seed=3,
                                 dtype=torch.float32)
    guided = stream(choice_guidance=3.0)
    with torch.no_grad():
        # it compares with the prompt told the null code
        null = torch.from_numpy(null_code())[None]
        torch.testing.assert_close(guided._embedding - guided._choice_shift,
                                   model.denoiser.with_choice(model.text(["pop art"]), null))
    assert stream()._choice_shift is None  # off by default: no second pass
    out = [s.step(frame) for s in (stream(), guided, stream(choice_guidance=1.0))]
    assert np.array_equal(out[0], out[2]) and not np.array_equal(out[0], out[1])
    with pytest.raises(ValueError, match="needs a model with a choice input"):
        Stream(randomized(LSDModel(small_config())), "pop art", SampleConfig(choice_guidance=2.0))
    with pytest.raises(ValueError, match="choice_guidance must be >= 0"):
        stream(choice_guidance=-1.0)
    with pytest.raises(ValueError, match="choice_guidance_t_min must be in"):
        stream(choice_guidance=2.0, choice_guidance_t_min=1.0)
    # guiding only from level 1 down to 0.6: the second of two steps (level 0.5) unguided
    half = stream(choice_guidance=3.0, choice_guidance_t_min=0.6).step(frame)
    assert not np.array_equal(half, out[0]) and not np.array_equal(half, out[1])
    model.checkpoint_config = {"sample": {"choice_guidance": 2.0}}
    assert stream().sample.choice_guidance == 2.0
    assert stream(choice_guidance=1.0).sample.choice_guidance == 1.0
