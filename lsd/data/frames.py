"""A user's clip as numbered images, for a per-frame tool (a diffusion pass, a filter, a
grade that takes pictures) to draw its targets from: `lsd data frames --video walk.mp4 --out
pairs/walk` writes pairs/walk/input/000001.jpg, ...; the tool writes its frames, numbered
the same and at the same size, to pairs/walk/target/, and `lsd learn --pairs pairs` reads both
(lsd.data.pairs).

It writes the first 9,000 frames at most (READ_FRAMES: a lesson reads no more), shrunk to a
short side (512 by default, what diffusion tools draw at; a lesson uses 256 of it) with
both sides a multiple of 8, which such tools keep: a target must be its input's size. A
stopped split goes on where it was: each image is written whole under its name (renamed
into place) and the recipe is kept beside them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..io import list_images, read_frames, read_recipe, video_info, write_recipe
from .pairs import READ_FRAMES

MULTIPLE = 8  # both sides: diffusion tools work on 8x smaller latents
RECIPE = ".lsd-frames.json"  # hidden: neither a frame to lsd learn nor an image to a tool


def scaled_size(width: int, height: int, short_side: int, multiple: int,
                enlarge: bool = False) -> tuple[int, int]:
    """(width, height) with the short side brought down to `short_side` (or up, with
    `enlarge`), both sides rounded to a multiple of `multiple` (the aspect ratio kept within
    half of one)."""
    scale = short_side / min(width, height)
    scale = scale if enlarge else min(1.0, scale)
    return tuple(max(multiple, round(side * scale / multiple) * multiple)
                 for side in (width, height))


def split_frames(video: str | Path, out: str | Path, short_side: int = 512,
                 max_frames: int | None = READ_FRAMES, progress: bool = False) -> dict:
    """OUT/input/000001.jpg, ... of `video`'s first `max_frames` frames (all if None; by
    default as many as a lesson reads), as the module says; returns {"input", "target",
    "frames", "width", "height", "video_frames" (the video's, 0 where its header does not
    say)}."""
    if short_side < MULTIPLE:
        raise ValueError(f"--size must be at least {MULTIPLE}, not {short_side}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--frames must be at least 1, not {max_frames}")
    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out {out} is a file: give a folder for the clip")
    info = video_info(video)  # an unreadable video fails here, before anything is written
    width, height = scaled_size(info["width"], info["height"], short_side, MULTIPLE)
    recipe = {"video": str(Path(video).resolve()), "size": [width, height], "frames": max_frames}
    folder = Path(out) / "input"
    made = {p.name for p in list_images(folder)} if folder.is_dir() else set()
    if made and read_recipe(folder / RECIPE) != recipe:
        raise ValueError(f"{folder} already holds {len(made)} images of another split: give "
                         f"another --out, or empty it")
    folder.mkdir(parents=True, exist_ok=True)
    write_recipe(folder / RECIPE, recipe)
    total = min((n for n in (info["frames"], max_frames) if n), default=None)  # mkv: unsaid
    count = 0
    with tqdm(total=total, desc=f"writing {folder}", unit="frame", disable=not progress) as bar:
        for count, frame in enumerate(read_frames(video, max_frames), 1):
            name = f"{count:06d}.jpg"
            if name not in made:  # else an earlier run of this split wrote it whole
                _write_image(folder / name, frame, (width, height))
            bar.update()
    return {"input": str(folder), "target": str(Path(out) / "target"), "frames": count,
            "width": width, "height": height, "video_frames": info["frames"]}


def _write_image(path: Path, frame: np.ndarray, size: tuple[int, int]):
    """`frame` at `size` as a JPEG, under a hidden name until it is whole: at quality 95 in
    full colour, a quarter of a fast PNG's size and 13x faster to write (600 frames of 1080p
    split to 1208x512: 78 against 318 MB, 26 against 48 s in all); a lesson sees 256 px."""
    image = Image.fromarray(frame)
    if image.size != size:  # reducing_gap: a 4K frame first shrunk by a whole factor (faster)
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    tmp = path.with_name(f".{path.name}.part")
    image.save(tmp, format="JPEG", quality=95, subsampling=0)
    os.replace(tmp, path)
