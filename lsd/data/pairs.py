"""Paired clips a user brings to teach LSD a look (issue 40): a folder with one folder per
clip, each holding an input and a target, the same frames with the target in the look. Each
is a video file named `input.*` / `target.*` (mp4, mov, mkv, webm, ...: what PyAV reads) or
a folder `input/` / `target/` of numbered images, as per-frame tools write them. A folder
holding an input and a target itself is one clip.

`check_pairs` reads only their headers (and a mkv's packets) and refuses a bad pair with
one line naming the file, before any training starts. `misaligned` looks at the frames once
they are read: a target a few frames off its input, or another clip's, passes every header
check and teaches the look wrongly.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..io import VideoError, count_frames, list_images, video_info, visible

MIN_FRAMES = 16  # a clip shorter than this teaches no motion (the history is 3 frames)
# pairs a lesson reads at most: 5 min at 30 fps. Its 300 steps see 4,800 frames of the new
# look (two windows of 8 a step); more would only cost reading time and memory
READ_FRAMES = 9000
ROLES = ("input", "target")
LAGS = 3  # a target's frames are compared with its input's this many frames either side
COMPARED = 64  # frames of a clip compared
# On the OpenCV filters' 20 pairs (journal), at the model's size and at the shown one: where
# the edges move, a target in step matched its input's frame better than any other by 0.03
# or more, and each one 1-3 frames off matched the input's frame it shows better than its
# own by 0.03 or more; the edges themselves matched by 0.26 or more in a look, 0.10 at most
# against another clip's.
SHIFTED = 0.02
UNRELATED = 0.2
EDGES_SIZE = 64  # pixels: a 128-px frame is compared at 64


def _named(clip: Path, role: str) -> list[Path]:
    """The clip's video files `role.*` and image folders `role/`, in any case (INPUT.MOV)."""
    return [p for p in sorted(visible(clip)) if (p.name if p.is_dir() else p.stem).lower() == role]


def _found(clip: Path, role: str) -> Path:
    """The clip's one input or target."""
    found = _named(clip, role)
    if not found:
        other = _named(clip, "target" if role == "input" else "input")
        if other and other[0].is_dir():  # e.g. lsd data frames' input/, no target yet
            raise ValueError(f"{clip / role}/ is missing: put the {role} frames there, "
                             f"numbered as {other[0].name}/'s are and at their size")
        raise ValueError(f"{clip / role}.mp4 is missing: each clip folder needs an input and "
                         f"a target, as videos (input.mp4, target.mov, ...) or folders of images")
    if len(found) > 1:
        raise ValueError(f"{clip} has {' and '.join(p.name for p in found)}: keep one {role}")
    return found[0]


def _info(path: Path) -> dict:
    try:
        info = video_info(path)
        if not info["frames"] and path.is_file():  # mkv and webm do not say
            info["frames"] = count_frames(path)
    except VideoError as e:
        raise ValueError(f"{path} cannot be read: {e}") from None
    return info


def _unpartnered(paths: dict[str, Path]) -> str:
    """' (the first with no partner: input/000037.jpg)' for an input and a target folder of
    images whose numbers (the last in each name) differ, as where a tool skipped a frame;
    '' otherwise."""
    if not all(path.is_dir() for path in paths.values()):
        return ""
    numbered = []
    for folder in paths.values():
        images = {}
        for image in list_images(folder):
            digits = re.findall(r"\d+", image.stem)
            if not digits:
                return ""
            images[int(digits[-1])] = image
        numbered.append(images)
    lone = sorted(numbered[0].keys() ^ numbered[1].keys())
    if not lone:
        return ""
    image = numbered[0].get(lone[0]) or numbered[1][lone[0]]
    return f" (the first with no partner: {image.parent.name}/{image.name})"


