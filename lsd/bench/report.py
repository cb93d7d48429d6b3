"""`lsd bench report`: run the evidence benches (quality, drift, ablation, history
corruption, real footage, latency) and write docs/results.md with their tables and plots,
the machine and the exact command, so every number in it comes from one command."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import read_config
from ..machine import machine_name
from ..models import load
from ..stream.runner import default_checkpoint
from ..stream.sources import DeviceUnavailable
from .ablation import DEFAULT_STYLES as ABLATION_STYLES
from .ablation import bench_ablation
from .corruption import bench_corruption
from .drift import bench_drift
from .latency import bench_latency
from .quality import bench_quality
from .real import bench_real


@dataclass(frozen=True)
class Plan:
    """How much each bench runs (frames); latency_frames = 0 skips latency."""

    name: str
    quality_frames: int
    quality_styles: tuple[str, ...] | None  # None: all styles
    drift_frames: int
    drift_window: int
    drift_styles: tuple[str, ...]
    ablation_frames: int
    corruption_frames: int
    corruption_at: tuple[int, ...]
    real_frames: int
    latency_frames: int


QUICK = Plan("quick", 100, ("ink_wash", "thermal", "pop_art", "long_exposure"), 1000, 100,
             ("ink_wash", "pop_art"), 600, 150, (50,), 100, 200)
FULL = Plan("full", 300, None, 10000, 500, ("ink_wash", "pop_art"), 3000, 300, (100, 200),
            250, 500)
STYLE = "ink_wash"  # the frame style corruption and real footage are measured in


def _num(v) -> str:
    return "n/a" if v is None else str(v)


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(_num(v) for v in row) + " |" for row in rows), ""]


def _without_paths(result: dict) -> dict:
    """CSV paths point into the report's temporary folder: leave them out."""
    return {k: v for k, v in result.items() if k not in ("csv", "csv_dir")}


