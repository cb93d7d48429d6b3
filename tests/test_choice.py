"""The per-stream choice code (lsd/models/choice.py): it starts silent, its posterior pools
away positions and its KL is the closed form, a stream keeps one code for every frame and
prompt, and training moves both the code's projection and its posterior."""

import dataclasses

import numpy as np
import pytest
import torch

from lsd.models import LSDModel
from lsd.models.choice import stream_code
from lsd.models.grow import grown_state
from lsd.stream.engine import Stream

from test_models import clip_inputs, randomized, small_config
from test_train import small_config as small_train_config

CHOICE = 4


def with_choice(cfg, choice: int = CHOICE):
    return dataclasses.replace(cfg, denoiser=dataclasses.replace(cfg.denoiser, choice=choice))


def test_an_added_code_changes_nothing_until_trained():
    start = randomized(LSDModel(small_config()))
    grown = LSDModel(with_choice(small_config()))
    grown.load_state_dict(grown_state(start, grown))
    z_t, z_in, t, d, _ = clip_inputs(start, frames=3)
    with torch.no_grad():
        prompt = grown.encode_prompts(["pop art", "sepia"], torch.randn(2, CHOICE))
        torch.testing.assert_close(prompt, start.encode_prompts(["pop art", "sepia"]))
        torch.testing.assert_close(grown.denoiser(z_t, z_in, t, d, prompt),
                                   start.denoiser(z_t, z_in, t, d, prompt))
    with pytest.raises(ValueError, match="added denoiser.choice"):
        grown_state(grown, start)  # a code cannot be taken away


def test_the_posterior_sees_global_facts_and_its_kl_is_the_closed_form():
    model = randomized(LSDModel(with_choice(small_config())))
    posterior = model.denoiser.choice_posterior
    g = torch.Generator().manual_seed(0)
    z0, z_in = torch.randn(2, 2, 3, 8, 4, 4, generator=g).unbind(0)
    mean, logvar = posterior(z0, z_in)
    assert mean.shape == logvar.shape == (2, CHOICE) and logvar.std() > 0
    # the same pixels in another order, frames swapped: the same code
    order = torch.randperm(16, generator=g)
    shuffle = lambda z: z.flatten(3)[..., order].view_as(z).flip(1)
    torch.testing.assert_close(posterior(shuffle(z0), shuffle(z_in))[0], mean)
    # other colours: another code
    assert not torch.allclose(posterior(z0 + 1.0, z_in)[0], mean)
    eps = torch.randn(2, CHOICE, generator=g)
    code, kl = posterior.sample(z0, z_in, eps)
    torch.testing.assert_close(code, mean + (0.5 * logvar).exp() * eps)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(kl, expected.sum(-1).mean())


def test_a_stream_keeps_its_own_code_for_every_prompt():
    assert torch.equal(stream_code(3, CHOICE), stream_code(3, CHOICE))
    assert not torch.equal(stream_code(3, CHOICE), stream_code(4, CHOICE))
    # not the stream's first sampling noise (that generator is seeded with the seed itself)
    assert not torch.equal(stream_code(3, CHOICE)[0],
                           torch.randn(CHOICE, generator=torch.Generator().manual_seed(3)))
    model = randomized(LSDModel(with_choice(small_config())))
    stream = Stream(model, "pop art", steps=2, seed=3, dtype=torch.float32)
    text = lambda p: model.text([p])
    moved = lambda p: text(p) + model.denoiser.choice_embed(stream_code(3, CHOICE))
    with torch.no_grad():
        torch.testing.assert_close(stream._embedding, moved("pop art"))
        assert (stream._embedding - text("pop art")).abs().max() > 1e-3
        stream.set_prompt("sepia", blend_frames=0)
        torch.testing.assert_close(stream._embedding, moved("sepia"))
    # a model without a code: the plain prompt
    plain = Stream(randomized(LSDModel(small_config())), "pop art", steps=2, seed=3)
    assert plain.code is None


def test_outputs_follow_the_code_not_the_seed_alone():
    """Two streams with the same sampling noise but other codes make other frames; the same
    code makes the same frames."""
    model = randomized(LSDModel(with_choice(small_config())))
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)

    def first_frame(code_seed: int) -> np.ndarray:
        stream = Stream(model, "pop art", steps=2, seed=0, fixed_noise=True, dtype=torch.float32)
        stream.code = stream_code(code_seed, CHOICE)
        stream._embeddings.clear()
        stream._embedding = stream._embed("pop art")
        return stream.step(frame)

    assert np.array_equal(first_frame(1), first_frame(1))
    assert not np.array_equal(first_frame(1), first_frame(2))


def test_training_moves_the_code_and_its_posterior(tmp_path):
    from lsd.models import load
    from lsd.train.trainer import train

    model = dict(small_train_config().to_dict()["model"])
    model["denoiser"] = {**model["denoiser"], "choice": CHOICE}
    cfg = small_train_config(model=model, optim={"choice_kl": 0.01, "choice_free": 1e6, "steps": 6})
    train(cfg, tmp_path / "run", progress=False)
    trained = load(tmp_path / "run" / "model").float()
    torch.manual_seed(cfg.run.seed)  # the trainer's initial weights
    start = LSDModel(cfg.model)
    assert not start.denoiser.choice_embed.weight.any()
    assert trained.denoiser.choice_embed.weight.abs().max() > 0
    # below choice_free nats the KL pulls nothing: what moved the posterior is the MSE
    moved = trained.denoiser.choice_posterior.head[1].weight - start.denoiser.choice_posterior.head[1].weight
    assert moved.abs().max() > 1e-4
    logged = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
              if '"choice_kl"' in line]
    assert logged


def test_bad_choice_settings_are_refused():
    with pytest.raises(ValueError, match="denoiser.choice must be >= 0"):
        with_choice(small_config(), -1).validate()
    model = dict(small_train_config().to_dict()["model"])
    model["denoiser"] = {**model["denoiser"], "choice": CHOICE}
    with pytest.raises(ValueError, match="choice_kl and optim.choice_free must be >= 0"):
        small_train_config(model=model, optim={"choice_kl": -1.0})
    from lsd.train.config import TrainConfig

    with pytest.raises(ValueError, match="shortcut distillation of a model with a choice code"):
        TrainConfig.from_dict({**small_train_config().to_dict(), "model": model,
                               "objective": "shortcut"})
