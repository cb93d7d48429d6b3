"""`lsd bench quality`: roll a checkpoint out frame by frame on held-out synthetic streams,
one per style, and compare with the styles' targets.

Per style: PSNR and SSIM against the target, the output's warp error under the exact flow
(temporal consistency) beside the target's own, and for memory styles the measure that
tells whether the per-stream choice was kept (palette distance between the last and the
first output frame, beside each frame's distance to its own palette and the share of pixels
in the stream's own picks; the stars' F1 against the target's; or trail PSNR), and the codec's
ceiling: the target's own PSNR through the model's codec, the best any denoiser could
score with that codec. One stream per style
is quick; `--streams N` averages N streams per style, since one stream's palette distance
moves by tens between seeds, and measures each stream's last frame against the next
stream's first as well: what a lost choice scores.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from ..config import SampleConfig
from ..data import VAL_SEED_START, Sample, paired_stream
from ..io import side_by_side
from ..machine import machine_name
from ..metrics import (decoration_f1, main_colours, palette_distance, picked_share, psnr, ssim,
                       warp_error)
from ..models import LSDModel, load
from ..stream.backends import streamed_with
from ..stream.engine import Stream
from ..styles import get_style, style_names
from ..styles.memory import STAR_SPOT, pop_colours
from ..styles.picks import OPTIONS, PICKS
from ..train.clips import to_frames, to_uint8
from .stars import stars_kept

OCCLUSION_MARGIN = 2  # px: warp errors are measured away from occlusions
SSIM_EVERY = 10  # SSIM is slow; every 10th frame is plenty (the codec's ceiling too)


@torch.no_grad()
def through_codec(model: LSDModel, target: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The target frame (H, W, 3) uint8 encoded and decoded (beside the input frame, where
    the decoder sees it): what the codec lets through of it."""
    p = next(model.codec.parameters())
    x, f = (to_frames(a)[None].to(p.device, p.dtype) for a in (target, frame))
    return to_uint8(model.codec.decode(model.codec.encode(x), f)[0].cpu())


def stars_found(outputs: list[np.ndarray], targets: list[np.ndarray], name: str = "") -> dict:
    """F1 of the first and the last frame's stars against the target's (the target's stars
    at the last frame are frame 0's, glued to the background): warm bright spots, so that
    the picture's own bright details do not count (styles.memory.STAR_SPOT)."""
    f1 = lambda a, b: round(decoration_f1(a, b, **STAR_SPOT), 3)
    return {f"{name}decoration_f1_last": f1(outputs[-1], targets[-1]),
            f"{name}decoration_f1_first": f1(outputs[0], targets[0])}


def consistency(kind: str | None, outputs: list[np.ndarray], targets: list[np.ndarray]) -> dict:
    """The memory measure named by a style's `consistency` field, from the first and the
    last (output, target) frames of a rollout; {} for frame styles."""
    if kind == "palette":
        return {"palette_last_vs_first": round(palette_distance(outputs[-1], outputs[0]), 2),
                "palette_last_vs_target": round(palette_distance(outputs[-1], targets[-1]), 2)}
    if kind == "decorations":
        return stars_found(outputs, targets)
    if kind == "psnr":
        return {"psnr_last_db": round(psnr(outputs[-1], targets[-1]), 2)}
    return {}


def consistency_scale(kind: str | None, outputs: list[np.ndarray], targets: list[np.ndarray],
                      seed: int, coded: list[np.ndarray], frames: int) -> dict:
    """What a kept choice scores, beside the measure. The target keeps its palette, yet shows
    it on other content by the last frame; sent through the codec (`coded`: the first and
    the last target, encoded and decoded), it is what a denoiser that got every latent
    right would show. A frame is some way from even its own 8-colour palette (the more so
    the less flat its colours), so a palette kept exactly still scores about that: the
    mean over the first and the last frame of each one's distance to itself. The first
    frame's distance to its target, beside the last's (`palette_last_vs_target`), tells a
    palette that wanders off the target's from one drawn equally far from it throughout;
    the coded targets' two (`codec_palette_first_vs_target`, `_last_`) say how far the
    codec alone draws a frame from its target.
    And the share of pixels drawn nearest to one of the stream's own picks (pop_art's
    colours, styles/memory.py), first and last: the choice itself, however mottled. And the choice
    read back: the four options each frame is mostly drawn in (not the outlines' black),
    the share of them that are the stream's picks, first and last, and the share of frame
    0's that frame F-1 is still drawn in (`picks_kept`). The choice measures are given for
    the outputs, the targets and the coded targets alike. For decorations, the coded
    targets' stars against the targets' (what the codec lets through of them), and for
    each of the three whether the last of its `frames` frames still shows the stars its
    first showed, followed with the background (bench.stars): the model picks its own."""
    if kind == "decorations":
        ends = {name: (shown[0], shown[-1])
                for name, shown in (("", outputs), ("target_", targets), ("codec_", coded))}
        return stars_found(coded, targets, "codec_") | stars_kept(ends, seed, frames)
    if kind != "palette":
        return {}
    own = lambda frames: round(0.5 * sum(palette_distance(f, f) for f in (frames[0], frames[-1])), 2)
    options, picked = pop_colours(seed)
    share = lambda frame: round(picked_share(frame, options, picked), 3)
    read = lambda frame: main_colours(frame, options, PICKS, range(OPTIONS))
    overlap = lambda a, b: len(a & b) / PICKS  # a float, so that streams are averaged
    picks = set(picked[:PICKS].tolist())
    choice = lambda frames, name: {
        f"{name}picked_share_first": share(frames[0]), f"{name}picked_share_last": share(frames[-1]),
        f"{name}picks_read_first": overlap(read(frames[0]), picks),
        f"{name}picks_read_last": overlap(read(frames[-1]), picks),
        f"{name}picks_kept": overlap(read(frames[-1]), read(frames[0]))}
    return {"palette_first_vs_target": round(palette_distance(outputs[0], targets[0]), 2),
            "target_palette_last_vs_first": round(palette_distance(targets[-1], targets[0]), 2),
            "codec_palette_last_vs_first": round(palette_distance(coded[-1], coded[0]), 2),
            "codec_palette_first_vs_target": round(palette_distance(coded[0], targets[0]), 2),
            "codec_palette_last_vs_target": round(palette_distance(coded[-1], targets[-1]), 2),
            "palette_own": own(outputs), "target_palette_own": own(targets),
            "codec_palette_own": own(coded),
            **choice(outputs, ""), **choice(targets, "target_"), **choice(coded, "codec_")}