def check_pairs(folder: str | Path, min_frames: int = MIN_FRAMES) -> list[dict]:
    """One {"name", "input", "target", "frames", "width", "height", "fps"} per clip folder
    (sorted by name; `folder` itself if it holds a clip), or a ValueError naming the first
    bad file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--pairs {folder} is not a folder")
    own = any(_named(folder, role) for role in ROLES)  # one clip, not a folder of them
    clips = [folder] if own else [p for p in sorted(visible(folder)) if p.is_dir()]
    if not clips:
        raise ValueError(f"--pairs {folder} holds no clip folders (each with an input and a "
                         f"target: input.mp4 and target.mp4)")
    pairs = []
    for clip in clips:
        paths = {role: _found(clip, role) for role in ROLES}
        source, target = (_info(paths[role]) for role in ROLES)
        given = paths["input"].name
        if source["frames"] != target["frames"]:
            raise ValueError(f"{paths['target']} has {target['frames']} frames but {given} "
                             f"has {source['frames']}{_unpartnered(paths)}: they must be the "
                             f"same frames")
        size = lambda i: f"{i['width']}x{i['height']}"
        if (source["width"], source["height"]) != (target["width"], target["height"]):
            raise ValueError(f"{paths['target']} is {size(target)} but {given} is "
                             f"{size(source)}: a target must be its input's size")
        if source["frames"] < min_frames:
            raise ValueError(f"{paths['input']} has {source['frames']} frames; a clip "
                             f"needs at least {min_frames}")
        pairs.append({"name": clip.name, **{role: str(paths[role]) for role in ROLES},
                      "frames": source["frames"], "width": source["width"],
                      "height": source["height"], "fps": source["fps"]})
    return pairs


def _edges(frames: np.ndarray) -> np.ndarray:
    """(T, h, w) edge strength of (T, H, W, 3) uint8 frames, averaged down to about EDGES_SIZE
    pixels on the short side: what a look keeps of its input, whatever it does to the
    colours and the fine texture."""
    grey = frames.astype(np.float32).mean(-1)
    t, h, w = grey.shape
    k = max(1, min(h, w) // EDGES_SIZE)
    grey = grey[:, :h // k * k, :w // k * k].reshape(t, h // k, k, w // k, k).mean((2, 4))
    return np.hypot(np.diff(grey, axis=1)[:, :, :-1], np.diff(grey, axis=2)[:, :-1])


def _unit(maps: np.ndarray) -> np.ndarray:
    """(T, h, w) maps as (T, h*w) rows of zero mean and unit norm: their dot is a correlation."""
    rows = maps.reshape(len(maps), -1)
    rows = rows - rows.mean(1, keepdims=True)
    return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-6)


def _by_lag(x: np.ndarray, y: np.ndarray) -> dict[int, float]:
    """lag -> the mean correlation of maps y[t] with x[t + lag]."""
    x, y = _unit(x), _unit(y)
    t = np.arange(LAGS, min(len(x), len(y)) - LAGS)
    return {lag: float(np.mean(np.sum(x[t + lag] * y[t], 1))) for lag in range(-LAGS, LAGS + 1)}


def misaligned(pair: dict, inputs: np.ndarray, targets: np.ndarray) -> str | None:
    """A warning if the pair's target (frames of one size with its inputs) looks made from
    another clip, or a few frames off its input; None if it follows it frame for frame.
    Shifts are told by where the edges move, as a still scene looks alike at every lag."""
    if min(len(inputs), len(targets)) < 2 * LAGS + 2:
        return None  # too few frames to tell
    x, y = (_edges(v[:COMPARED + 2 * LAGS + 1]) for v in (inputs, targets))
    given = Path(pair["input"]).name
    if max(_by_lag(x, y).values()) < UNRELATED:
        return f"{pair['target']} does not follow {given}'s edges: is it another clip's target?"
    moved = _by_lag(*(np.abs(np.diff(v, axis=0)) for v in (x, y)))
    best = max(moved, key=moved.get)
    if best and moved[best] - moved[0] > SHIFTED:
        return (f"{pair['target']} looks {abs(best)} frame{'s' * (abs(best) > 1)} "
                f"{'ahead of' if best > 0 else 'behind'} {given} (its frame N matches the "
                f"input's N{best:+d}): a target must be its input's frames, one for one")
    return None
