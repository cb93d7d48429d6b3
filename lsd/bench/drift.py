"""`lsd bench drift`: does the picture decay over a long stream? One long held-out synthetic
stream (scene cuts included) goes through the streaming engine frame by frame; every frame
gets a CSV row as it is made (flushed, so `tail -f` watches a run of hours and a killed run
loses nothing), and the report compares the first window of frames with the last.

Constant memory: the run keeps running sums, a window of the last PSNRs, the previous frame
(for the warp error), the first one (for memory styles' consistency) and, for snapshots, as
many of the last frames as the stream's history holds, never the stream.

Resumable: every SNAPSHOT_EVERY frames (and at the end) a snapshot goes beside the CSV
(CSV.resume.json, pointing at CSV.resume-FRAME.npz): the frame count, the stream's sampling
generator, its last k (input, output) frames and frame 0's output and target. `--resume`
cuts the CSV back to the snapshot's frame, rebuilds the window sums from the CSV rows and
the stream's history from the saved frames, and goes on; with a larger `--frames` it
extends a finished run (a memory style's targets, which carry the stream's past, are first
replayed from frame 0 without the model). The report's numbers are always the CSV's
statistics. A resumed run matches an uninterrupted one only up to the codec's round trip:
the history is rebuilt from 8-bit frames, not the latents the stream had committed, so the
frames after the resume are close to, not bit-identical with, an uninterrupted run's.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from tqdm import tqdm

from ..data import VAL_SEED_START, Sample, paired_stream
from ..machine import machine_name
from ..models import load
from ..stream.engine import Stream
from ..styles import Style, get_style
from .drift_snapshot import SNAPSHOT_EVERY, cut_csv, load_snapshot, remove_snapshots, save_snapshot
from .quality import consistency, frame_scores

Step = Callable[[np.ndarray], np.ndarray]  # input frame -> output frame (Stream.step)

DRIFT_SEED = VAL_SEED_START + 300  # a held-out world no other bench rolls out
PSNR_CAP_DB = 100.0  # an exact frame (PSNR = inf) counts as this, so means stay finite
DEFAULT_WINDOW = 500  # frames per window; short runs use a tenth of the run
CONSISTENCY_EVERY = 10  # most frames between memory-consistency measurements (k-means is slow)
SCORES = ["psnr_db", "warp_error", "target_warp_error"]  # every style's CSV columns


class Resumable(Protocol):
    """What a resumable run needs of its stream (a `Stream` has all of it)."""

    g: torch.Generator  # the sampling noise: restored, so the noise goes on where it stopped
    cache: Any  # `cache.frames`: how many past frames the history holds (the pairs saved)

    def step(self, frame: np.ndarray) -> np.ndarray: ...

    def rebuild_history(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None: ...


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


def cell(value: float) -> str:
    """A number as the CSV holds it. The window sums add the value as written, so the report
    is exactly the CSV's statistics, and a resumed run (sums rebuilt from the CSV) agrees."""
    return f"{value:.4f}"


@dataclass
class Run:
    """A run after `done` frames: the window sums and cuts the report comes from, and what
    the frames after need (frame 0, the last frames made, the consistency stride)."""

    every: int  # frames between memory-consistency measurements
    means: dict[str, WindowMeans]  # per CSV column, in the CSV's order
    pairs: deque  # the last (input, output) frames, as many as the stream's history holds
    done: int = 0
    cuts: int = 0
    seconds: float = 0.0  # spent by earlier sessions, up to their last snapshot
    first: tuple[np.ndarray, np.ndarray] | None = None  # frame 0's (output, target)

    def add(self, cut: bool, cells: list[str]) -> None:
        for column, value in zip(self.means, cells, strict=True):
            self.means[column].add(float(value))
        self.cuts += int(cut)
        self.done += 1


