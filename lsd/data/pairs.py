"""Paired clips a user brings to teach LSD a look (issue 40): a folder with one folder per
clip, each holding `input.mp4` and `target.mp4`, the same frames with the target in the
look. `check_pairs` reads only their headers and refuses a bad pair with one line naming
the file, before any training starts.
"""

from __future__ import annotations

from pathlib import Path

from ..io import VideoError, video_info

MIN_FRAMES = 16  # a clip shorter than this teaches no motion (the history is 3 frames)


def _info(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"{path} is missing: each clip folder needs input.mp4 and target.mp4")
    try:
        info = video_info(path)
    except VideoError as e:
        raise ValueError(f"{path} cannot be read: {e}") from None
    if not info["frames"]:
        raise ValueError(f"{path} does not say how many frames it has: re-encode it as mp4")
    return info


def check_pairs(folder: str | Path, min_frames: int = MIN_FRAMES) -> list[dict]:
    """One {"name", "input", "target", "frames", "width", "height", "fps"} per clip folder
    (sorted by name), or a ValueError naming the first bad file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--pairs {folder} is not a folder")
    clips = sorted(p for p in folder.iterdir() if p.is_dir())
    if not clips:
        raise ValueError(f"--pairs {folder} holds no clip folders (each with input.mp4 and "
                         f"target.mp4)")
    pairs = []
    for clip in clips:
        source, target = _info(clip / "input.mp4"), _info(clip / "target.mp4")
        if source["frames"] != target["frames"]:
            raise ValueError(f"{clip / 'target.mp4'} has {target['frames']} frames but "
                             f"input.mp4 has {source['frames']}: they must be the same frames")
        size = lambda i: f"{i['width']}x{i['height']}"
        if (source["width"], source["height"]) != (target["width"], target["height"]):
            raise ValueError(f"{clip / 'target.mp4'} is {size(target)} but input.mp4 is "
                             f"{size(source)}: a target must be its input's size")
        if source["frames"] < min_frames:
            raise ValueError(f"{clip / 'input.mp4'} has {source['frames']} frames; a clip "
                             f"needs at least {min_frames}")
        pairs.append({"name": clip.name, "input": str(clip / "input.mp4"),
                      "target": str(clip / "target.mp4"), "frames": source["frames"],
                      "width": source["width"], "height": source["height"], "fps": source["fps"]})
    return pairs
