"""`lsd learn`: a tiny lesson end to end in seconds (the new look answers to its name and
prompts, the old looks' prompts still map where they did, nothing but the denoiser, the
new look's vector and its output head changes, and the old looks never pass through the
head), resume after Ctrl-C, bad input, a second lesson on top of the first; `lsd data
pairs`; `lsd bench learn`; `lsd styles --checkpoint` and the looks `lsd serve` offers."""

import dataclasses
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lsd.cli import main
from lsd.config import CodecConfig
from lsd.data.filtered import filtered, write_pairs
from lsd.data.pairs import check_pairs
from lsd.io import read_frames, video_info, write_video
from lsd.metrics import psnr
from lsd.models import LSDModel, load
from lsd.stream import Stream
from lsd.stream.drawing import Drawing
from lsd.stream.look_motion import grey
from lsd.styles import STYLES
from lsd.train import learn as learn_module
from lsd.train import look_head as look_head_module
from lsd.train.clips import to_uint8 as tensor_to_uint8
from lsd.train.learn import (HEAD_STEP_COST, Lesson, fitted_share, learn, redrawn_db,
                              taught_from, within_reading)
from lsd.train.look_head import HeadFootage, head_frames, moved_apart
from lsd.train.prompts import train_reader
from test_models import randomized, small_config
from test_pairs import clip, images
from test_serve import serving
from test_upsampler import with_upsampler

STUDENT = {"sample": {"steps": 3, "shortcut": True, "commit": "last_step"}}
TINY = dict(steps=3, batch=2, reader_steps=150, save_every=2, head_steps=3)
PHRASINGS = ["sepia photo", "thermal camera", "make it look like a pencil sketch",
             "cyberpunk neon style", "水墨画"]


def stopped_at_call(n: int, real, calls: list):
    """`real`, counting its calls in `calls`, as if Ctrl-C were pressed in the n-th."""
    def stopped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    return stopped


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    """A student with an upsampler and a prompt reader, pairs of a look (colours inverted),
    and the lesson."""
    root = tmp_path_factory.mktemp("learn")
    model = with_upsampler(randomized(LSDModel(small_config())))
    from lsd.config import ReaderConfig

    model.config = dataclasses.replace(
        model.config, reader=ReaderConfig(looks={k: list(s.prompts) for k, s in STYLES.items()}))
    model.reader, _ = train_reader(model.config.reader, steps=150, progress=False)
    model.save(root / "src", STUDENT)
    rng = np.random.default_rng(0)
    for c in range(2):
        folder = root / "pairs" / f"clip{c}"
        folder.mkdir(parents=True)
        base = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
        frames = [np.roll(base, 2 * i, 1) for i in range(18)]
        write_video(folder / "input.mp4", frames)
        write_video(folder / "target.mp4", [255 - f for f in frames])
    report = learn(str(root / "pairs"), "Negative Film", str(root / "run"), str(root / "src"),
                   ["inverted colours"], Lesson(**TINY), progress=False)
    return root, report


def test_a_lesson_teaches_the_name_and_keeps_the_rest(lesson):
    root, report = lesson
    src, out = load(root / "src"), load(root / "run" / "model")
    assert report["name"] == "negative film" and report["frames"] == 36 and report["steps"] == 3
    assert out.config.text.learned == ["negative film"] and not (root / "run" / "state").exists()
    # the name and its prompt embed as the learnt vector, which moved from where it started
    emb = out.encode_prompts(["Negative film", "inverted colours", "sepia photo"])
    assert torch.equal(emb[0], out.learned_looks[0]) and torch.equal(emb[1], emb[0])
    assert not torch.allclose(out.learned_looks[0].float(), src.text(["negative film"])[0].float())
    # the old looks' prompts map where they did, and embed as they did
    assert [r[0] for r in out.reader.read(PHRASINGS)] == [r[0] for r in src.reader.read(PHRASINGS)]
    torch.testing.assert_close(emb[2], src.encode_prompts(["sepia photo"])[0])
    new, old = out.state_dict(), src.state_dict()
    changed = {k.split(".")[0] for k in old if not k.startswith("reader.") and not torch.equal(new[k], old[k])}
    assert changed == {"denoiser"}
    assert out.config.upsampler.heads == ["negative film"] and report["head_steps"] == 3
    assert out.upsampler.heads[0].out.weight.any()  # it started at zero: it learnt
    assert 0 < report["drawn_db"] <= 60 and report["head_final_loss"] > 0
    # a stream plays it by name, understood as the new look
    stream = Stream(out, "negative film", dtype=torch.float32)
    assert stream.warning is None and stream.step(np.zeros((48, 80, 3), np.uint8)).shape == (48, 80, 3)
    assert stream.understood[0]["look"] == "negative film" and stream.looks.all[-1] == "negative film"


