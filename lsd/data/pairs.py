"""Paired clips a user brings to teach LSD a look (issue 40): a folder with one folder per
clip, each holding an input and a target, the same frames with the target in the look. Each
is a video file named `input.*` / `target.*` (mp4, mov, mkv, webm, ...: what PyAV reads) or
a folder `input/` / `target/` of numbered images, as per-frame tools write them. A folder
holding an input and a target itself is one clip.
`check_pairs` reads only their headers and refuses a bad pair with one line naming the file,
before any training starts.
"""

from __future__ import annotations

from pathlib import Path

from ..io import VideoError, count_frames, video_info

MIN_FRAMES = 16  # a clip shorter than this teaches no motion (the history is 3 frames)
ROLES = ("input", "target")


def _named(clip: Path, role: str) -> list[Path]:
    """The clip's video files `role.*` and image folders `role/`."""
    return [p for p in sorted(clip.iterdir()) if not p.name.startswith(".")
            and (p.name == role if p.is_dir() else p.stem == role)]


def _found(clip: Path, role: str) -> Path:
    """The clip's one input or target."""
    found = _named(clip, role)
    if not found:
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


def check_pairs(folder: str | Path, min_frames: int = MIN_FRAMES) -> list[dict]:
    """One {"name", "input", "target", "frames", "width", "height", "fps"} per clip folder
    (sorted by name; `folder` itself if it holds a clip), or a ValueError naming the first
    bad file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--pairs {folder} is not a folder")
    own = any(_named(folder, role) for role in ROLES)  # one clip, not a folder of them
    clips = [folder] if own else sorted(p for p in folder.iterdir() if p.is_dir())
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
                             f"has {source['frames']}: they must be the same frames")
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
