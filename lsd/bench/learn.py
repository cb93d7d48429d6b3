"""`lsd bench learn`: how well a model learnt a look with `lsd learn`, on held-out pairs (the
same DIR/<clip>/input.mp4 + target.mp4 layout, clips it was not trained on).

Each clip streams once with the new look's name as the prompt, from an empty history, at
the size a stream shows it (lsd.bench.real): PSNR against the target, and the warp error
of the output and of the target along the input's estimated flow (a target made frame by
frame may flicker more than the output). With `seeds` N it streams from N first noises and
reports their mean: on footage unlike the lesson's, a look's colours can hang on the noise
the stream started from (journal). The old frame looks are streamed on the same
clips by the model before the lesson and after it, each scored against its reference
renderer: what the lesson cost them. A look the model before the lesson already had (an
earlier lesson taught it) is streamed by that model too: `before_psnr_db`. `redrawn_db` is
the targets redrawn by the model's codec and upsampler, which a lesson does not teach:
about the most the look can score without an output head of its own
(lsd.models.look_head), which draws past it.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from ..data.pairs import check_pairs, misaligned
from ..io import read_frames
from ..machine import machine_name
from ..models import load, normalize_prompt
from ..stream.backends import streamed_with
from ..stream.engine import Stream
from ..styles import get_style, style_names
from ..train.learn import redrawn_db
from .real import _cv2, clip_flows, real_run, shown_size


def _weighted(runs: list[dict], key: str) -> float | None:
    """The frame-weighted mean of `key` over the runs that have it."""
    rows = [(r[key], r["frames"]) for r in runs if r[key] is not None]
    if not rows:
        return None
    values, weights = zip(*rows)
    return round(float(np.average(values, weights=weights)), 2)


def bench_learn(checkpoint: str, pairs: str, name: str, before: str | None = None,
                frames: int = 100, old_looks: bool = True, steps: int | None = None,
                progress: bool = True, seeds: int = 1) -> dict:
    """`before`: the model the lesson started from (default: the one its checkpoint names);
    `frames`: at most this many frames of each clip; `seeds`: the new look streams each
    clip from this many first noises (the old looks from the first alone)."""
    if seeds < 1:
        raise ValueError("--seeds must be at least 1")
    clips = check_pairs(pairs)
    cv2 = _cv2()  # missing OpenCV fails before the models load
    model = load(checkpoint)
    if normalize_prompt(name) not in model.config.text.learned:
        raise ValueError(f"{checkpoint} has learnt no look named {name!r} (learnt: "
                         f"{', '.join(model.config.text.learned) or 'none'})")
    before = before or (model.checkpoint_config.get("learn") or {}).get("source")
    read = lambda path: list(read_frames(path, max_frames=frames))
    # one stream a model (a graph backend builds once), set to each prompt from an empty
    # history and its first noise, so a score does not hang on what was played before it
    streams = {"after": Stream(model, name, model.sample.but(steps=steps))}
    knew = False  # the model before the lesson had the look (an earlier lesson taught it)
    if old_looks and before:
        earlier = load(before)
        streams["before"] = Stream(earlier, name, earlier.sample.but(steps=steps))
        knew = normalize_prompt(name) in earlier.config.text.learned

    def playing(when: str, prompt: str, seed: int = 0):
        stream = streams[when]
        stream.set_prompt(prompt, 0)
        stream.reset()
        stream.g.manual_seed(stream.seed + seed)
        return stream.step

    runs, old = [], {look: {"before": [], "after": []} for look in style_names("frame")}
    for clip in clips:
        inputs, targets = read(clip["input"]), read(clip["target"])
        size = shown_size(model, inputs[0].shape[:2])
        shown = [np.stack([cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA) for f in v])
                 for v in (inputs, targets)]
        flows = clip_flows(shown[0])  # once: every run below streams these frames

        def seeded(when: str) -> list[dict]:  # the look, streamed from each first noise
            return [real_run(playing(when, name, seed), inputs, None, size,
                             progress and when == "after", targets, flows) for seed in range(seeds)]
        by_seed = seeded("after")
        run = {**by_seed[0], **{k: round(float(np.mean([r[k] for r in by_seed])), 2)
                                for k in ("psnr_db", "warp_error")},
               "psnr_db_by_seed": [r["psnr_db"] for r in by_seed]}
        run["before_psnr_db"] = (round(float(np.mean([r["psnr_db"] for r in seeded("before")])), 2)
                                 if knew else None)  # what the lesson cost the look
        warning = misaligned(clip, *shown)  # a low score would be the pair's, not the look's
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        runs.append({"clip": clip["name"], **run, "redrawn_db": redrawn_db(model, *shown),
                     "warning": warning})
        for look in old if len(streams) == 2 else ():
            for when in ("before", "after"):
                r = real_run(playing(when, get_style(look).prompts[0]), inputs, look, size,
                             False, flows=flows)
                old[look][when].append(r)
    per_look = {look: {when: _weighted(rs, "psnr_db") for when, rs in v.items()}
                for look, v in old.items() if v["after"]}
    for v in per_look.values():
        v["change_db"] = round(v["after"] - v["before"], 2)
    return {"checkpoint": str(checkpoint), "pairs": str(pairs), "name": name,
            "clips": len(runs), "frames": sum(r["frames"] for r in runs), "seeds": seeds,
            "psnr_db": _weighted(runs, "psnr_db"),
            "before_psnr_db": _weighted(runs, "before_psnr_db"),
            "redrawn_db": _weighted(runs, "redrawn_db"),
            "warp_error": _weighted(runs, "warp_error"),
            "target_warp_error": _weighted(runs, "reference_warp_error"),
            "per_clip": [{k: r[k] for k in ("clip", "frames", "frame_size", "psnr_db",
                                            "psnr_db_by_seed", "before_psnr_db", "redrawn_db",
                                            "warp_error", "reference_warp_error", "warning")}
                          for r in runs],
            "before": before, "old_looks": per_look,
            "old_looks_worst_change_db": min((v["change_db"] for v in per_look.values()), default=None),
            **streamed_with(), "machine": machine_name(threads=torch.get_num_threads())}
