"""A user's clip as numbered images for a per-frame tool (lsd.data.frames): sizes a tool
keeps, names read back in order, the tool's frames pair with them, and a stopped split goes
on without rewriting what it made."""

import json

import numpy as np
import pytest
from PIL import Image

from lsd.cli import main
from lsd.data.frames import scaled_size, split_frames
from lsd.data.pairs import check_pairs
from lsd.io import read_frames, write_video


def video(path, frames=20, size=(60, 100)):
    """Frames that brighten one step at a time, so their order can be read back."""
    write_video(path, [np.full((*size, 3), 10 * i, np.uint8) for i in range(frames)])
    return path


def test_sizes_are_multiples_of_8_and_never_enlarged():
    assert scaled_size(100, 60, 40, 8) == (64, 40)
    assert scaled_size(1920, 1080, 512, 8) == (912, 512)
    assert scaled_size(1080, 1920, 512, 8) == (512, 912)  # a phone's portrait clip
    assert scaled_size(604, 256, 512, 8) == (608, 256)  # small: only rounded
    assert scaled_size(21, 6, 512, 8) == (24, 8)
    assert scaled_size(176, 144, 160, 2, enlarge=True) == (196, 160)  # lsd data pairs --stretch


def test_a_tools_frames_written_beside_them_pair_with_them(tmp_path):
    got = split_frames(video(tmp_path / "walk.mp4"), tmp_path / "pairs" / "walk", short_side=40)
    assert (got["frames"], got["width"], got["height"]) == (20, 64, 40)
    names = sorted(p.name for p in (tmp_path / "pairs" / "walk" / "input").glob("*.jpg"))
    assert names == [f"{i:06d}.jpg" for i in range(1, 21)]
    frames = list(read_frames(got["input"]))
    assert [round(float(f.mean()) / 10) for f in frames] == list(range(20))  # in order
    target = tmp_path / "pairs" / "walk" / "target"
    target.mkdir()
    for name, frame in zip(names, frames):  # the user's tool: numbered the same, same size
        Image.fromarray(255 - frame).save(target / name.replace(".jpg", ".png"))
    (pair,) = check_pairs(tmp_path / "pairs")
    assert (pair["frames"], pair["width"], pair["height"]) == (20, 64, 40)
    assert pair["input"] == got["input"] and pair["target"] == got["target"] == str(target)


def test_a_phone_clip_on_its_side_is_written_upright(tmp_path, sideways_clip):
    upright = [np.zeros((48, 32, 3), np.uint8) for _ in range(4)]
    for f in upright:
        f[:8] = 255  # the top of the picture
    sideways_clip(tmp_path / "phone.mp4", upright, -90)
    got = split_frames(tmp_path / "phone.mp4", tmp_path / "p")
    assert (got["width"], got["height"]) == (32, 48)
    image = np.asarray(Image.open(tmp_path / "p" / "input" / "000001.jpg"))
    assert image.shape == (48, 32, 3) and image[:8].mean() > 200 and image[-8:].mean() < 50


def test_a_stopped_split_goes_on_and_another_is_refused(tmp_path):
    clip, out = video(tmp_path / "walk.mp4"), tmp_path / "walk"
    split_frames(clip, out, short_side=40, max_frames=12)
    folder = out / "input"
    kept = (folder / "000001.jpg").stat().st_mtime_ns
    (folder / "000007.jpg").unlink()  # stopped there
    (folder / ".000007.jpg.part").write_bytes(b"half")  # a stop mid-image leaves it hidden
    assert split_frames(clip, out, short_side=40, max_frames=12)["frames"] == 12
    assert (folder / "000001.jpg").stat().st_mtime_ns == kept
    assert round(float(np.asarray(Image.open(folder / "000007.jpg")).mean()) / 10) == 6
    assert len(list(read_frames(folder))) == 12
    with pytest.raises(ValueError, match="12 images of another split"):
        split_frames(clip, out, short_side=32, max_frames=12)
    assert (folder / "000001.jpg").stat().st_mtime_ns == kept  # nothing rewritten


def test_lsd_data_frames_says_what_comes_next_and_fails_in_one_line(tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.setattr("lsd.data.pairs.READ_FRAMES", 10)
    clip = video(tmp_path / "walk.mp4")
    assert main(["data", "frames", "--video", str(clip), "--out", str(tmp_path / "p" / "walk"),
                 "--json", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["frames"] == 10 and f"--pairs {tmp_path / 'p'}" in report["next"]
    assert "the first 10 of the clip's 20 frames" in err  # by default, what a lesson reads
    assert len(list((tmp_path / "p" / "walk" / "input").glob("*.jpg"))) == 10
    for args, says in ((["--video", str(tmp_path / "none.mp4")], "not found"),
                       (["--video", str(clip), "--frames", "0"], "--frames must be at least 1"),
                       (["--video", str(clip), "--size", "4"], "--size must be at least 8")):
        assert main(["data", "frames", *args, "--out", str(tmp_path / "q")]) != 0
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "q").exists()
