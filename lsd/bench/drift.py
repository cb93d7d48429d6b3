"""`lsd bench drift`: does the picture decay over a long stream? One long held-out synthetic
stream (scene cuts included) goes through the streaming engine frame by frame; every frame
gets a CSV row as it is made (flushed, so `tail -f` watches a run of hours and a killed run
loses nothing), and the report compares the first window of frames with the last.

Constant memory: the run keeps running sums, a window of the last PSNRs, the previous frame
(for the warp error) and the first one (for memory styles' consistency), never the stream.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..data import VAL_SEED_START, paired_stream
from ..models import load
from ..stream.engine import Stream
from ..styles import get_style
from .machine import machine_name
from .quality import consistency, frame_scores

Step = Callable[[np.ndarray], np.ndarray]  # input frame -> output frame (Stream.step)

DRIFT_SEED = VAL_SEED_START + 300  # a held-out world no other bench rolls out
PSNR_CAP_DB = 100.0  # an exact frame (PSNR = inf) counts as this, so means stay finite
DEFAULT_WINDOW = 500  # frames per window; short runs use a tenth of the run
CONSISTENCY_EVERY = 10  # most frames between memory-consistency measurements (k-means is slow)


def capped(db: float) -> float:
    return min(db, PSNR_CAP_DB)


def check_window(frames: int, window: int | None) -> int:
    """The window (default: DEFAULT_WINDOW, or a tenth of a short run); the run must hold
    two of them, or "first" and "last" would share frames."""
    if frames < 2:
        raise ValueError(f"--frames must be at least 2, got {frames}")
    window = window or min(DEFAULT_WINDOW, max(1, frames // 10))
    if window < 1 or 2 * window > frames:
        raise ValueError(f"--window {window} needs --frames >= {2 * window} (two windows), "
                         f"got {frames}")
    return window


class WindowMeans:
    """Means of a per-frame series over its first `window` frames, its last `window` frames
    and all of it, in constant memory. nan (a frame the measure skips) counts as a frame
    but not in the means."""

    def __init__(self, window: int):
        self.window, self.frames = window, 0
        self.first, self.all = [0.0, 0], [0.0, 0]  # sum, count
        self.last: deque[float] = deque(maxlen=window)

    def add(self, value: float) -> None:
        if not math.isnan(value):
            for acc in ([self.first] if self.frames < self.window else []) + [self.all]:
                acc[0] += value
                acc[1] += 1
        self.last.append(value)
        self.frames += 1

    def summary(self, digits: int = 3) -> dict:
        """first_window, last_window, mean, and drop = first - last (None where empty)."""
        mean = lambda acc: acc[0] / acc[1] if acc[1] else None
        kept = [v for v in self.last if not math.isnan(v)]
        first, last = mean(self.first), (sum(kept) / len(kept) if kept else None)
        r = lambda v: None if v is None else round(v, digits)
        return {"first_window": r(first), "last_window": r(last), "mean": r(mean(self.all)),
                "drop": r(first - last) if first is not None and last is not None else None}


def drift_run(step: Step, style: str, frames: int, window: int, seed: int, size: tuple[int, int],
              csv_path: str | Path | None = None, progress: bool = True) -> dict:
    """Roll `step` over `frames` frames of world `seed` in `style`; a CSV row per frame."""
    s = get_style(style)
    columns = ["psnr_db", "warp_error", "target_warp_error"]
    means = {c: WindowMeans(window) for c in columns}
    writer = out_file = None
    if csv_path:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        out_file = open(csv_path, "w", newline="")
        writer = csv.writer(out_file)
    prev = first = None
    cuts = 0
    every = min(CONSISTENCY_EVERY, window)  # so that every window holds a measurement
    t0 = time.perf_counter()
    bar = tqdm(total=frames, unit="frame", file=sys.stderr, disable=not progress, mininterval=1.0)
    try:
        for i, sample in enumerate(paired_stream(seed, s, size=size, frames=frames)):
            out = step(sample.input)
            scores = frame_scores(out, sample, prev)
            scores["psnr_db"] = capped(scores["psnr_db"])
            if first is None:
                first = (out, sample.target)
            if s.consistency and i % every == 0:
                kept = consistency(s.consistency, [first[0], out], [first[1], sample.target])
            else:
                kept = {}
            if i == 0:  # the consistency keys depend on the style: known after frame 0
                columns += list(kept)
                means.update({c: WindowMeans(window) for c in kept})
                if writer:
                    writer.writerow(["frame", "cut"] + columns)
            row = {**scores, **kept}
            for c in columns:
                means[c].add(float(row.get(c, math.nan)))
            if writer:
                writer.writerow([i, int(sample.cut)] + [f"{row.get(c, math.nan):.4f}" for c in columns])
                out_file.flush()
            cuts += sample.cut
            prev = (sample, out)
            bar.update()
            if i % 50 == 0:
                bar.set_postfix(psnr_last_window=means["psnr_db"].summary(2)["last_window"])
    finally:
        bar.close()
        if out_file:
            out_file.close()
    seconds = time.perf_counter() - t0
    summary = {c: means[c].summary() for c in columns}
    return {"style": style, "kind": s.kind, "seed": seed, "frames": frames, "window": window,
            "cuts": cuts, **{c: summary.pop(c) for c in ("psnr_db", "warp_error", "target_warp_error")},
            "consistency": summary, "csv": str(csv_path) if csv_path else None,
            "seconds": round(seconds, 1), "frames_per_s": round(frames / seconds, 2)}


def read_column(csv_path: str | Path, column: str) -> np.ndarray:
    with open(csv_path, newline="") as f:
        return np.array([float(row[column]) for row in csv.DictReader(f)])


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each run of `window` values: point j covers values j .. j + window - 1."""
    window = max(1, min(window, len(values)))
    sums = np.cumsum(np.concatenate([[0.0], values]))
    return (sums[window:] - sums[:-window]) / window


