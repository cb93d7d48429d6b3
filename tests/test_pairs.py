"""Paired clips for teaching a look (lsd.data.pairs): good folders pass (any container,
image folders, one clip's own folder), each bad case is refused with one line naming the
file, and a target a few frames off its input, or another clip's, is told."""

import av
import numpy as np
import pytest
from PIL import Image

from lsd.data.pairs import check_pairs, misaligned
from lsd.io import read_frames, video_info, write_video


def clip(path, frames=20, size=(32, 48), seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(frames)])


def pair(root, name, frames=20, target_frames=None, target_size=(32, 48)):
    clip(root / name / "input.mp4", frames)
    clip(root / name / "target.mp4", target_frames or frames, target_size, seed=1)


def images(folder, numbers):
    folder.mkdir(parents=True)
    for n in numbers:
        Image.fromarray(np.full((32, 48, 3), n, np.uint8)).save(folder / f"{n:06d}.png")


def test_good_pairs_are_listed_by_name(tmp_path):
    pair(tmp_path, "b")
    pair(tmp_path, "a", frames=24)
    for made_by_tools in (".ipynb_checkpoints", "__MACOSX/a"):  # Jupyter's, a Mac zip's
        (tmp_path / made_by_tools).mkdir(parents=True)
    (tmp_path / "__MACOSX" / "a" / "._input.mp4").write_bytes(b"resource fork")
    got = check_pairs(tmp_path)
    assert [p["name"] for p in got] == ["a", "b"]
    assert got[0]["frames"] == 24 and (got[0]["height"], got[0]["width"]) == (32, 48)
    (one,) = check_pairs(tmp_path / "a")  # a clip's own folder is a pairs folder of one
    assert one == got[0]


def test_any_video_container_or_a_folder_of_frames_pairs(tmp_path):
    """A phone's .MOV, a browser's .mkv or .webm (whose header gives no frame count), and a
    per-frame tool's numbered images."""
    frames = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(20)]
    folder = tmp_path / "c"
    folder.mkdir()
    with av.open(str(folder / "Input.MKV"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    assert video_info(folder / "Input.MKV")["frames"] == 0
    (folder / "target").mkdir()
    for i, f in enumerate(frames):  # frame10 after frame9: natural order
        Image.fromarray(255 - f).save(folder / "target" / f"frame{i}.png")
    (got,) = check_pairs(tmp_path)
    assert (got["frames"], got["width"], got["height"]) == (20, 48, 32)
    assert got["input"].endswith("Input.MKV") and got["target"].endswith("target")
    read = list(read_frames(got["target"]))
    assert len(read) == len(list(read_frames(got["input"]))) == 20
    assert [int(f[0, 0, 0]) for f in read] == [255 - 10 * i for i in range(20)]


def test_a_phone_clip_on_its_side_pairs_with_an_upright_target(tmp_path, sideways_clip):
    (tmp_path / "p").mkdir()
    sideways_clip(tmp_path / "p" / "input.mp4", [np.full((48, 32, 3), 12 * i, np.uint8) for i in range(20)], -90)
    clip(tmp_path / "p" / "target.mp4", size=(48, 32))
    assert [(p["width"], p["height"]) for p in check_pairs(tmp_path)] == [(32, 48)]


def test_each_bad_pair_is_refused_naming_the_file(tmp_path):
    cases = {
        "counts": (lambda r: pair(r, "c", 20, target_frames=18), r"c/target.mp4 has 18 frames"),
        "sizes": (lambda r: pair(r, "c", target_size=(32, 32)), r"c/target.mp4 is 32x32 but input.mp4 is 48x32"),
        "short": (lambda r: pair(r, "c", frames=8), r"c/input.mp4 has 8 frames; a clip needs at least 16"),
        "missing": (lambda r: clip(r / "c" / "input.mp4"), r"c/target.mp4 is missing"),
        "no target frames yet": (lambda r: (r / "c" / "input").mkdir(parents=True),
                                 r"c/target/ is missing: put the target frames there"),
        "a skipped image": (lambda r: (images(r / "c" / "input", range(1, 21)),
                                       images(r / "c" / "target", [n for n in range(1, 21) if n != 7])),
                            r"c/target has 19 frames but input has 20 \(the first with no partner: "
                            r"input/000007.png\)"),
        "two targets": (lambda r: (pair(r, "c"), (r / "c" / "target").mkdir()),
                        r"c has target and target.mp4: keep one target"),
        "no images": (lambda r: (clip(r / "c" / "input.mp4"), (r / "c" / "target").mkdir()),
                      r"c/target cannot be read: no images"),
        "unreadable": (lambda r: (pair(r, "c"), (r / "c" / "target.mp4").write_bytes(b"not a video")),
                       r"c/target.mp4 cannot be read"),
    }
    for case, (make, message) in cases.items():
        root = tmp_path / case
        make(root)
        with pytest.raises(ValueError, match=message):
            check_pairs(root)
    with pytest.raises(ValueError, match="is not a folder"):
        check_pairs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no clip folders"):
        check_pairs(tmp_path / "empty")


def test_a_target_off_its_input_or_from_another_clip_is_told():
    """Edges in the look's colours (inverted): in step, 1 frame behind, 2 ahead; another
    clip's frames; a still clip (every lag alike) is not called shifted."""
    rng = np.random.default_rng(0)
    smooth = lambda: np.kron(rng.integers(0, 256, (20, 20, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    base, other = smooth(), smooth()
    frames = np.stack([np.roll(base, (3 * i, 2 * i), (0, 1)) for i in range(40)])
    look = 255 - frames
    pair = {"input": "c/input.mp4", "target": "c/target.mp4"}
    assert misaligned(pair, frames[:30], look[:30]) is None
    assert "c/target.mp4 looks 1 frame behind input.mp4 (its frame N matches the input's N-1)" \
        in misaligned(pair, frames[1:31], look[:30])
    assert "looks 2 frames ahead of input.mp4" in misaligned(pair, frames[:30], look[2:32])
    assert "another clip's target" in misaligned(pair, frames[:30], 255 - np.stack([other] * 30))
    assert misaligned(pair, np.stack([base] * 30), np.stack([255 - base] * 30)) is None