def other_stream_palette(own: list[np.ndarray], other: list[np.ndarray]) -> dict:
    """What a lost choice scores: a stream's last frame against another stream's first (the
    streams' `ends`: first and last output, first and last target), whose picks and picture
    are its own. Beside palette_last_vs_first it tells a kept choice from a lost one."""
    _, last, _, target_last = own
    other_first, _, other_target_first, _ = other
    return {"palette_last_vs_other_first": round(palette_distance(last, other_first), 2),
            "target_palette_last_vs_other_first":
                round(palette_distance(target_last, other_target_first), 2)}


def frame_scores(out: np.ndarray, sample: Sample, prev: tuple[Sample, np.ndarray] | None) -> dict:
    """One output frame's numbers: PSNR against the target and, given the previous
    (sample, output), the warp error of output and of target under the exact flow, away from
    occlusions (nan where nothing matches, e.g. across a cut). Every rollout bench uses it."""
    scores = {"psnr_db": psnr(out, sample.target), "warp_error": math.nan,
              "target_warp_error": math.nan}
    if prev is not None and not prev[0].occluded.all():
        before, before_out = prev
        mask = ndimage.binary_dilation(before.occluded, iterations=OCCLUSION_MARGIN)
        scores["warp_error"] = warp_error(before_out, out, before.flow, mask)
        scores["target_warp_error"] = warp_error(before.target, sample.target, before.flow, mask)
    return scores


STRIP_COLUMNS = 5  # frames shown per style in a strip, spread over the rollout
STREAM_SEED_STRIDE = 1000  # stream j of style i has seed VAL_SEED_START + 100 + i + 1000 j