def plot_curves(panels: list[tuple[str, dict[str, Path]]], out: str | Path, window: int) -> Path:
    """One panel per (title, {label: csv}): each run's per-frame PSNR (faint) and its moving
    average over `window` frames, with the scene cuts of the first run as dotted lines.
    Read back from the CSVs, so the rollout never held the curve in memory."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    fig = Figure(figsize=(9, 3.2 * len(panels)), layout="constrained")
    for ax, (title, runs) in zip(fig.subplots(len(panels), 1, squeeze=False)[:, 0], panels):
        for k, (label, path) in enumerate(runs.items()):
            y = read_column(path, "psnr_db")
            colour = f"C{k}"
            ax.plot(np.arange(len(y)), y, color=colour, alpha=0.2, linewidth=0.6)
            smooth = moving_average(y, window)
            ax.plot(np.arange(len(smooth)) + len(y) - len(smooth), smooth, color=colour,
                    linewidth=1.8, label=f"{label} ({window}-frame mean)")
        for cut in np.flatnonzero(read_column(next(iter(runs.values())), "cut")):
            ax.axvline(cut, color="grey", linestyle=":", linewidth=0.8)
        ax.set(title=title, xlabel="frame", ylabel="PSNR vs target (dB)")
        ax.legend(loc="lower left", fontsize="small")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return Path(out)


def bench_drift(checkpoint: str, frames: int, style: str = "ink_wash", steps: int | None = None,
                csv_path: str | None = None, plot: str | None = None, window: int | None = None,
                seed: int = DRIFT_SEED, progress: bool = True) -> dict:
    """One long rollout of `checkpoint`; with `plot` and no `csv_path` the CSV goes beside
    the plot (the plot is drawn from it)."""
    s = get_style(style)
    window = check_window(frames, window)
    if plot and not csv_path:
        csv_path = str(Path(plot).with_suffix(".csv"))
    stream = Stream(load(checkpoint), s.prompts[0], steps, seed=seed)
    result = drift_run(stream.step, style, frames, window, seed, stream.size, csv_path, progress)
    if plot:
        plot_curves([(f"{style}, {frames} frames, seed {seed}", {"PSNR": Path(csv_path)})],
                    plot, window)
    return {"checkpoint": str(checkpoint), "steps": stream.steps, **result,
            "plot": plot, "machine": machine_name(threads=torch.get_num_threads())}
