"""The decoder that also sees the input frame (codec.sees_input) and `lsd decoder`, which
trains one on a model's own rollouts without touching the rest of the model."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from lsd.cli import main
from lsd.config import CodecConfig, ModelConfig, SampleConfig
from lsd.models import LSDModel, build_codec
from lsd.stream.engine import Stream
from lsd.styles import get_style, style_names
from lsd.train.decoder import rolled_out, seeing_model, training_pairs
from test_choice import with_choice
from test_models import randomized, small_config


def test_a_seeing_decoder_starts_as_the_plain_one_and_then_follows_the_input():
    plain = build_codec(CodecConfig(channels=(64, 64)))
    seeing = build_codec(CodecConfig(channels=(64, 64), sees_input=True))
    seeing.load_state_dict(plain.state_dict(), strict=False)
    z, x = torch.randn(2, 8, 4, 4), torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(seeing.decode(z, x), plain.decode(z))  # zero-initialised branch
    assert torch.equal(plain.decode(z, x), plain.decode(z))  # a plain decoder ignores the frame
    with pytest.raises(ValueError, match="sees the input"):
        seeing.decode(z)
    with torch.no_grad():
        seeing.frame_in[-1].weight.normal_()
    moved = seeing.decode(z, x.flip(-1)) - seeing.decode(z, x)
    assert moved.abs().amax() > 1e-3  # the output now depends on the input frame


def test_only_a_conv_codecs_decoder_can_see_the_input():
    with pytest.raises(ValueError, match="sees_input"):
        ModelConfig(codec=CodecConfig(kind="patches", sees_input=True))


def test_an_older_checkpoint_loads_under_todays_names(tmp_path):
    """A checkpoint written before the renames (autoencoder/guide, guide_in/guide_mix) and
    with the removed settings off loads as it was; one with them on is refused."""
    import yaml
    from safetensors.torch import load_file, save_file
    from lsd.checkpoint import METADATA, CheckpointError

    config = dataclasses.replace(small_config(), codec=CodecConfig(channels=(64, 64), sees_input=True))
    model = randomized(LSDModel(config))
    model.save(tmp_path / "new", {"sample": {"steps": 2}})
    old = tmp_path / "old"
    old.mkdir()
    tensors = load_file(tmp_path / "new" / "model.safetensors")
    save_file({k.replace("codec.frame_", "codec.guide_"): v for k, v in tensors.items()},
              old / "model.safetensors", metadata=METADATA)
    cfg = yaml.safe_load((tmp_path / "new" / "config.yaml").read_text())
    codec = cfg["model"].pop("codec")
    codec["guide"] = codec.pop("sees_input")
    cfg["model"] = {"autoencoder": codec, **cfg["model"]}
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    loaded = LSDModel.load(old)
    assert loaded.config == model.config and loaded.sample == SampleConfig(steps=2)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    cfg["model"]["denoiser"]["anchor"] = False  # a knob removed after commit e2c616e
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(CheckpointError, match="unknown key.*anchor"):
        LSDModel.load(old)


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


def test_lsd_decoder_trains_the_decoder_and_leaves_the_rest(tmp_path, capsys):
    config = dataclasses.replace(small_config(), codec=CodecConfig(channels=(64, 64)))
    model = randomized(LSDModel(config))
    model.save(tmp_path / "src", {"sample": {"steps": 2, "context_t": 0.1}, "step": 7})
    assert main(["decoder", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "run"),
                 "--streams", "1", "--frames", "3", "--steps", "3", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    frame_styles = sum(get_style(n).kind == "frame" for n in style_names())
    assert report["pairs"] == 3 * (len(style_names()) + frame_styles)
    assert set(report["val_psnr_db"]) == {"source_decoder", "new_decoder"}

    out = LSDModel.load(tmp_path / "run" / "model")
    src = LSDModel.load(tmp_path / "src")
    assert out.codec.sees_input and out.checkpoint_config["sample"] == {"steps": 2, "context_t": 0.1}
    assert out.checkpoint_config["step"] == 7  # the source's own record is carried
    for name, value in src.state_dict().items():
        if not name.startswith("codec.decoder."):  # encoder, prompt encoder, denoiser: untouched
            assert torch.equal(out.state_dict()[name], value.to(torch.bfloat16)), name  # saved in bf16
    assert out.codec.frame_in[-1].weight.abs().amax() > 0  # the frame branch was trained
    # a seeing decoder is trained further from where it is: at a vanishing rate it stays
    assert main(["decoder", "--checkpoint", str(tmp_path / "run" / "model"), "--out", str(tmp_path / "again"),
                 "--streams", "1", "--frames", "2", "--steps", "2", "--lr", "1e-12", "--json",
                 "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["source_sees_input"] and not report["source_sees_input"]
    kept = LSDModel.load(tmp_path / "again" / "model").state_dict()
    assert all(torch.equal(kept[name], value) for name, value in out.state_dict().items())
    assert main(["decoder", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "y"),
                 "--lr", "0"]) == 2
    assert main(["decoder", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "run")]) == 2
    assert "exists" in capsys.readouterr().err  # a finished run is never overwritten
    assert main(["decoder", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "x"),
                 "--steps", "0"]) == 2
    assert main(["decoder", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "x"),
                 "--detail-weight", "-1"]) == 2
    # weighing small details trains another decoder from the same pairs and seed
    assert main(["decoder", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "detail"),
                 "--streams", "1", "--frames", "3", "--steps", "3", "--detail-weight", "20", "--json",
                 "--no-progress"]) == 0
    detail = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert detail["detail_weight"] == 20 and report["detail_weight"] == 0
    assert detail["final_loss"] > report["final_loss"]  # the weights only add to each pixel's loss
    # more streams of one style: a memory style's adds its target pairs alone
    assert main(["decoder", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "more"),
                 "--streams", "1", "--frames", "3", "--steps", "1", "--streams-of", "star_glitter=3",
                 "--json", "--no-progress"]) == 0
    more = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert more["pairs"] == report["pairs"] + 2 * 3 and more["streams_of"] == {"star_glitter": 3}
    for bad, message in (("star_glitter=0", "STYLE=N"), ("stars=2", "unknown style 'stars'"),
                         ("star_glitter", "STYLE=N")):
        with pytest.raises(SystemExit):
            main(["decoder", "--checkpoint", str(tmp_path / "src"), "--out", str(tmp_path / "x"),
                  "--streams-of", bad])
        assert message in capsys.readouterr().err

    # the streaming engine decodes against the frame it was given
    run = Stream(out, "ink wash painting", seed=0)
    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
    assert run.step(frame).shape == frame.shape


def test_rolling_out_a_frame_at_a_time_is_one_rollout():
    from lsd.diffusion import rollout

    model = randomized(LSDModel(small_config()))
    z_in = torch.randn(2, 4, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    prompt = model.encode_prompts(["ink wash", "pop art"])
    with torch.no_grad():
        sample = SampleConfig(steps=2, context_t=0.2)
        whole = rollout(model.denoiser, model.new_cache(), z_in, prompt, sample,
                        torch.Generator().manual_seed(1))
        cache, g = model.new_cache(), torch.Generator().manual_seed(1)
        parts = torch.cat([rollout(model.denoiser, cache, z_in[:, j:j + 1], prompt, sample, g)
                           for j in range(4)], dim=1)
    torch.testing.assert_close(parts, whole)


def test_seeing_model_keeps_every_weight():
    model = randomized(LSDModel(small_config()))
    seeing = seeing_model(model)
    for name, value in model.state_dict().items():
        assert torch.equal(seeing.state_dict()[name], value)
    assert seeing.config.codec.sees_input and not model.config.codec.sees_input
