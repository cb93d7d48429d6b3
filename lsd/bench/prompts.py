"""`lsd bench real --prompts FILE`: does a prompt nobody trained on land on the look it
means? Each phrasing streams the same real clip from an empty history, and so does each
frame look's canonical prompt (its first); the look whose canonical output the phrasing's
output is nearest to (mean PSNR, frame by frame) is the one it landed on. Judged by the
output, not by the prompt embedding, and by what the look's own name draws, so that it
measures the reading of the prompt, not how well the model draws a look on this clip.
That is reported apart: `canonical_landed_on` gives, per look, the look whose reference
rendering of the clip its canonical output is nearest to (cartoon is retro_palette's on
bikes).

FILE holds `LOOK<TAB>phrasing` lines (# starts a comment), e.g. tests/data/prompts_heldout.txt;
LOOK `none` marks a prompt for a look LSD lacks (tests/data/prompts_unknown.txt): it is not
streamed, only counted as caught when the stream calls it unknown. A phrasing for a look
that the stream calls unknown is counted as doubted.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..io import read_frames, to_uint8
from ..machine import machine_name
from ..metrics import psnr
from ..models import load
from ..models.prompt_reader import NONE
from ..stream.backends import streamed_with
from ..stream.engine import Stream
from ..styles import get_style, style_names
from .drift import capped
from .real import _cv2, check_frame_style, shown_size


def read_phrasings(path: str | Path) -> list[tuple[str, str]]:
    """(look, phrasing) pairs of a LOOK<TAB>phrasing file; a bad line is an error naming it."""
    pairs = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        look, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise ValueError(f"{path}:{n}: expected LOOK<TAB>phrasing, got {line!r}")
        if look.strip() != NONE:
            check_frame_style(look.strip())
        pairs.append((look.strip(), text.strip()))
    if not pairs:
        raise ValueError(f"{path}: no phrasings in it")
    return pairs


def landed_on(outputs: list[np.ndarray], references: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Mean PSNR (dB) of the outputs against each look's references, frame by frame."""
    return {look: float(np.mean([capped(psnr(o, r)) for o, r in zip(outputs, refs)]))
            for look, refs in references.items()}


def bench_prompts(checkpoint: str, phrasings: str, video: str, frames: int = 24,
                  steps: int | None = None, progress: bool = True) -> dict:
    pairs = read_phrasings(phrasings)
    cv2 = _cv2()  # missing OpenCV fails before the model loads
    model = load(checkpoint)
    clip = list(read_frames(video, max_frames=frames))
    size = shown_size(model, clip[0].shape[:2]) if clip else (1, 1)
    clip = [cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA) for f in clip]
    sample = model.sample.but(steps=steps)
    looks = style_names("frame")
    references = {look: [to_uint8(get_style(look).renderer()(x.astype(np.float32) / 255.0))
                         for x in clip] for look in looks}
    # each stream its own empty history: only the prompt differs
    played = lambda stream: [stream.step(x) for x in clip]
    canonical = {look: played(Stream(model, get_style(look).prompts[0], sample)) for look in looks}
    drawn = {look: landed_on(out, references) for look, out in canonical.items()}
    rows, confusion = [], {look: Counter() for look in looks}
    caught = []
    for meant, text in tqdm(pairs, desc="phrasings", file=sys.stderr, disable=not progress):
        stream = Stream(model, text, sample)
        if meant == NONE:
            caught.append(stream.warning is not None)
            continue
        scores = landed_on(played(stream), canonical)
        got = max(scores, key=scores.get)
        confusion[meant][got] += 1
        rows.append({"look": meant, "prompt": text, "landed_on": got,
                     "psnr_db_meant": round(scores[meant], 2), "psnr_db_best": round(scores[got], 2),
                     "doubted": stream.warning is not None})
    hits = sum(r["look"] == r["landed_on"] for r in rows)
    return {"checkpoint": str(checkpoint), "phrasings": str(phrasings), "video": str(video),
            "frames": len(clip), "accuracy": round(hits / len(rows), 3) if rows else None,
            "hits": hits,
            "prompts": len(rows), "doubted": sum(r["doubted"] for r in rows),
            "unknown_caught": sum(caught), "unknown_prompts": len(caught),
            "confusion": {look: dict(c) for look, c in confusion.items() if c},
            "missed": [r for r in rows if r["look"] != r["landed_on"]], "rows": rows,
            "canonical_landed_on": {look: max(d, key=d.get) for look, d in drawn.items()},
            "canonical_psnr_db": {look: round(d[look], 2) for look, d in drawn.items()},
            **streamed_with(), "machine": machine_name()}