def test_lsd_run_plays_the_learnt_look(lesson, tmp_path):
    root, _ = lesson
    video = tmp_path / "out.mp4"
    assert main(["run", "--source", "synthetic:1", "--frames", "3", "--prompt", "negative film",
                 "--checkpoint", str(root / "run" / "model"), "--out", str(video)]) == 0
    assert len(list(read_frames(video))) == 3


def test_lsd_learn_says_how_to_play_the_look(lesson, tmp_path, capsys, monkeypatch):
    root, _ = lesson
    real = learn_module.learn  # the command's lesson, shortened to the fixture's
    monkeypatch.setattr(learn_module, "learn",
                        lambda *a, **k: real(*a[:5], Lesson(**TINY), *a[6:], **k))
    assert main(["learn", "--pairs", str(root / "pairs" / "clip0"), "--name", "Old Film",
                 "--from", str(root / "src"), "--out", str(tmp_path / "o"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["clips"] == 1 and report["name"] == "old film"
    play = shlex.split(report["play"])
    assert play[:4] == ["lsd", "run", "--source", "webcam"] and play[-1] == "--window"
    video = tmp_path / "out.mp4"  # the same command on a clip, into a file
    assert main([*play[1:3], "synthetic:1", *play[4:-1], "--frames", "3", "--out", str(video)]) == 0
    assert len(list(read_frames(video))) == 3


def test_lsd_styles_lists_the_taught_look(lesson, capsys):
    root, _ = lesson
    assert main(["styles", "--checkpoint", str(root / "run" / "model"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["styles"]
    assert rows[-1] == {"name": "negative film", "kind": "taught", "not_learnt": None,
                        "prompts": ["negative film", "inverted colours"]}
    assert len(rows) == len(STYLES) + 1
    assert main(["styles", "--checkpoint", str(root / "src")]) == 0
    assert "taught" not in capsys.readouterr().out


def test_lsd_serve_offers_the_taught_look(lesson):
    root, _ = lesson

    async def offered(client):
        return [s["name"] for s in (await (await client.get("/styles")).json())["styles"]]
    names = serving(load(root / "run" / "model"), offered)
    assert names[-1] == "negative film" and "negative film" not in STYLES
    assert "negative film" not in serving(load(root / "src"), offered)


def test_a_stopped_lesson_resumes_where_it_stopped(lesson, tmp_path, monkeypatch):
    root, _ = lesson
    whole = learn(str(root / "pairs"), "negative film", str(tmp_path / "whole"), str(root / "src"),
                  lesson=Lesson(**TINY | {"steps": 4}), progress=False)
    real = learn_module.shortcut_distillation
    monkeypatch.setattr(learn_module, "shortcut_distillation", stopped_at_call(3, real, []))
    with pytest.raises(KeyboardInterrupt):
        learn(str(root / "pairs"), "negative film", str(tmp_path / "cut"), str(root / "src"),
              lesson=Lesson(**TINY | {"steps": 4}), progress=False)
    monkeypatch.setattr(learn_module, "shortcut_distillation", real)
    with pytest.raises(FileExistsError, match="--resume"):
        learn(str(root / "pairs"), "negative film", str(tmp_path / "cut"), str(root / "src"),
              lesson=Lesson(**TINY | {"steps": 4}), progress=False)
    # it goes on only with its own name and pairs: a target made again is other pairs
    other = tmp_path / "other"
    shutil.copytree(root / "pairs", other)
    write_video(other / "clip1" / "target.mp4", list(read_frames(other / "clip1" / "input.mp4")))
    for pairs, name in ((root / "pairs", "another look"), (other, "negative film")):
        with pytest.raises(ValueError, match="is a lesson of 'negative film' on other pairs"):
            learn(str(pairs), name, str(tmp_path / "cut"), str(root / "src"),
                  lesson=Lesson(**TINY | {"steps": 4}), resume=True, progress=False)
    resumed = learn(str(root / "pairs"), "negative film", str(tmp_path / "cut"), str(root / "src"),
                    lesson=Lesson(**TINY | {"steps": 4}), resume=True, progress=False)
    assert resumed["final_loss"] == whole["final_loss"]
    assert "no stopped lesson" not in (resumed["warning"] or "")
    # --resume where nothing stopped (a mistyped --out) starts a new lesson, and says so
    fresh = learn(str(root / "pairs"), "negative film", str(tmp_path / "typo"), str(root / "src"),
                  lesson=Lesson(**TINY | {"steps": 4}), resume=True, progress=False)
    assert "holds no stopped lesson: --resume starts a new one" in fresh["warning"]
    assert fresh["final_loss"] == whole["final_loss"]
    with pytest.raises(FileExistsError, match="finished lesson"):
        learn(str(root / "pairs"), "negative film", str(tmp_path / "cut"), str(root / "src"),
              lesson=Lesson(**TINY | {"steps": 4}), resume=True, progress=False)
    a, b = load(tmp_path / "whole" / "model"), load(tmp_path / "cut" / "model")
    for part in ("denoiser", "upsampler"):
        for k, v in getattr(a, part).state_dict().items():
            torch.testing.assert_close(getattr(b, part).state_dict()[k], v)


def test_a_stopped_lessons_pairs_are_its_frames_not_tools_leftovers(tmp_path):
    """Finder's .DS_Store in a frame folder does not make the pairs other pairs for --resume;
    a frame made again does."""
    clip(tmp_path / "c" / "input.mp4")
    images(tmp_path / "c" / "target", range(20))
    stamp = taught_from(check_pairs(tmp_path))
    (tmp_path / "c" / "target" / ".DS_Store").write_bytes(b"the folder seen on a Mac")
    (tmp_path / "c" / "target" / ".ipynb_checkpoints").mkdir()
    assert taught_from(check_pairs(tmp_path)) == stamp
    noise = np.random.default_rng(0).integers(0, 256, (32, 48, 3), np.uint8)
    Image.fromarray(noise).save(tmp_path / "c" / "target" / "000003.png")
    assert taught_from(check_pairs(tmp_path)) != stamp


def test_a_lesson_stopped_in_its_heads_steps_goes_on_there(lesson, tmp_path, monkeypatch):
    root, _ = lesson
    monkeypatch.setattr(look_head_module, "SAVE_EVERY", 2)
    taught = Lesson(**TINY | {"head_steps": 6, "minutes": 0})  # no head steps timed to fit
    run = lambda out, **kw: learn(str(root / "pairs"), "negative film", str(tmp_path / out),
                                  str(root / "src"), lesson=taught, progress=False, **kw)
    whole = run("whole")
    crops, calls = HeadFootage.crops, []
    monkeypatch.setattr(HeadFootage, "crops", stopped_at_call(5, crops, calls))  # in the fifth step
    with pytest.raises(KeyboardInterrupt):
        run("cut")
    calls.clear()
    monkeypatch.setattr(HeadFootage, "crops", lambda self, n, g: calls.append(n) or crops(self, n, g))
    resumed = run("cut", resume=True)
    assert len(calls) == 2  # the fifth and sixth steps, not the head's six again
    assert resumed["head_final_loss"] == whole["head_final_loss"]
    a, b = load(tmp_path / "whole" / "model"), load(tmp_path / "cut" / "model")
    for k, v in a.upsampler.state_dict().items():
        torch.testing.assert_close(b.upsampler.state_dict()[k], v, rtol=0, atol=0)


def test_fitted_share_is_what_fits_of_the_steps_left():
    assert fitted_share(600, 1.0, 300, 12000, 20) == 1.0  # time for all of them
    # room for 280 denoiser steps' worth after the 20 fixed; the head's steps are cheaper
    share = fitted_share(300, 1.0, 300, 12000, 20)
    assert share == pytest.approx(280 / (300 + 12000 * HEAD_STEP_COST))
    assert fitted_share(10, 1.0, 300, 12000, 20) == 0.0  # no room: nothing more
    assert fitted_share(5, 1.0, 0, 0, 10) == 1.0  # nothing left to cut


def test_a_lesson_short_of_minutes_takes_fewer_steps_and_keeps_them(lesson, tmp_path, monkeypatch,
                                                                    capsys):
    root, _ = lesson
    run = lambda out, minutes, **kw: learn(
        str(root / "pairs"), "negative film", str(tmp_path / out), str(root / "src"),
        progress=False, lesson=Lesson(**TINY | {"steps": 16, "head_steps": 8, "minutes": minutes}), **kw)
    # the time is up before the first nine steps end (one, then eight timed): they are all
    # it takes, and it says so
    short = run("short", 0.001)
    assert (short["steps"], short["head_steps"]) == (9, 0)
    assert "fits 9 of the denoiser's 16 steps in --minutes 0.001" in short["warning"]
    assert "fits 0 of its output head's 8 steps" in short["warning"]
    assert load(tmp_path / "short" / "model").config.text.learned == ["negative film"]
    # the denoiser fitted to half of what was left; the head, timed, has time for all of its
    # steps again. Stopped after the fitting and resumed, it keeps the denoiser's steps
    shares = iter([0.5])
    monkeypatch.setattr(learn_module, "fitted_share", lambda *a: next(shares, 1.0))
    whole = run("whole", 30)
    assert (whole["steps"], whole["head_steps"]) == (12, 8)
    # once timed, it says when the fitted lesson ends: here in seconds (30 after the head)
    said = re.search(r"should end in about ([\d.]+) min, at \d\d:\d\d", capsys.readouterr().err)
    assert said and 0.5 <= float(said[1]) < 1
    assert "fits 12 of the denoiser's 16" in whole["warning"] and "head's" not in whole["warning"]
    shares, calls = iter([0.5]), []
    monkeypatch.setattr(learn_module, "shortcut_distillation",
                        stopped_at_call(11, learn_module.shortcut_distillation, calls))
    with pytest.raises(KeyboardInterrupt):
        run("cut", 30)
    resumed = run("cut", 30, resume=True)
    assert len(calls) == 13 and (resumed["steps"], resumed["head_steps"]) == (12, 8)
    assert [resumed[k] for k in ("final_loss", "head_final_loss")] == [whole["final_loss"],
                                                                       whole["head_final_loss"]]


def test_only_the_new_look_draws_through_its_head(lesson):
    root, _ = lesson
    model = load(root / "run" / "model")
    loud = load(root / "run" / "model")
    with torch.no_grad():
        loud.upsampler.heads[0].out.bias.fill_(0.3)  # a head that shows wherever it is added
    frames = np.random.default_rng(2).integers(0, 256, (4, 48, 80, 3), dtype=np.uint8)
    played = lambda m, prompt: [s.step(f) for s in [Stream(m, prompt, dtype=torch.float32)]
                                for f in frames]
    for old in ("sepia photo", "thermal camera"):
        assert all(np.array_equal(a, b) for a, b in zip(played(model, old), played(loud, old)))
    new = zip(played(model, "negative film"), played(loud, "negative film"))
    assert all((b.astype(int) - a).mean() > 40 for a, b in new)  # 0.3 of the range, clipped
    # a mix is drawn half by the head, half by the gains; a switch blends it in as it blends
    # the prompt
    half = Stream(model, "negative film + sepia photo", dtype=torch.float32)
    assert half._mix.tolist() == [[0.5]] and half._shares() == [(None, 0.5), (0, 0.5)]
    image, shown = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 48, 80)
    before = {"image": image, "last": model.upsampler.coarse(image), "frame": shown,
              "before": grey(shown)}
    gains, head = (Drawing(model.upsampler, h)(**before)[0].float() for h in (None, 0))
    assert not torch.equal(gains, head)
    assert np.array_equal(half._drawn(image, frames[0], shown), ((gains + head) / 2).round().numpy())
    s = Stream(model, "sepia photo", dtype=torch.float32)
    s.set_prompt("inverted colours", blend_frames=4)
    mixes = [s.step(frames[0]) is not None and round(s._mix.item(), 2) for _ in range(5)]
    assert mixes == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_the_heads_drawing_graph_draws_as_eager_draws(lesson):
    root, _ = lesson
    model = load(root / "run" / "model")
    frames = np.random.default_rng(3).integers(0, 256, (3, 48, 80, 3), dtype=np.uint8)
    eager, fast = (Stream(model, "negative film", dtype=torch.float32, backend=b)
                   for b in ("eager", "openvino"))
    for f in frames:
        want, got = eager.step(f), fast.step(f)
        assert np.abs(want.astype(int) - got.astype(int)).max() <= 2
    for s in (eager, fast):  # halfway through a switch: both drawings, in their shares
        s.set_prompt("sepia photo", blend_frames=2)
    want, got = eager.step(frames[0]), fast.step(frames[0])
    assert fast._shares() == [(None, 0.5), (0, 0.5)]
    assert np.abs(want.astype(int) - got.astype(int)).max() <= 2
    # the gains' graph and the head's, both built with the first frame
    assert set(fast._drawings) == {None, 0} and len(model.upsampler.openvino_graphs) == 2


def test_bad_lessons_fail_with_one_line(lesson, tmp_path, capsys):
    root, _ = lesson
    args = ["learn", "--pairs", str(root / "pairs"), "--from", str(root / "src"), "--out",
            str(tmp_path / "o"), "--no-progress"]
    assert main(args + ["--name", "sepia photo"]) == 2
    assert "already names the look 'sepia'" in capsys.readouterr().err
    assert main(args + ["--name", "x", "--prompt", "thermal camera"]) == 2
    assert "'thermal'" in capsys.readouterr().err
    assert main(args + ["--name", "x", "--prompt", " "]) == 2
    assert "--prompt must not be empty" in capsys.readouterr().err
    randomized(LSDModel(small_config())).save(tmp_path / "teacher")
    assert main(args[:3] + ["--from", str(tmp_path / "teacher"), "--out", str(tmp_path / "o"),
                            "--name", "x"]) == 2
    assert "not a few-step student" in capsys.readouterr().err
    assert main(["learn", "--pairs", str(tmp_path / "none"), "--name", "x", "--from",
                 str(root / "src"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    for lr in ("0", "-1"):
        assert main(args + ["--name", "x", "--lr", lr]) == 2
        assert f"--lr must be above 0, not {lr}" in capsys.readouterr().err
    (tmp_path / "a file").write_text("kept")
    assert main(args[:6] + [str(tmp_path / "a file"), "--name", "x"]) == 2
    assert "is a file: give a folder" in capsys.readouterr().err
    assert (tmp_path / "a file").read_text() == "kept"


def test_bench_learn_scores_the_new_look_and_the_old_ones(lesson, capsys, monkeypatch):
    root, _ = lesson
    monkeypatch.setenv("LSD_BACKEND", "eager")  # no graph to build for a few frames
    assert main(["bench", "learn", "--checkpoint", str(root / "run" / "model"), "--pairs",
                 str(root / "pairs"), "--name", "Negative Film", "--frames", "6", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["clips"] == 2 and report["frames"] == 12 and report["before"] == str(root / "src")
    assert report["target_warp_error"] > 0 and report["psnr_db"] > 0
    assert set(report["old_looks"]) == {"ink_wash", "thermal", "pencil_sketch", "retro_palette",
                                        "cartoon", "cyberpunk_neon", "night_vision", "sepia"}
    assert all(0 < c["redrawn_db"] <= 60 for c in report["per_clip"]) and report["redrawn_db"]
    assert [c["warning"] for c in report["per_clip"]] == [None, None]
    for v in report["old_looks"].values():
        assert v["change_db"] == round(v["after"] - v["before"], 2)
    # every run starts from the stream's seed: the new look scores the same without the old
    assert main(["bench", "learn", "--checkpoint", str(root / "run" / "model"), "--pairs",
                 str(root / "pairs"), "--name", "Negative Film", "--frames", "6", "--json",
                 "--no-old-looks"]) == 0
    alone = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert alone["per_clip"] == report["per_clip"] and not alone["old_looks"]
    # --seeds: the mean over first noises, the first of them the run above
    assert main(["bench", "learn", "--checkpoint", str(root / "run" / "model"), "--pairs",
                 str(root / "pairs"), "--name", "Negative Film", "--frames", "6", "--json",
                 "--no-old-looks", "--seeds", "2"]) == 0
    two = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for one, both in zip(alone["per_clip"], two["per_clip"]):
        assert both["psnr_db_by_seed"][0] == one["psnr_db"] and len(both["psnr_db_by_seed"]) == 2
        assert abs(both["psnr_db"] - np.mean(both["psnr_db_by_seed"])) <= 0.01
    assert main(["bench", "learn", "--checkpoint", str(root / "run" / "model"), "--pairs",
                 str(root / "pairs"), "--name", "Negative Film", "--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
    assert main(["bench", "learn", "--checkpoint", str(root / "src"), "--pairs",
                 str(root / "pairs"), "--name", "negative film"]) == 2
    assert "learnt no look named" in capsys.readouterr().err


def test_data_pairs_filters_packaged_clips_steadily_or_flickering(tmp_path, capsys):
    steady = write_pairs(tmp_path / "steady", "ocean", ["carphone:0:16"], short_side=64, progress=True)
    err = capsys.readouterr().err
    assert "writing carphone-0-16: 100%" in err and "32/32" in err  # both files' frames
    flicker = write_pairs(tmp_path / "flicker", "ocean", ["carphone:0:16"], flicker=True, short_side=64)
    assert [Path(f).name for f in steady] == ["carphone-0-16"]
    pairs = check_pairs(tmp_path / "steady")
    assert pairs[0]["frames"] == 16 and (pairs[0]["width"], pairs[0]["height"]) == (78, 64)
    a = np.stack(list(read_frames(Path(steady[0]) / "target.mp4"))).astype(float)
    b = np.stack(list(read_frames(Path(flicker[0]) / "target.mp4"))).astype(float)
    jump = lambda x: np.abs(np.diff(x, axis=0)).mean()
    assert jump(b) > 1.5 * jump(a)  # parameters drawn per frame: the target flickers
    again = write_pairs(tmp_path / "again", "ocean", ["carphone:0:16"], short_side=64, repeat=3)
    frames = np.stack(list(read_frames(Path(again[0]) / "input.mp4"))).astype(float)
    assert len(frames) == 48 and np.abs(frames[16] - frames[15]).mean() < 3  # back from its end
    for stretch, size in ((False, (176, 144)), (True, (196, 160))):  # carphone is 176x144
        big = write_pairs(tmp_path / f"big{stretch}", "ocean", ["carphone:0:16"], short_side=160,
                          stretch=stretch)
        info = video_info(Path(big[0]) / "target.mp4")
        assert (info["width"], info["height"]) == size
    with pytest.raises(ValueError, match="unknown clip"):
        write_pairs(tmp_path / "x", "ocean", ["nope"])
    with pytest.raises(ValueError, match="known: .*jet.*stylization"):
        write_pairs(tmp_path / "x", "jett", ["carphone:0:16"])
    assert not (tmp_path / "x").exists()


def test_data_pairs_targets_are_drawn_from_the_input_as_written(tmp_path):
    # as a user's tool draws them: from input.mp4, not from frames the codec never kept
    folder = Path(write_pairs(tmp_path, "pencil", ["carphone:0:16"], short_side=64)[0])
    inputs, targets = (list(read_frames(folder / f)) for f in ("input.mp4", "target.mp4"))
    drawn = np.stack([filtered(x, "pencil") for x in inputs])
    assert psnr(drawn, np.stack(targets)) > 30  # only the target's own codec apart


def test_data_pairs_goes_on_where_a_stopped_run_was(tmp_path, capsys):
    specs, out = ["carphone:0:16", "carphone:16:32"], tmp_path / "pairs"
    first = write_pairs(out, "ocean", specs, flicker=True, short_side=64)
    targets = lambda folder: np.stack(list(read_frames(Path(folder) / "target.mp4")))
    made, ocean, whole = ((Path(first[0]) / "target.mp4").stat().st_mtime_ns, targets(first[0]),
                          targets(first[1]))
    (Path(first[1]) / "target.mp4").unlink()  # stopped while writing the second clip
    assert write_pairs(out, "ocean", specs, flicker=True, short_side=64, progress=True) == first
    err = capsys.readouterr().err
    assert "kept carphone-0-16" in err and "writing carphone-0-16" not in err
    assert "writing carphone-16-32: 100%" in err
    assert (Path(first[0]) / "target.mp4").stat().st_mtime_ns == made
    # its own draws, as if never stopped (x264 may round a few pixels apart, and the target is
    # filtered from the input it wrote: 0.5-1.4 in five runs; other draws: 9-14)
    assert np.abs(targets(first[1]).astype(int) - whole).mean() < 3
    write_pairs(out, "jet", specs[:1], short_side=64, progress=True)  # another recipe
    assert "writing carphone-0-16: 100%" in capsys.readouterr().err
    assert np.abs(targets(first[0]).astype(int) - ocean).mean() > 10


def test_every_opencv_colour_map_is_a_filter():
    frame = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    jet, inferno = filtered(frame, "jet"), filtered(frame, "inferno")
    assert jet.shape == frame.shape and jet.dtype == np.uint8
    assert np.abs(jet.astype(int) - inferno.astype(int)).mean() > 10


def test_redrawn_db_is_what_the_output_path_keeps_of_the_targets(lesson, tmp_path):
    root, report = lesson  # a random codec keeps nothing of them; three steps teach no head
    assert report["redrawn_db"] < 24 and "drawn at only" in report["warning"]
    headless = learn(str(root / "pairs"), "negative film", str(tmp_path / "o"), str(root / "src"),
                     lesson=Lesson(**TINY | {"head_steps": 0}), progress=False)
    assert "redraw these targets at only" in headless["warning"]  # said before training
    assert load(tmp_path / "o" / "model").config.upsampler.heads == []
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    lossless = LSDModel(dataclasses.replace(small_config(), codec=CodecConfig(kind="patches")))
    assert redrawn_db(lossless, frames, frames) == 60.0  # pixels in, pixels out: the cap
    noise = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert redrawn_db(lossless, noise, noise) < 15  # the model's 32 px lose the finer detail


def test_a_lesson_says_which_target_is_off_its_input(lesson, tmp_path, capsys):
    root, _ = lesson
    frames = list(read_frames(root / "pairs" / "clip0" / "input.mp4"))
    write_video(tmp_path / "pairs" / "late" / "input.mp4", frames[1:])
    write_video(tmp_path / "pairs" / "late" / "target.mp4", [255 - f for f in frames[:-1]])
    report = learn(str(tmp_path / "pairs"), "x", str(tmp_path / "o"), str(root / "src"),
                   lesson=Lesson(**TINY | {"steps": 1}), progress=False)
    said = "late/target.mp4 looks 1 frame behind input.mp4"
    assert said in report["warning"] and said in capsys.readouterr().err


def test_a_lesson_reads_each_clip_once_and_keeps_the_heads_frames_at_the_shown_size(
        lesson, monkeypatch):
    root, _ = lesson
    model, pairs = load(root / "src"), check_pairs(root / "pairs")  # two clips of 18 frames
    opened = []
    monkeypatch.setattr(learn_module, "read_frames",
                        lambda p, n: opened.append(p) or read_frames(p, n))
    wins = [(0, 2), (1, 9)]  # the second window ends past the clip's last frame
    footage = learn_module.Footage(model, pairs, torch.float32, False, head_frames(wins))
    assert sorted(opened) == sorted(p[k] for p in pairs for k in ("input", "target"))
    assert footage.warnings == []  # every target in step with its input
    assert sorted(footage.shown[0]) == list(range(6, 12)) and sorted(footage.shown[1]) == [13, 14, 15, 16, 17]
    shown = model.upsampler.shown_size((48, 80))
    assert footage.shown[0][6][0].shape == (*shown, 3) != footage.inputs[0][6].shape
    data = HeadFootage(model, footage, "negative film", wins, False)
    assert len(data.inputs) == 1 and data.frames == 6  # the window past the end is left out
    assert np.array_equal(data.targets[0], np.stack([footage.shown[0][f][1] for f in range(6, 12)]))


def test_the_heads_crops_move_the_picture_and_a_head_that_draws_by_its_grid_is_told():
    rng = np.random.default_rng(0)
    data = HeadFootage.__new__(HeadFootage)  # its crops need only its frames and looks
    data.inputs = [rng.integers(0, 256, (2, 40, 52, 3), dtype=np.uint8)]
    data.targets = [255 - data.inputs[0]]
    data.looks = [torch.rand(2, 3, 8, 8)]
    (grid, base, frame, target), (moved_grid, moved_base, moved_frame), (dy, dx) = data.crops(
        3, torch.Generator().manual_seed(1))
    c = frame.shape[-1]
    assert c == 36 and (dy, dx) != (0, 0) and grid.shape[-2:] == moved_grid.shape[-2:] == (9, 9)
    torch.testing.assert_close(target, 1 - frame)  # each target where its input is
    # the moved crops show the same picture (dy, dx) pixels further on, coarse look and all
    assert torch.equal(moved_frame[..., :c - dy, :c - dx], frame[..., dy:, dx:])
    assert torch.equal(moved_base[..., :c - dy, :c - dx], base[..., dy:, dx:])
    # a picture drawn where it lies is nothing apart from itself moved; one patch drawn on
    # every cell of the head's 4-pixel grid, which stays as the picture moves, is
    assert moved_apart(frame, moved_frame, (dy, dx)) == 0
    pinned = torch.nn.functional.pixel_shuffle(torch.rand(1, 48, 1, 1).expand(1, 48, 9, 9), 4)
    assert moved_apart(frame + pinned, moved_frame + pinned, (dy, dx)) > 0.01


def test_a_lesson_reads_the_first_share_of_pairs_too_long_to_need(lesson, tmp_path, monkeypatch):
    root, _ = lesson
    clips = [{"name": "a", "frames": 9000}, {"name": "b", "frames": 27000}]
    cut, said = within_reading("DIR", clips)
    assert [c["frames"] for c in cut] == [2250, 6750] and "reads 9000, the first 25% of" in said
    assert within_reading("DIR", clips[:1]) == (clips[:1], None)
    many = [{"name": str(c), "frames": 16} for c in range(600)]  # none can be cut shorter
    assert within_reading("DIR", many) == (many, None)
    monkeypatch.setattr(learn_module, "READ_FRAMES", 20)  # the two clips hold 36 frames
    report = learn(str(root / "pairs"), "negative film", str(tmp_path / "o"), str(root / "src"),
                   lesson=Lesson(**TINY | {"head_steps": 0}), progress=False)
    # each clip's first 16 (MIN_FRAMES), not 10: a clip is never cut shorter than a clip may be
    assert report["frames"] == 32 and "reads 32, the first 89% of each clip" in report["warning"]
    model, pairs = load(root / "src"), check_pairs(root / "pairs")
    cut = learn_module.Footage(model, within_reading("DIR", pairs)[0], torch.float32, False)
    whole = learn_module.Footage(model, pairs, torch.float32, False)
    assert np.array_equal(cut.inputs[1], whole.inputs[1][:16])


def test_a_second_lesson_keeps_the_first_look(lesson, tmp_path, capsys, monkeypatch):
    root, report = lesson
    first = load(report["model"])
    # the first look is an old look of the second lesson: windows of its footage drawn by
    # the first lesson's model stand in for a renderer
    footage = learn_module.Footage(first, check_pairs(root / "pairs"), torch.float32, False)
    footage.rehearse(["negative film"], torch.Generator().manual_seed(0), False)
    assert footage.old_looks[-1] == "negative film" and len(footage.rehearsed["negative film"]) == 48
    clips, taught = footage.batch("mirror", 1, 40, torch.Generator().manual_seed(1))
    rows = [i for i, p in enumerate(clips["prompts"]) if p == "negative film"]
    assert rows and not taught[rows].any()
    for i in rows:  # its input window, frames and latents are one drawn window's
        (c, s), frames, z0 = next(w for w in footage.rehearsed["negative film"]
                                  if torch.equal(w[2], clips["z0"][i]))
        assert torch.equal(clips["z_in"][i], footage.z_in[c][s:s + 8])
        assert np.array_equal(tensor_to_uint8(clips["target"][i]), frames)
    second = learn(str(root / "pairs"), "mirror", str(tmp_path / "second"), report["model"],
                   lesson=Lesson(**TINY), progress=False)
    out = load(second["model"])
    assert out.config.text.learned == ["negative film", "mirror"]
    assert out.config.upsampler.heads == ["negative film", "mirror"]
    assert torch.equal(out.learned_looks[0], first.learned_looks[0])
    for k, v in first.upsampler.heads[0].state_dict().items():  # its head is kept bit for bit
        assert torch.equal(out.upsampler.heads[0].state_dict()[k], v)
    assert [r[0] for r in out.reader.read(["Negative Film", "inverted colours", "mirror"])] == [
        "negative film", "negative film", "mirror"]
    # lsd bench learn scores the first look before and after the second lesson
    monkeypatch.setenv("LSD_BACKEND", "eager")
    assert main(["bench", "learn", "--checkpoint", second["model"], "--pairs", str(root / "pairs"),
                 "--name", "negative film", "--frames", "6", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["bench", "learn", "--checkpoint", report["model"], "--pairs", str(root / "pairs"),
                 "--name", "negative film", "--frames", "6", "--json", "--no-old-looks"]) == 0
    then = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert bench["before"] == report["model"] and then["before_psnr_db"] is None
    assert [c["before_psnr_db"] for c in bench["per_clip"]] == [c["psnr_db"] for c in then["per_clip"]]
