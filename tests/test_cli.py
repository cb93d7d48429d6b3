"""The command line: styles listing, data samples, demo, and clear errors."""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lsd.cli import build_parser, main
from lsd.data.export import flow_to_rgb
from lsd.io import read_frames, video_info


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_styles_json_lists_enough_styles(capsys):
    assert main(["styles", "--json"]) == 0
    styles = _last_json(capsys)["styles"]
    assert len(styles) >= 10
    assert sum(s["kind"] == "memory" for s in styles) >= 3
    assert all(s["prompts"] for s in styles)
    # star_glitter is offered plainly as not learnt, every other look as learnt
    assert [s["name"] for s in styles if s["not_learnt"]] == ["star_glitter"]
    assert main(["styles"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing if "(not learnt" in line] == ["star_glitter"]


def test_data_sample_writes_videos_and_exact_flow(tmp_path, capsys):
    out = tmp_path / "sample"
    assert main(["data", "sample", "--style", "thermal", "--seed", "4", "--frames", "12",
                 "--size", "64", "--out", str(out), "--json"]) == 0
    assert _last_json(capsys)["frames"] == 12
    for name in ("input.mp4", "target.mp4", "preview.mp4"):
        info = video_info(out / name)
        assert info["frames"] == 12 and info["height"] == 64
    z = np.load(out / "flow.npz")
    assert z["flow"].shape == (12, 64, 64, 2) and z["occluded"].shape == (12, 64, 64)
    from lsd.data import World, world_config
    exact, _ = World(4, world_config(64)).flow(5)
    np.testing.assert_allclose(z["flow"][5], exact, atol=0.01)  # float16 storage


def test_unknown_style_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "sample", "--style", "nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown style 'nope'" in err and "ink_wash" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("shipped", [True, False])
def test_demo_writes_side_by_side_video(tmp_path, capsys, monkeypatch, shipped):
    """With the shipped checkpoint the model runs; without one, the reference renderers."""
    from lsd.stream import runner

    if not shipped:
        monkeypatch.setattr(runner, "CHECKPOINTS", tmp_path / "none")
    out, strip = tmp_path / "demo.mp4", tmp_path / "strip.png"
    assert main(["demo", "--out", str(out), "--seconds", "1.2", "--strip", str(strip),
                 "--json"]) == 0
    r = _last_json(capsys)
    frames = list(read_frames(out))
    assert r["frames"] == len(frames) == 30
    # the strip: one frame of each prompt's stretch, after its blend, stacked
    rows = np.asarray(Image.open(strip).convert("RGB")).reshape(5, *frames[0].shape)
    assert r["strip"] == str(strip) and np.array_equal(rows[0], frames[4])
    assert ("checkpoint" in r) == shipped
    h, w, _ = frames[0].shape
    assert w > 2 * h  # input | output, the clip is wide
    half = (w - 2) // 2  # input | 2 px gap | output
    left, right = frames[5][:, :half].astype(int), frames[5][:, -half:].astype(int)
    assert np.abs(left - right).mean() > 10  # restyled, not passed through


def test_flow_colours():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[0, 0] = (4, 0)
    occ = np.zeros((4, 4), bool)
    occ[3, 3] = True
    rgb = flow_to_rgb(flow, occ)
    assert rgb[0, 0].max() == 255 and rgb[1, 1].max() < 70 and rgb[3, 3].max() == 0


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "lsd.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "styles" in r.stdout and "data" in r.stdout


def test_every_command_and_option_is_in_docs_commands_md():
    """docs/commands.md says it lists every command with its options; the flags every command
    shares are said once, at its top."""
    shared = {"--help", "--dtype", "--backend", "--json", "--no-progress", "--seed", "--device"}
    text = (Path(__file__).resolve().parents[1] / "docs" / "commands.md").read_text()
    entries = re.split(r"\n(?=lsd |torchrun )", text)  # an entry: its usage and its comments

    def commands(parser, words):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield " ".join(words), parser
        for action in subs:
            for name, sub in action.choices.items():
                yield from commands(sub, [*words, name])

    missing = {}
    for command, parser in commands(build_parser(), ["lsd"]):
        told = "\n".join(e for e in entries if re.match(re.escape(command) + r"(\s|$)", e))
        flags = [f for a in parser._actions for f in a.option_strings if f.startswith("--")]
        gaps = [f for f in flags if f not in shared and not re.search(re.escape(f) + r"\b", told)]
        if not told or gaps:
            missing[command] = gaps or "no entry"
    assert not missing, missing
