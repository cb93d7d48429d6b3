"""lsd bench quality on a small untrained checkpoint: the report's keys, the metrics' link to
the data, and the strips."""

import json

import numpy as np
import torch
from PIL import Image

from lsd.bench import quality
from lsd.bench.quality import STRIP_COLUMNS, bench_quality, through_codec
from lsd.bench.stars import stars_kept
from lsd.cli import main
from lsd.config import SampleConfig
from lsd.data import VAL_SEED_START, paired_stream
from lsd.metrics import decoration_f1, main_colours, palette_distance, picked_share, psnr
from lsd.models import LSDModel
from lsd.precision import decide
from lsd.stream.engine import Stream
from lsd.styles.memory import STAR_SPOT, pop_colours
from lsd.styles.picks import OPTIONS, PICKS
from test_models import randomized, small_config


def test_quality_report_and_strips(tmp_path, capsys):
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "ckpt")
    rc = main(["bench", "quality", "--checkpoint", str(tmp_path / "ckpt"), "--steps", "2",
               "--frames", "6", "--styles", "ink_wash,pop_art", "--strips",
               str(tmp_path / "strips"), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("mean_psnr_db", "per_style", "warp_error", "target_warp_error", "machine"):
        assert key in report
    assert report["dtype"] == decide("cpu").name and report["backend"] == "eager"  # as streamed
    assert set(report["per_style"]) == {"ink_wash", "pop_art"}
    assert report["mean_psnr_db"] == report["per_style"]["ink_wash"]["psnr_db"]  # frame styles only
    ink = report["per_style"]["ink_wash"]
    assert (report["mean_warp_error"], report["mean_target_warp_error"]) == (
        ink["warp_error"], ink["target_warp_error"])
    palette = report["per_style"]["pop_art"]["consistency"]
    assert {"palette_last_vs_first", "palette_last_vs_target", "target_palette_last_vs_first"} <= set(palette)
    pop = list(paired_stream(VAL_SEED_START + 101, "pop_art", size=32, frames=6))
    assert palette["target_palette_last_vs_first"] == round(palette_distance(pop[-1].target, pop[0].target), 2)
    own = [palette_distance(f, f) for f in (pop[0].target, pop[-1].target)]
    assert palette["target_palette_own"] == round(sum(own) / 2, 2) and palette["palette_own"] > 0
    options, picked = pop_colours(VAL_SEED_START + 101)
    assert palette["target_picked_share_last"] == round(picked_share(pop[-1].target, options, picked), 3)
    assert 0 <= palette["picked_share_first"] <= 1 and 0 <= palette["picked_share_last"] <= 1
    read = lambda frame: main_colours(frame, options, PICKS, range(OPTIONS))
    assert palette["target_picks_read_last"] == len(read(pop[-1].target) & set(picked[:PICKS])) / PICKS
    assert palette["target_picks_kept"] == len(read(pop[-1].target) & read(pop[0].target)) / PICKS
    assert {"picks_read_first", "picks_read_last", "picks_kept"} <= set(palette)
    # the palette measure's floor for this codec: the targets sent through it (in the
    # compute dtype, as the streams had left the model)
    model = LSDModel.load(tmp_path / "ckpt", dtype=decide("cpu").dtype)
    coded = [through_codec(model, f.target, f.input) for f in (pop[0], pop[-1])]
    assert palette["codec_palette_last_vs_first"] == round(palette_distance(coded[1], coded[0]), 2)
    assert palette["codec_palette_first_vs_target"] == round(palette_distance(coded[0], pop[0].target), 2)
    assert palette["codec_palette_last_vs_target"] == round(palette_distance(coded[1], pop[-1].target), 2)
    assert palette["codec_palette_own"] == round(sum(palette_distance(f, f) for f in coded) / 2, 2)
    assert palette["codec_picked_share_first"] == round(picked_share(coded[0], options, picked), 3)
    assert palette["codec_picks_kept"] == len(read(coded[1]) & read(coded[0])) / PICKS
    strip = np.asarray(Image.open(tmp_path / "strips" / "ink_wash.jpg"))
    assert strip.shape[0] == 3 * 32 + 4 and strip.shape[1] >= STRIP_COLUMNS * 32

    # the reported PSNR is the rollout's, frame by frame, against the stream's targets
    run = Stream(LSDModel.load(tmp_path / "ckpt"), "ink wash painting", SampleConfig(steps=2),
                 seed=VAL_SEED_START + 100)
    scores = [psnr(run.step(s.input), s.target)
              for s in paired_stream(VAL_SEED_START + 100, "ink_wash", size=32, frames=6)]
    assert abs(np.mean(scores) - report["per_style"]["ink_wash"]["psnr_db"]) < 0.01
    # the codec's ceiling: the target through the codec (frame 0 of 6, every SSIM_EVERY-th)
    first = next(paired_stream(VAL_SEED_START + 100, "ink_wash", size=32, frames=1))
    x = torch.from_numpy(first.target).movedim(-1, 0)[None].float() / 255
    with torch.no_grad():
        back = run.model.codec.decode(run.model.codec.encode(x.to(run.model.codec.latent_mean.dtype)))
    back = (back[0].float().clamp(0, 1) * 255).round().byte().movedim(0, -1).numpy()
    assert abs(psnr(back, first.target) - report["per_style"]["ink_wash"]["codec_psnr_db"]) < 0.01


def test_quality_rejects_unknown_style(tmp_path, capsys):
    LSDModel(small_config()).save(tmp_path / "ckpt")
    rc = main(["bench", "quality", "--checkpoint", str(tmp_path / "ckpt"), "--styles", "nope"])
    assert rc == 2 and "nope" in capsys.readouterr().err


def test_quality_runs_the_checkpoints_context_level_unless_told(tmp_path):
    torch.manual_seed(0)  # not whatever weights the tests before left the generator at
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "ckpt", {"sample": {"steps": 2, "context_t": 0.2}})
    run = lambda **kw: bench_quality(str(tmp_path / "ckpt"), 2, 5, ["ink_wash"], **kw)
    default, told, clean = run(), run(context_t=0.2), run(context_t=0.0)
    assert default["context_t"] == told["context_t"] == 0.2 and clean["context_t"] == 0.0
    assert default["per_style"] == told["per_style"]
    assert default["per_style"] != clean["per_style"]  # another rollout (its mean PSNR may tie)


def test_quality_averages_several_streams_per_style(tmp_path, capsys):
    from lsd.bench.quality import STREAM_SEED_STRIDE, evaluate_style

    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "ckpt")
    report = bench_quality(str(tmp_path / "ckpt"), 2, 5, ["pop_art"], streams=2)
    row = report["per_style"]["pop_art"]
    assert report["streams"] == row["streams"] == 2
    loaded = LSDModel.load(tmp_path / "ckpt")
    kept = [[], []]
    one = [evaluate_style(loaded, "pop_art", VAL_SEED_START + 100 + STREAM_SEED_STRIDE * j, 5,
                          SampleConfig(steps=2), ends=kept[j])
           for j in range(2)]
    assert row["psnr_db"] == round((one[0]["psnr_db"] + one[1]["psnr_db"]) / 2, 3)
    # each stream's last frame also against the other stream's first: a lost choice's score
    for j, r in enumerate(one):
        first, last, target_first, target_last = kept[j]
        other_first, _, other_target_first, _ = kept[1 - j]
        assert r["consistency"]["palette_first_vs_target"] == round(palette_distance(first, target_first), 2)
        r["consistency"]["palette_last_vs_other_first"] = round(palette_distance(last, other_first), 2)
        r["consistency"]["target_palette_last_vs_other_first"] = round(
            palette_distance(target_last, other_target_first), 2)
    assert row["consistency_per_stream"] == [r["consistency"] for r in one]
    distances = [r["consistency"]["palette_last_vs_first"] for r in one]
    assert distances[0] != distances[1]  # two different streams, not one twice
    assert row["consistency"]["palette_last_vs_first"] == round(sum(distances) / 2, 3)
    rc = main(["bench", "quality", "--checkpoint", str(tmp_path / "ckpt"), "--streams", "0"])
    assert rc == 2 and "streams" in capsys.readouterr().err