def drift_run(step: Step | Resumable, style: str, frames: int, window: int, seed: int,
              size: tuple[int, int], csv_path: str | Path | None = None, progress: bool = True,
              resume: bool = False, run_id: dict | None = None) -> dict:
    """Roll `step` over `frames` frames of world `seed` in `style`; a CSV row per frame.
    `step` is a step function, or a stream (Resumable): then, with a CSV, snapshots go
    beside it, and `resume` goes on from the last one if the same run made it (the same
    style, seed and `run_id`, e.g. checkpoint and steps); anything else is refused."""
    s = get_style(style)
    stream = step if hasattr(step, "rebuild_history") else None
    step_fn = stream.step if stream is not None else step
    csv_path = Path(csv_path) if csv_path else None
    snapshots = stream is not None and csv_path is not None
    identity = {"style": style, "seed": seed, **(run_id or {})}
    history = max(1, stream.cache.frames) if stream is not None else 1
    if resume:
        if not snapshots:
            raise ValueError("only a stream's run with a CSV can be resumed")
        run = resume_run(stream, csv_path, identity, window, frames)
    else:
        run = Run(min(CONSISTENCY_EVERY, window),  # so that every window holds a measurement
                  {c: WindowMeans(window) for c in SCORES}, deque(maxlen=history))
        if snapshots:
            remove_snapshots(csv_path)  # an older run's snapshot must not outlive its CSV
    resumed_from = run.done if resume else None
    writer = out_file = None
    if csv_path:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        out_file = open(csv_path, "a" if resume else "w", newline="")
        writer = csv.writer(out_file)
    if resume and progress:
        print(f"resuming {csv_path} at frame {run.done}" + ("" if s.kind == "frame" else
              " (first replaying the memory style's targets up to it)"), file=sys.stderr)
    prev, samples = None, iter(())
    if run.done < frames:
        samples = samples_from(seed, s, size, max(0, run.done - 1), frames)
        if run.done:  # the last frame made: the next one's warp error is taken against it
            prev = (next(samples), run.pairs[-1][1])
    t0 = time.perf_counter()
    bar = tqdm(total=frames, initial=run.done, unit="frame", file=sys.stderr,
               disable=not progress, mininterval=1.0)
    try:
        for sample in samples:
            i = sample.t
            out = step_fn(sample.input)
            scores = frame_scores(out, sample, prev)
            scores["psnr_db"] = capped(scores["psnr_db"])
            if run.first is None:
                run.first = (out, sample.target)
            if s.consistency and i % run.every == 0:
                kept = consistency(s.consistency, [run.first[0], out],
                                   [run.first[1], sample.target])
            else:
                kept = {}
            if i == 0:  # the consistency keys depend on the style: known after frame 0
                run.means.update({c: WindowMeans(window) for c in kept})
                if writer:
                    writer.writerow(["frame", "cut"] + list(run.means))
            row = {**scores, **kept}
            cells = [cell(row.get(c, math.nan)) for c in run.means]
            run.add(sample.cut, cells)
            if writer:
                writer.writerow([i, int(sample.cut)] + cells)
                out_file.flush()
            run.pairs.append((sample.input, out))
            prev = (sample, out)
            if snapshots and (run.done % SNAPSHOT_EVERY == 0 or run.done == frames):
                save_snapshot(csv_path, out_file, run, stream, identity,
                              run.seconds + time.perf_counter() - t0)
            bar.update()
            if i % 50 == 0:
                bar.set_postfix(psnr_last_window=run.means["psnr_db"].summary(2)["last_window"])
    finally:
        bar.close()
        if out_file:
            out_file.close()
    seconds = run.seconds + time.perf_counter() - t0
    summary = {c: m.summary() for c, m in run.means.items()}
    return {"style": style, "kind": s.kind, "seed": seed, "frames": frames, "window": window,
            "cuts": run.cuts, **{c: summary.pop(c) for c in SCORES},
            "consistency": summary, "csv": str(csv_path) if csv_path else None,
            "resumed_from": resumed_from, "seconds": round(seconds, 1),
            "frames_per_s": round(frames / seconds, 2) if seconds > 0 else None}