def strip_image(columns: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Rows input / target / output, one column per (frame index, input, target, output)."""
    rows = []
    for r, name in enumerate(("input", "target", "output")):
        rows.append(side_by_side([c[1 + r] for c in columns],
                                 [f"{name} {c[0]}" for c in columns]))
    gap = np.zeros((2, rows[0].shape[1], 3), np.uint8)
    return np.concatenate([rows[0], gap, rows[1], gap, rows[2]])


def evaluate_style(model: LSDModel, style: str, seed: int, frames: int,
                   sample: SampleConfig | None = None, strip: list | None = None,
                   ends: list | None = None, out_size: int | None = None) -> dict:
    """Metrics of one style's rollout, sampled as `sample` says (None: as the checkpoint
    says); with `strip` (a list), the frames for a picture of it are appended to it; with
    `ends` (a list), the first and last outputs, then the first and last targets. The world
    is drawn at the output size (`out_size`; None: the stream's default, the model's size
    for a model without an upsampler), so the targets are that sharp."""
    s = get_style(style)
    run = Stream(model, s.prompts[0], sample, seed=seed, out_size=out_size)
    side = out_size or (model.upsampler.out_size if model.upsampler else None)
    size = (side,) * 2 if side else tuple(model.config.frame_size)
    small = lambda a: (a if a.shape[:2] == run.size else  # a frame at the model's size
                       np.array(Image.fromarray(a).resize(run.size[::-1], Image.BILINEAR)))
    outputs, targets, inputs, psnrs, ssims, warp_out, warp_target, ceiling = [], [], [], [], [], [], [], []
    prev = None
    first_last = lambda frames: frames[:1] + frames[-1:]  # only the first and the last are kept
    shown = set(np.linspace(0, frames - 1, STRIP_COLUMNS).round().astype(int).tolist())
    for i, sample in enumerate(paired_stream(seed, style, size=size, frames=frames)):
        out = run.step(sample.input)
        if strip is not None and i in shown:
            strip.append((i, sample.input, sample.target, out))
        outputs.append(out)
        targets.append(sample.target)
        inputs.append(sample.input)
        scores = frame_scores(out, sample, prev)
        psnrs.append(scores["psnr_db"])
        if i % SSIM_EVERY == 0:
            ssims.append(ssim(out, sample.target))
            ceiling.append(psnr(through_codec(model, small(sample.target), small(sample.input)),
                                small(sample.target)))  # at the model's size
        if not math.isnan(scores["warp_error"]):
            warp_out.append(scores["warp_error"])
            warp_target.append(scores["target_warp_error"])
        prev = (sample, out)
        outputs, targets, inputs = first_last(outputs), first_last(targets), first_last(inputs)
    if ends is not None:
        ends.extend(outputs + targets)
    finite = [p for p in psnrs if math.isfinite(p)]
    coded = ([through_codec(model, t, x) for t, x in zip(targets, inputs)]
             if s.consistency in ("palette", "decorations") else [])
    return {"kind": s.kind, "psnr_db": round(float(np.mean(finite)), 2),
            "psnr_db_last_10pct": round(float(np.mean(finite[-max(1, len(finite) // 10):])), 2),
            "ssim": round(float(np.mean(ssims)), 3),
            "codec_psnr_db": round(float(np.mean([p for p in ceiling if math.isfinite(p)])), 2),
            "warp_error": round(float(np.nanmean(warp_out)), 2) if warp_out else None,
            "target_warp_error": round(float(np.nanmean(warp_target)), 2) if warp_target else None,
            "consistency": (consistency(s.consistency, outputs, targets)
                            | consistency_scale(s.consistency, outputs, targets, seed, coded, frames))}


def average(reports: list[dict]) -> dict:
    """Several streams' reports of one style, number by number (None where none had one)."""
    out = {}
    for key, value in reports[0].items():
        if isinstance(value, dict):
            out[key] = average([r[key] for r in reports])
        elif value is None or isinstance(value, float):
            values = [r[key] for r in reports if r[key] is not None]
            out[key] = round(float(np.mean(values)), 3) if values else None
        else:
            out[key] = value
    return out


def bench_quality(checkpoint: str, steps: int | None = 12, frames: int = 300,
                  styles: list[str] | None = None, context_t: float | None = None,
                  strips: str | None = None, streams: int = 1, settle: int | None = None,
                  choice_guidance: float | None = None,
                  choice_guidance_t_min: float | None = None, out_size: int | None = None) -> dict:
    """All styles (or `styles`) on held-out streams, `streams` per style (averaged); `strips`
    names a folder to write one PNG per style into (input / target / output rows over the
    first stream's rollout). The sampling settings given change the checkpoint's; None
    leaves its own."""
    if streams < 1:
        raise ValueError(f"streams must be >= 1, not {streams}")
    model = load(checkpoint)
    sample = model.sample.but(steps=steps, context_t=context_t, settle=settle,
                              choice_guidance=choice_guidance,
                              choice_guidance_t_min=choice_guidance_t_min)
    t0 = time.time()
    per_style = {}
    for i, name in enumerate(styles or style_names()):
        strip = [] if strips else None
        kept = [[] for _ in range(streams)]
        runs = [evaluate_style(model, name, VAL_SEED_START + 100 + i + STREAM_SEED_STRIDE * j,
                               frames, sample, strip if j == 0 else None, kept[j], out_size)
                for j in range(streams)]
        if streams > 1 and get_style(name).consistency == "palette":
            for j, run in enumerate(runs):  # each stream against the next one
                run["consistency"] |= other_stream_palette(kept[j], kept[(j + 1) % streams])
        per_style[name] = runs[0] if streams == 1 else {
            **average(runs), "streams": streams,
            "consistency_per_stream": [r["consistency"] for r in runs]}
        if strips:
            Path(strips).mkdir(parents=True, exist_ok=True)
            Image.fromarray(strip_image(strip)).save(Path(strips) / f"{name}.jpg", quality=90)
    frame_styles = [v for v in per_style.values() if v["kind"] == "frame"]
    mean = lambda key, rows: round(float(np.mean([r[key] for r in rows if r[key] is not None])), 2)
    rows = list(per_style.values())
    return {
        "checkpoint": str(checkpoint), "frames": frames, "streams": streams,
        "out_size": out_size or (model.upsampler.out_size if model.upsampler else model.config.frame_size[0]),
        **dataclasses.asdict(sample),
        "mean_psnr_db": mean("psnr_db", frame_styles) if frame_styles else None,
        "mean_psnr_db_all": mean("psnr_db", rows),
        "mean_ssim": mean("ssim", frame_styles) if frame_styles else None,
        "warp_error": mean("warp_error", rows), "target_warp_error": mean("target_warp_error", rows),
        # flicker over the frame styles, beside their PSNR (the top-level pair is every style's)
        "mean_warp_error": mean("warp_error", frame_styles) if frame_styles else None,
        "mean_target_warp_error": mean("target_warp_error", frame_styles) if frame_styles else None,
        "per_style": per_style, "seconds": round(time.time() - t0, 1),
        **streamed_with(), "machine": machine_name(threads=torch.get_num_threads()),
    }
