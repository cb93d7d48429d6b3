"""`lsd bench steps`: what distillation (and pruning) buys, in one run on the same held-out
streams: the teacher at 12 steps beside the student at 12, 6, 3, 2 and 1 steps (and a
pruned student at the shipped 3), each with its mean PSNR over the frame styles and its
whole-frame latency. Writes a table (steps.md) and a plot (steps.png)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data import VAL_SEED_START
from ..machine import machine_name
from ..models import load
from ..models.cost import count_flops
from ..stream.backends import streamed_with
from ..stream.engine import Stream
from ..styles import style_names
from .latency import held_out_frames, stepper
from .timing import time_ms
from .quality import evaluate_style

STUDENT_STEPS = (12, 6, 3, 2, 1)


def _row(label: str, model, steps: int, styles: list[str], frames: int, time_frames: int,
         pool: list[np.ndarray]) -> dict:
    per_style = {name: evaluate_style(model, name, VAL_SEED_START + 100 + i, frames,
                                            model.sample.but(steps=steps))["psnr_db"]
                 for i, name in enumerate(styles)}
    stream = Stream(model, "ink wash painting", model.sample.but(steps=steps))
    step = stepper(stream, pool)
    ms = time_ms(step, time_frames, warmup=max(10, time_frames // 10))
    return {"model": label, "steps": steps, "mean_psnr_db": round(float(np.mean(list(per_style.values()))), 2),
            "per_style": per_style, "ms_p50": round(float(np.percentile(ms, 50)), 2),
            "ms_p95": round(float(np.percentile(ms, 95)), 2),
            "gflops_per_frame": round(count_flops(step) / 1e9, 3)}


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for label, marker in (("teacher", "s"), ("student", "o"), ("pruned", "^")):
        mine = [r for r in rows if r["model"] == label]
        if not mine:
            continue
        ax.plot([r["ms_p50"] for r in mine], [r["mean_psnr_db"] for r in mine], marker=marker, label=label)
        for r in mine:
            ax.annotate(str(r["steps"]), (r["ms_p50"], r["mean_psnr_db"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.set_xlabel("ms per frame (p50, whole step)")
    ax.set_ylabel("mean PSNR over frame styles (dB)")
    ax.set_title("quality vs latency by denoising steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _table(report: dict) -> str:
    lines = [f"# Steps: teacher vs distilled student{' vs pruned' if report['pruned'] else ''}", "",
             f"`{report['command']}` on {report['machine']}; {report['frames']} frames per "
             f"style on held-out streams, frame styles only; ms timed over "
             f"{report['time_frames']} frames after warm-up.", "",
             "| model | steps | mean PSNR (dB) | ms/frame p50 | p95 | GFLOP/frame |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['model']} | {r['steps']} | {r['mean_psnr_db']} | {r['ms_p50']} | "
                     f"{r['ms_p95']} | {r['gflops_per_frame']} |")
    lines += ["", *(f"- {k}: {v}" for k, v in report["summary"].items()), ""]
    return "\n".join(lines)


def bench_steps(teacher: str, student: str, pruned: str | None = None, frames: int = 100,
                time_frames: int = 200, styles: list[str] | None = None,
                out_dir: str | None = "docs", command: str = "lsd bench steps") -> dict:
    styles = styles or style_names("frame")
    t0 = time.time()
    teacher_model = load(teacher)
    pool = held_out_frames(tuple(teacher_model.config.frame_size))  # rendered once, timed on by every row
    rows = [_row("teacher", teacher_model, 12, styles, frames, time_frames, pool)]
    student_model = load(student)
    rows += [_row("student", student_model, s, styles, frames, time_frames, pool) for s in STUDENT_STEPS]
    if pruned:
        rows.append(_row("pruned", load(pruned), 3, styles, frames, time_frames, pool))
    find = lambda model, steps: next(r for r in rows if r["model"] == model and r["steps"] == steps)
    base, fast = find("teacher", 12), find("student", 3)
    summary = {"student3_minus_teacher12_db": round(fast["mean_psnr_db"] - base["mean_psnr_db"], 2),
               "speedup_teacher12_over_student3": round(base["ms_p50"] / fast["ms_p50"], 2)}
    if pruned:
        p = find("pruned", 3)
        summary |= {"pruned3_minus_student3_db": round(p["mean_psnr_db"] - fast["mean_psnr_db"], 2),
                    "pruned_flops_cut": round(1 - p["gflops_per_frame"] / fast["gflops_per_frame"], 3),
                    "speedup_student3_over_pruned3": round(fast["ms_p50"] / p["ms_p50"], 2)}
    report = {"teacher": teacher, "student": student, "pruned": pruned, "frames": frames,
              "time_frames": time_frames, "styles": styles, "rows": rows, "summary": summary,
              "seconds": round(time.time() - t0, 1), "command": command,
              "threads": torch.get_num_threads(), **streamed_with(),
              "machine": machine_name(torch.get_num_threads())}
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "steps.md").write_text(_table(report), encoding="utf-8")
        _plot(rows, out / "steps.png")
        report["written"] = [str(out / "steps.md"), str(out / "steps.png")]
    return report
