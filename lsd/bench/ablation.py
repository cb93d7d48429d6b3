"""`lsd bench ablation`: what history augmentation buys. The augmented teacher and its twin
trained without augmentation (configs/tiny-noaug.yaml) roll out the same held-out streams
(same seeds, same sampling noise); their drift curves share one plot and the report gives
each style's first- and last-window PSNR for both."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import torch

from ..machine import machine_name
from ..models import load
from ..stream.backends import streamed_with
from ..stream.engine import Stream
from ..styles import get_style
from .drift import DRIFT_SEED, Step, check_window, drift_run, plot_curves

MakeStep = Callable[[str, int], Step]  # (style, seed) -> a fresh stream's step function
DEFAULT_STYLES = ("ink_wash", "pop_art")  # one frame style, one memory style
ABLATION_SEED = DRIFT_SEED + 100


def ablation_run(runs: dict[str, MakeStep], styles: list[str], frames: int, window: int,
                 size: tuple[int, int], csv_dir: Path, progress: bool = True) -> dict:
    """Every run on every style's stream; {style: {run: PSNR summary, ...}} plus, for two
    runs, how much more the second drops than the first."""
    per_style = {}
    for i, style in enumerate(styles):
        seed = ABLATION_SEED + i
        row = {}
        for label, make_step in runs.items():
            r = drift_run(make_step(style, seed), style, frames, window, seed, size,
                          csv_dir / f"{style}-{label}.csv", progress)
            row[label] = {**r["psnr_db"], "warp_error": r["warp_error"]["mean"]}
        drops = [v["drop"] for v in row.values()]
        if len(drops) == 2:
            row["extra_drop_db"] = round(drops[1] - drops[0], 3)
        per_style[style] = {"seed": seed, **row}
    return per_style


def bench_ablation(checkpoint: str, twin: str, frames: int, styles: list[str] | None = None,
                   steps: int | None = None, window: int | None = None, plot: str | None = None,
                   csv_dir: str | None = None, progress: bool = True) -> dict:
    """The per-frame CSVs (STYLE-RUN.csv) go to `csv_dir`; by default, with `plot`, to a
    folder beside it (PLOTNAME-csv), else to a temporary folder."""
    styles = list(styles or DEFAULT_STYLES)
    for name in styles:
        get_style(name)  # a typo fails before any rollout
    window = check_window(frames, window)
    models = {"augmented": load(checkpoint), "no_augmentation": load(twin)}
    sizes = {tuple(m.config.frame_size) for m in models.values()}
    if len(sizes) > 1:
        raise ValueError(f"{checkpoint} and {twin} have different frame sizes: {sorted(sizes)}")
    used_steps = {}

    def maker(label: str) -> MakeStep:
        def make_step(style: str, seed: int) -> Step:
            model = models[label]
            stream = Stream(model, get_style(style).prompts[0], model.sample.but(steps=steps), seed=seed)
            used_steps[label] = stream.steps
            return stream.step
        return make_step

    with tempfile.TemporaryDirectory() as tmp:
        kept = csv_dir or (Path(plot).parent / f"{Path(plot).stem}-csv" if plot else None)
        csv_dir = Path(kept or tmp)
        per_style = ablation_run({k: maker(k) for k in models}, styles, frames, window,
                                 sizes.pop(), csv_dir, progress)
        if plot:
            plot_curves([(f"{style}, seed {per_style[style]['seed']}",
                          {label: csv_dir / f"{style}-{label}.csv" for label in models})
                         for style in styles], plot, window)
    return {"checkpoint": str(checkpoint), "twin": str(twin), "steps": used_steps,
            "frames": frames, "window": window, "per_style": per_style, "plot": plot,
            "csv_dir": str(kept) if kept else None,
            **streamed_with(), "machine": machine_name(threads=torch.get_num_threads())}