def samples_from(seed: int, s: Style, size: tuple[int, int], start: int,
                 frames: int) -> Iterator[Sample]:
    """Frames `start` .. `frames` - 1 of the run's paired stream. A frame style's target is a
    function of its frame alone, so its stream starts at `start`; a memory style's renderer
    carries the stream's past (stars placed at frame 0, a running exposure), so its stream
    is replayed from frame 0, without the model, and the frames before `start` skipped
    (world and targets only: about 80 frames/s at 128 px on one core)."""
    if s.kind == "frame":
        return paired_stream(seed, s, size=size, start=start, frames=frames - start)
    return islice(paired_stream(seed, s, size=size, frames=frames), start, None)


# -- snapshots ------------------------------------------------------------------------------


def resume_run(stream: Resumable, csv_path: Path, identity: dict, window: int,
               frames: int) -> Run:
    """The run the snapshot beside `csv_path` recorded, with `stream` put back where it was:
    the CSV cut back to the snapshot's frame, the window sums rebuilt from its rows, the
    noise generator restored and the history rebuilt from the saved frames. Those are 8-bit
    frames, not the latents the stream committed, so the frames made after this match an
    uninterrupted run's only up to the codec's round trip. Refuses another run's snapshot."""
    meta, arrays = load_snapshot(csv_path)
    for key, value in identity.items():
        if meta["run"].get(key) != value:
            raise ValueError(f"{csv_path} is a run with {key} {meta['run'].get(key)!r}, not "
                             f"{value!r}: resume it with the same arguments or choose "
                             "another --csv")
    if meta["frame"] > frames:
        raise ValueError(f"{csv_path} already holds {meta['frame']} frames, more than "
                         f"--frames {frames}")
    header, rows = cut_csv(csv_path, meta["frame"])
    run = Run(meta["consistency_every"], {c: WindowMeans(window) for c in header[2:]},
              deque(maxlen=max(1, stream.cache.frames)), seconds=meta["seconds"],
              first=(arrays["first_output"], arrays["first_target"]))
    for row in rows:
        run.add(bool(int(row[1])), row[2:])
    run.pairs.extend(zip(arrays["inputs"], arrays["outputs"]))
    stream.rebuild_history(list(run.pairs))
    stream.g.set_state(torch.from_numpy(arrays["generator"]))
    return run


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
                seed: int = DRIFT_SEED, progress: bool = True, resume: bool = False,
                backend: str | None = None) -> dict:
    """One long rollout of `checkpoint`; with `plot` and no `csv_path` the CSV goes beside
    the plot (the plot is drawn from it). An existing CSV is never overwritten: `resume`
    continues its run (see the module docstring). `backend`: what runs the frames
    (lsd.stream.backends; same model and history: a run may switch backends when resumed)."""
    s = get_style(style)
    window = check_window(frames, window)
    if plot and not csv_path:
        csv_path = str(Path(plot).with_suffix(".csv"))
    if resume and not csv_path:
        raise ValueError("--resume needs the --csv (or --plot) of the run to continue")
    if csv_path and Path(csv_path).exists() and not resume:
        raise FileExistsError(f"{csv_path} exists: pass --resume to continue it or choose "
                              "another --csv")
    model = load(checkpoint)
    stream = Stream(model, s.prompts[0], model.sample.but(steps=steps), seed=seed, backend=backend)
    run_id = {"checkpoint": str(Path(checkpoint).resolve()), "steps": stream.steps}
    result = drift_run(stream, style, frames, window, seed, stream.size, csv_path, progress,
                       resume, run_id)
    if plot:
        plot_curves([(f"{style}, {frames} frames, seed {seed}", {"PSNR": Path(csv_path)})],
                    plot, window)
    return {"checkpoint": str(checkpoint), "steps": stream.steps, **stream.precision.to_dict(),
            **stream.backend.to_dict(), **result,
            "plot": plot, "machine": machine_name(threads=torch.get_num_threads())}
