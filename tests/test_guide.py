"""The guided decoder (the codec's decoder also sees the input frame) and `lsd guide`, which
trains one on a model's own rollouts without touching the rest of the model."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from lsd.cli import main
from lsd.config import AutoencoderConfig, ModelConfig
from lsd.models import LSDModel, build_codec
from lsd.stream.engine import Stream
from lsd.styles import get_style, style_names
from lsd.train.guide import guided_model, rolled_out, training_pairs
from test_choice import with_choice
from test_models import randomized, small_config


def test_a_guided_codec_starts_as_the_plain_one_and_then_follows_the_input():
    plain = build_codec(AutoencoderConfig(channels=(64, 64)))
    guided = build_codec(AutoencoderConfig(channels=(64, 64), guide=True))
    guided.load_state_dict(plain.state_dict(), strict=False)
    z, x = torch.randn(2, 8, 4, 4), torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(guided.decode(z, x), plain.decode(z))  # zero-initialised guide
    assert torch.equal(plain.decode(z, x), plain.decode(z))  # a plain codec ignores a guide
    with pytest.raises(ValueError, match="guided"):
        guided.decode(z)
    with torch.no_grad():
        guided.guide_in[-1].weight.normal_()
    moved = guided.decode(z, x.flip(-1)) - guided.decode(z, x)
    assert moved.abs().amax() > 1e-3  # the output now depends on the input frame


def test_only_a_conv_codec_can_be_guided():
    with pytest.raises(ValueError, match="guide"):
        ModelConfig(autoencoder=AutoencoderConfig(kind="patches", guide=True))


def test_memory_styles_train_only_on_their_target_latents_unless_told_the_picks():
    styles = ["ink_wash", "pop_art", "star_glitter"]
    rolls = {"latent": torch.full((3, 3, 8, 2, 2), 1.0), "target_latent": torch.full((3, 3, 8, 2, 2), 2.0),
             "input": torch.zeros(3, 3, 4, 4, 3, dtype=torch.uint8),
             "target": torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1, 1).expand(3, 3, 4, 4, 3)}
    pairs = training_pairs(rolls, styles)
    assert len(pairs["latent"]) == 3 * 3 + 3  # every target latent, ink_wash's sampled ones
    sampled = pairs["latent"][:, 0, 0, 0] == 1.0
    assert sampled.sum() == 3 and (pairs["target"][sampled] == 0).all()  # ink_wash's targets
    # told the picks, pop_art's palette is the target's: its sampled latents fit too, while
    # star_glitter's stars are still the model's own
    told = training_pairs(rolls, styles, told=True)
    sampled = told["latent"][:, 0, 0, 0] == 1.0
    assert len(told["latent"]) == 3 * 3 + 6 and sampled.sum() == 6
    assert sorted(told["target"][sampled][:, 0, 0, 0].tolist()) == [0] * 3 + [1] * 3


def test_a_choice_models_rollouts_are_told_each_worlds_picks():
    model = randomized(LSDModel(with_choice(small_config())))
    rolls = lambda: rolled_out(model, [3, 4], ["pop_art", "pop_art"], 2, seed=0)["latent"]
    told = rolls()
    model.checkpoint_config = {"sample": {"choice_guidance": 2.0}}  # streams guided: so do these
    assert (told - rolls()).abs().amax() > 1e-3
    model.checkpoint_config = {}
    with torch.no_grad():
        model.denoiser.choice_embed.weight.zero_()  # as if no code were given
    assert (told - rolls()).abs().amax() > 1e-3


def test_lsd_guide_trains_the_decoder_and_leaves_the_rest(tmp_path, capsys):
    config = dataclasses.replace(small_config(), autoencoder=AutoencoderConfig(channels=(64, 64)))
    model = randomized(LSDModel(config))
    model.save(tmp_path / "src", {"sample": {"steps": 2, "context_t": 0.1}, "step": 7})
    assert main(["guide", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "run"),
                 "--streams", "1", "--frames", "3", "--steps", "3", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    frame_styles = sum(get_style(n).kind == "frame" for n in style_names())
    assert report["pairs"] == 3 * (len(style_names()) + frame_styles)
    assert set(report["val_psnr_db"]) == {"source_decoder", "guided_decoder"}

    out = LSDModel.load(tmp_path / "run" / "model")
    src = LSDModel.load(tmp_path / "src")
    assert out.codec.guided and out.checkpoint_config["sample"] == {"steps": 2, "context_t": 0.1}
    assert out.checkpoint_config["step"] == 7  # the source's own record is carried
    for name, value in src.state_dict().items():
        if not name.startswith("codec.decoder."):  # encoder, prompt encoder, denoiser: untouched
            assert torch.equal(out.state_dict()[name], value.to(torch.bfloat16)), name  # saved in bf16
    assert out.codec.guide_in[-1].weight.abs().amax() > 0  # the guide branch was trained
    # a guided decoder is trained further from where it is: at a vanishing rate it stays
    assert main(["guide", "--checkpoint", str(tmp_path / "run" / "model"), "--out", str(tmp_path / "again"),
                 "--streams", "1", "--frames", "2", "--steps", "2", "--lr", "1e-12", "--json",
                 "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["source_guided"] and not report["source_guided"]
    kept = LSDModel.load(tmp_path / "again" / "model").state_dict()
    assert all(torch.equal(kept[name], value) for name, value in out.state_dict().items())
    assert main(["guide", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "y"),
                 "--lr", "0"]) == 2
    assert main(["guide", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "run")]) == 2
    assert "exists" in capsys.readouterr().err  # a finished run is never overwritten
    assert main(["guide", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "x"),
                 "--steps", "0"]) == 2
    assert main(["guide", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "x"),
                 "--detail-weight", "-1"]) == 2
    # weighing small details trains another decoder from the same pairs and seed
    assert main(["guide", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "detail"),
                 "--streams", "1", "--frames", "3", "--steps", "3", "--detail-weight", "20", "--json",
                 "--no-progress"]) == 0
    detail = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert detail["detail_weight"] == 20 and report["detail_weight"] == 0
    assert detail["final_loss"] > report["final_loss"]  # the weights only add to each pixel's loss
    # more streams of one style: a memory style's adds its target pairs alone
    assert main(["guide", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "more"),
                 "--streams", "1", "--frames", "3", "--steps", "1", "--streams-of", "star_glitter=3",
                 "--json", "--no-progress"]) == 0
    more = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert more["pairs"] == report["pairs"] + 2 * 3 and more["streams_of"] == {"star_glitter": 3}
    for bad, message in (("star_glitter=0", "STYLE=N"), ("stars=2", "unknown style 'stars'"),
                         ("star_glitter", "STYLE=N")):
        with pytest.raises(SystemExit):
            main(["guide", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "x"),
                  "--streams-of", bad])
        assert message in capsys.readouterr().err

    # the streaming engine decodes against the frame it was given
    run = Stream(out, "ink wash painting", 2, seed=0)
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
    assert run.step(frame).shape == frame.shape


def test_rolling_out_a_frame_at_a_time_is_one_rollout():
    from lsd.diffusion import rollout

    model = randomized(LSDModel(small_config()))
    z_in = torch.randn(2, 4, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    prompt = model.encode_prompts(["ink wash", "pop art"])
    with torch.no_grad():
        whole = rollout(model.denoiser, model.new_cache(), z_in, prompt, 2, context_t=0.2,
                        generator=torch.Generator().manual_seed(1))
        cache, g = model.new_cache(), torch.Generator().manual_seed(1)
        parts = torch.cat([rollout(model.denoiser, cache, z_in[:, j:j + 1], prompt, 2, context_t=0.2,
                                   generator=g) for j in range(4)], dim=1)
    torch.testing.assert_close(parts, whole)


def test_guided_model_keeps_every_weight():
    model = randomized(LSDModel(small_config()))
    guided = guided_model(model)
    for name, value in model.state_dict().items():
        assert torch.equal(guided.state_dict()[name], value)
    assert guided.config.autoencoder.guide and not model.config.autoencoder.guide