def test_quality_samples_as_the_checkpoint_says_unless_told(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    model = randomized(LSDModel(small_config()))
    model.save(tmp_path / "ckpt", {"sample": {"steps": 2, "settle": 1}})
    streamed = []  # the sampling each run's streams were made with

    class Recorded(Stream):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            streamed.append(self.sample)

    monkeypatch.setattr(quality, "Stream", Recorded)

    def run(*flag):
        assert main(["bench", "quality", "--checkpoint", str(tmp_path / "ckpt"), "--steps", "2",
                     "--frames", "4", "--styles", "ink_wash", "--json", *flag]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1]), streamed.pop()

    (default, sample), (told, told_sample) = run(), run("--settle", "3")
    assert sample == SampleConfig(steps=2, settle=1) and default["settle"] == 1
    assert told_sample.settle == 3 and told["settle"] == 3
    assert default["per_style"] != told["per_style"]
    assert default["choice_guidance"] == 1.0  # guidance on the picks needs a choice input
    assert main(["bench", "quality", "--checkpoint", str(tmp_path / "ckpt"), "--frames", "2",
                 "--styles", "ink_wash", "--choice-guidance", "2"]) == 2
    assert "choice input" in capsys.readouterr().err


def test_star_glitter_is_scored_on_its_stars_beside_the_codecs():
    from lsd.bench.quality import evaluate_style

    model = randomized(LSDModel(small_config()))
    kept, seed = [], VAL_SEED_START + 109
    r = evaluate_style(model, "star_glitter", seed, 5, SampleConfig(steps=2), ends=kept)["consistency"]
    first, last, target_first, target_last = kept
    assert r["decoration_f1_first"] == round(decoration_f1(first, target_first, **STAR_SPOT), 3)
    assert r["decoration_f1_last"] == round(decoration_f1(last, target_last, **STAR_SPOT), 3)
    # the codec's own: the first and the last input-guided coded target against the target
    samples = list(paired_stream(seed, "star_glitter", size=32, frames=5))
    coded = [through_codec(model, s.target, s.input) for s in (samples[0], samples[-1])]
    assert r["codec_decoration_f1_first"] == round(decoration_f1(coded[0], target_first, **STAR_SPOT), 3)
    assert r["codec_decoration_f1_last"] == round(decoration_f1(coded[1], target_last, **STAR_SPOT), 3)
    # and whether each kept its own frame 0's stars to its last frame
    assert {k: r[k] for k in ("stars_first", "stars_last", "stars_kept_f1")} == stars_kept({"": (first, last)}, seed, 5)
    assert r["target_stars_kept_f1"] == stars_kept({"": (target_first, target_last)}, seed, 5)["stars_kept_f1"]
    assert r["codec_stars_kept_f1"] == stars_kept({"": (coded[0], coded[1])}, seed, 5)["stars_kept_f1"]