def run_benches(checkpoint: str, twin: str | None, figures: Path, plan: Plan,
                progress: bool, teacher: str | None = None) -> dict:
    steps = load(checkpoint).sample.steps  # the checkpoint's own sampling setting
    results: dict = {"steps": steps}
    results["quality"] = bench_quality(checkpoint, steps, plan.quality_frames,
                                       list(plan.quality_styles or []) or None)
    with tempfile.TemporaryDirectory() as tmp:
        results["drift"] = {
            style: _without_paths(bench_drift(
                checkpoint, plan.drift_frames, style, steps, f"{tmp}/drift-{style}.csv",
                str(figures / f"drift-{style}.png"), plan.drift_window, progress=progress))
            for style in plan.drift_styles}
        if twin:
            # The twin is a teacher (configs/tiny-noaug.yaml): it is set against the augmented
            # teacher, each sampled with its own steps, when one is given.
            results["ablation"] = _without_paths(bench_ablation(
                teacher or checkpoint, twin, plan.ablation_frames, list(ABLATION_STYLES),
                None if teacher else steps,
                min(plan.drift_window, plan.ablation_frames // 2),
                str(figures / "ablation.png"), tmp, progress))
        else:
            results["ablation"] = {"skipped": "no --twin given (the no-augmentation twin is "
                                   "trained with configs/tiny-noaug.yaml)"}
    results["corruption"] = bench_corruption(checkpoint, plan.corruption_frames,
                                             list(plan.corruption_at), STYLE, steps,
                                             progress=progress)
    try:
        results["real"] = bench_real(checkpoint, None, STYLE, plan.real_frames, steps, progress)
    except DeviceUnavailable as e:  # no OpenCV here
        results["real"] = {"skipped": str(e)}
    results["latency"] = (bench_latency(checkpoint, steps, plan.latency_frames)
                          if plan.latency_frames else {"skipped": "latency_frames = 0"})
    return results


def render_markdown(r: dict, out: Path) -> str:
    """results.md from the report's JSON (figure links relative to `out`)."""
    rel = lambda p: Path(p).relative_to(out.parent).as_posix()
    q = r["quality"]
    lines = [
        "# Results", "",
        f"Written by `{r['command']}` on {r['machine']}, {r['date']}, from checkpoint "
        f"`{r['checkpoint']}` sampled in {r['steps']} steps ({r['plan']['name']} plan, "
        f"{r['seconds']} s). Every number below comes from that command; run it again to "
        "refresh them.", "",
        "## Quality on held-out synthetic streams", "",
        f"`lsd bench quality`: {q['frames']} frames per style; PSNR/SSIM against the style's "
        "target, warp error (0-255) under the exact flow away from occlusions.", ""]
    lines += _table(["style", "kind", "PSNR dB", "PSNR last 10%", "SSIM", "warp error",
                     "target warp error", "memory"],
                    [[name, v["kind"], v["psnr_db"], v["psnr_db_last_10pct"], v["ssim"],
                      v["warp_error"], v["target_warp_error"],
                      ", ".join(f"{k} {x}" for k, x in v["consistency"].items()) or "-"]
                     for name, v in q["per_style"].items()])
    lines += [f"Mean over frame styles: PSNR {_num(q['mean_psnr_db'])} dB, SSIM "
              f"{_num(q['mean_ssim'])}, warp error {_num(q['mean_warp_error'])} (targets: "
              f"{_num(q['mean_target_warp_error'])}); over all styles, warp error "
              f"{q['warp_error']} (targets: {q['target_warp_error']}).", "", "## Drift over a long stream", "",
              "`lsd bench drift`: one long held-out stream per style (scene cuts kept); mean "
              "of the first and of the last window of frames.", ""]
    lines += _table(["style", "frames", "window", "cuts", "PSNR first", "PSNR last", "drop dB",
                     "warp error first", "warp error last"],
                    [[s, d["frames"], d["window"], d["cuts"], d["psnr_db"]["first_window"],
                      d["psnr_db"]["last_window"], d["psnr_db"]["drop"],
                      d["warp_error"]["first_window"], d["warp_error"]["last_window"]]
                     for s, d in r["drift"].items()])
    for s, d in r["drift"].items():
        lines += [f"![drift, {s}]({rel(d['plot'])})", ""]
        for key, v in d["consistency"].items():
            lines += [f"{s} memory, {key}: first window {v['first_window']}, last window "
                      f"{v['last_window']}.", ""]
    lines += ["## History augmentation ablation", ""]
    a = r["ablation"]
    if "skipped" in a:
        lines += [f"Skipped: {a['skipped']}.", ""]
    else:
        lines += [f"`lsd bench ablation`: `{a['checkpoint']}` (augmented, "
                  f"{a['steps']['augmented']} steps) against `{a['twin']}` (no augmentation, "
                  f"{a['steps']['no_augmentation']} steps), same streams and noise, "
                  f"{a['frames']} frames, window {a['window']}.", ""]
        lines += _table(["style", "run", "PSNR first", "PSNR last", "drop dB", "warp error"],
                        [[s, run, v[run]["first_window"], v[run]["last_window"],
                          v[run]["drop"], v[run]["warp_error"]]
                         for s, v in a["per_style"].items()
                         for run in ("augmented", "no_augmentation")])
        lines += [f"![ablation]({rel(a['plot'])})", ""]
    c = r["corruption"]
    lines += ["## Recovery from a damaged history", "",
              f"`lsd bench corruption`: {c['style']}, {c['frames']} frames, history damaged "
              f"before frame(s) {', '.join(map(str, c['at']))}: garbage = {c['garbage_share']:.0%} "
              f"of pixels random colours, noise = Gaussian sigma {c['noise_sigma']} (0-255), "
              f"wrong prompt = one frame made with \"{c['wrong_prompt']}\"; rebuild_only "
              "rebuilds the history undamaged (the control). Recovery: frames until the "
              f"output is within {c['tolerance_db']} dB of the undamaged run (PSNR "
              f"{c['undamaged_psnr_db']} dB) and stays there ({c['hold_frames']} frames at "
              "least).", ""]
    lines += _table(["damage", "at frame", "recovered", "frames to recover", "worst gap dB",
                     "gap at end dB"],
                    [[kind, x["frame"], "yes" if x["recovered"] else
                      f"no (within {x['watched_frames']} frames)", x["recovery_frames"],
                      x["worst_gap_db"], x["end_gap_db"]]
                     for kind in c["per_kind"] for x in c["per_kind"][kind]])
    e = r["real"]
    lines += ["## Real footage", ""]
    if "skipped" in e:
        lines += [f"Skipped: {e['skipped']}.", ""]
    else:
        lines += [f"`lsd bench real`: `{Path(e['video']).name}`, {e['frames']} frames at "
                  f"{e['frame_size'][1]}x{e['frame_size'][0]}, {e['style']}; the target is "
                  f"the style's reference renderer; flow: {e['flow']} (share of pixels "
                  f"skipped as unreliable: {e['flow_unreliable_share']}).", ""]
        lines += _table(["PSNR vs reference dB", "warp error output", "warp error reference",
                         "warp error input"],
                        [[e["psnr_db"], e["warp_error"], e["reference_warp_error"],
                          e["input_warp_error"]]])
    lat = r["latency"]
    lines += ["## Latency", ""]
    if "skipped" in lat:
        lines += [f"Skipped: {lat['skipped']}.", ""]
    else:
        lines += [f"`lsd bench latency`: {lat['frames']} frames after {lat['warmup']} warm-up, "
                  f"{lat['includes']}.", ""]
        lines += _table(["ms p50", "ms p95", "ms p99", "fps", "GFLOP per frame",
                         "share of matmul peak"],
                        [[lat["ms_p50"], lat["ms_p95"], lat["ms_p99"], lat["fps"],
                          lat["gflops_per_frame"], lat["share_of_matmul_peak"]]])
    return "\n".join(lines)


def bench_report(checkpoint: str | None = None, twin: str | None = None,
                 out: str = "docs/results.md", quick: bool = False, plan: Plan | None = None,
                 progress: bool = True, teacher: str | None = None) -> dict:
    """Run the benches (QUICK or FULL, or a given `plan`) and write `out`, its figures in a
    folder beside it (OUTNAME-figures/). The ablation sets `twin` against `teacher` (default:
    `checkpoint`)."""
    command = " ".join(["lsd bench report"] + ([f"--checkpoint {checkpoint}"] if checkpoint else [])
                       + ([f"--teacher {teacher}"] if teacher else [])
                       + ([f"--twin {twin}"] if twin else []) + [f"--out {out}"]
                       + (["--quick"] if quick else []))
    plan = plan or (QUICK if quick else FULL)
    if plan not in (QUICK, FULL):
        command += f"  (custom plan: {dataclasses.asdict(plan)})"
    ckpt = str(checkpoint or default_checkpoint())
    for given in [ckpt] + [x for x in (teacher, twin) if x]:
        read_config(given)  # a wrong path fails now, not after minutes of benches
    path = Path(out)
    figures = path.parent / f"{path.stem}-figures"
    t0 = time.time()
    results = run_benches(ckpt, twin, figures, plan, progress, teacher)
    report = {"out": str(path), "command": command, "checkpoint": ckpt, "teacher": teacher, "twin": twin,
              "machine": machine_name(threads=torch.get_num_threads()),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "plan": dataclasses.asdict(plan), "seconds": round(time.time() - t0, 1), **results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(report, path) + "\n")
    return report
