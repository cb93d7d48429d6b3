"""The `lsd` command line. Each subcommand parses its arguments and calls one function
that does the work; `--json` prints one JSON object as the last thing on stdout."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from .bench.cli import add_bench
from .cli_args import SHIPPED_DEFAULT, add_backend, add_dtype, add_out_size, emit, style_count
from .learn_cli import add_learn


def cmd_styles(args: argparse.Namespace) -> None:
    from .styles import STYLES

    rows = [s.to_dict() for s in STYLES.values()]
    if args.checkpoint:  # and the looks `lsd learn` taught it
        from .models import load
        from .stream.understood import looks_of

        rows += [{"name": name, "kind": "taught", "prompts": list(prompts), "not_learnt": None}
                 for name, prompts in looks_of(load(args.checkpoint)).taught.items()]
    if args.json:
        return print(json.dumps({"styles": rows}, ensure_ascii=False))
    for s in rows:
        note = "   (not learnt: " + s["not_learnt"].split(":")[0] + ")" if s["not_learnt"] else ""
        print(f"{s['name']:16s} {s['kind']:7s} {' | '.join(s['prompts'])}{note}")


def cmd_data_sample(args: argparse.Namespace) -> None:
    from .data.export import write_sample
    from .styles import get_style

    get_style(args.style)  # fail fast on a typo, before any work
    emit(write_sample(args.out, args.style, args.seed, args.frames, args.size), args.json)


def cmd_run(args: argparse.Namespace) -> None:
    from .stream.runner import run_stream

    result = run_stream(args.source, args.prompt or "", args.prompt_schedule, args.frames,
                        args.steps, args.out, args.side_by_side, args.checkpoint, args.loop,
                        args.window, args.virtual_camera, args.blend_frames,
                        progress=not args.json, device=args.device, backend=args.backend,
                        out_size=args.out_size)
    emit(result, args.json)
    if result["stopped_by"]:  # the shell's code for a stop by that signal: 130, 143
        kept = f"; {args.out} holds them" if args.out else ""
        print(f"lsd: stopped by {result['stopped_by']} after {result['frames']} frames{kept}",
              file=sys.stderr)
        raise SystemExit(128 + signal.Signals[result["stopped_by"]].value)


def cmd_train(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .train.config import TrainConfig
    from .train.trainer import train

    cfg = TrainConfig.load(args.config)
    out = args.out or str(Path("runs") / Path(args.config).stem)
    emit(train(cfg, out, resume=args.resume, progress=not args.no_progress, device=args.device,
               codec_from=args.codec_from, init_from=args.init_from), args.json)


def cmd_distill(args: argparse.Namespace) -> None:
    from .train.distill import distill

    emit(distill(args.teacher, args.out, args.config, args.resume, not args.no_progress,
                 args.device), args.json)


def cmd_prune(args: argparse.Namespace) -> None:
    from .train.prune import prune

    emit(prune(args.checkpoint, args.out, args.flops_cut, args.align, args.finetune_steps,
               args.config, args.resume, not args.no_progress, args.device), args.json)


def cmd_decoder(args: argparse.Namespace) -> None:
    from .train.decoder import train_decoder

    emit(train_decoder(args.checkpoint, args.out, args.streams, args.frames, args.steps,
                       lr=args.lr, seed=args.seed, progress=not args.no_progress,
                       detail_weight=args.detail_weight, streams_of=dict(args.streams_of or [])),
         args.json)


def cmd_upsampler(args: argparse.Namespace) -> None:
    from .train.upsampler import train_upsampler

    emit(train_upsampler(args.checkpoint, args.out, args.size, args.channels, streams=args.streams,
                         steps=args.steps, seed=args.seed, progress=not args.no_progress,
                         look_size=args.look_size, look_memory=args.look_memory), args.json)


def cmd_prompts(args: argparse.Namespace) -> None:
    from .train.prompts import teach_prompts

    emit(teach_prompts(args.checkpoint, args.out, args.steps, seed=args.seed, avoid=args.avoid,
                       progress=not args.no_progress), args.json)


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    emit(run_demo(args.out, args.seconds, checkpoint=args.checkpoint, backend=args.backend,
                  strip=args.strip, out_size=args.out_size), args.json)


def cmd_serve(args: argparse.Namespace) -> None:
    from .serve import serve

    try:
        serve(args.checkpoint, args.host, args.port, args.max_sessions, args.token, args.steps,
              args.certfile, args.keyfile, backend=args.backend, threads=args.threads,
              allow_origins=tuple(args.allow_origin or ()), out_size=args.out_size)
    except FileNotFoundError:
        raise  # no checkpoint: main() says so
    except OSError as e:  # port taken, address not on this machine, unreadable certificate
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}") from e


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
    demo.add_argument("--checkpoint", help=SHIPPED_DEFAULT)
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
    run.add_argument("--checkpoint", help=SHIPPED_DEFAULT)
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
    srv.add_argument("--checkpoint", help=SHIPPED_DEFAULT)
    srv.add_argument("--max-sessions", type=int, default=2,
                     help="browsers served at once; the next one is told the server is full")
    srv.add_argument("--token", help="required on every request (the page: open /?token=T)")
    srv.add_argument("--allow-origin", action="append", metavar="ORIGIN",
                     help="let pages from this origin (e.g. https://example.com; * for any) "
                     "call the server; by default only its own page may (repeatable)")
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

    gd = sub.add_parser("decoder", help="give a model a decoder that also sees the input frame, "
                        "trained on the model's own rollouts (denoiser unchanged); one that "
                        "has it is trained further")
    gd.add_argument("--checkpoint", required=True, help="a trained model (teacher or student)")
    gd.add_argument("--out", required=True, help="run directory; the new model is OUT/model")
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
    gd.set_defaults(func=cmd_decoder)

    ups = sub.add_parser("upsampler", help="teach a model to draw its output at the camera's "
                         "resolution from its 128-px output and the input frame (rest unchanged)")
    ups.add_argument("--checkpoint", required=True)
    ups.add_argument("--out", required=True, help="run directory; the new model is OUT/model")
    ups.add_argument("--size", type=int, default=256, help="output short side (default 256)")
    ups.add_argument("--channels", type=int, default=32)
    ups.add_argument("--look-size", type=int, default=32, help="the model's output is shrunk "
                     "to this (its fine texture flickers; 0: kept)")
    ups.add_argument("--look-memory", type=float, default=0.9, help="share of the last frame's "
                     "coarse look, moved along the camera's motion, in the one shown (0: none)")
    ups.add_argument("--streams", type=int, default=4, help="training streams per style")
    ups.add_argument("--steps", type=int, default=800)
    ups.add_argument("--seed", type=int, default=0)
    ups.add_argument("--json", action="store_true")
    ups.add_argument("--no-progress", action="store_true")
    ups.set_defaults(func=cmd_upsampler)

    pm = sub.add_parser("prompts", help="teach a model to read the ways people name its looks "
                        "(paraphrases, Chinese, typos) and prompts for looks it lacks")
    pm.add_argument("--checkpoint", required=True)
    pm.add_argument("--out", required=True, help="run directory; the new model is OUT/model")
    pm.add_argument("--steps", type=int, default=2000)
    pm.add_argument("--avoid", metavar="FILE", action="append", help="phrasings never to "
                    "train on (a held-out set: tests/data/prompts_heldout.txt); repeatable")
    pm.add_argument("--seed", type=int, default=0)
    pm.add_argument("--json", action="store_true")
    pm.add_argument("--no-progress", action="store_true")
    pm.set_defaults(func=cmd_prompts)

    styles = sub.add_parser("styles", help="list the styles with their kind and prompts")
    styles.add_argument("--checkpoint", help="also the looks `lsd learn` taught this model")
    styles.add_argument("--json", action="store_true")
    styles.set_defaults(func=cmd_styles)

    data = sub.add_parser("data", help="paired videos: synthetic, filtered, your own clip's "
                          "frames").add_subparsers(dest="data_command", required=True)
    sample = data.add_parser("sample", help="write input.mp4, target.mp4, preview.mp4, flow.npz")
    sample.add_argument("--style", required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--frames", type=int, default=100)
    sample.add_argument("--size", type=int, default=128)
    sample.add_argument("--out", required=True)
    sample.add_argument("--json", action="store_true")
    sample.set_defaults(func=cmd_data_sample)
    add_learn(sub, data)
    for command in (demo, run, srv, tr, dis, pr, gd):
        add_dtype(command)
    for command in (demo, run, srv):  # these stream
        add_backend(command)
        add_out_size(command)
    add_bench(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .precision import ask
    from .stream.sources import DeviceUnavailable

    args = build_parser().parse_args(argv)
    try:
        ask(getattr(args, "dtype", None))  # every model this command runs computes in it
        args.func(args)
    except (KeyError, ValueError, OSError, DeviceUnavailable) as e:
        # bad input (or a full disk, a missing file) gets one clear line, not a traceback
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"lsd: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
