"""The command line of teaching LSD a new look: `lsd learn`, `lsd data frames` and
`lsd data pairs`."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .cli_args import SHIPPED_DEFAULT, emit


def cmd_learn(args: argparse.Namespace) -> None:
    from .stream.runner import default_checkpoint
    from .train.learn import Lesson, learn

    lesson = Lesson(steps=args.steps, batch=args.batch, seed=args.seed, head_steps=args.head_steps,
                    minutes=args.minutes)
    lesson.lr = lesson.lr if args.lr is None else args.lr
    report = learn(args.pairs, args.name, args.out, args.source or str(default_checkpoint()),
                   args.prompt, lesson, args.resume, not args.no_progress)
    play = ["lsd", "run", "--source", "webcam", "--checkpoint", report["model"], "--prompt",
            report["name"], "--window"]  # what a user does next
    emit(report | {"play": shlex.join(play)}, args.json)


def cmd_data_pairs(args: argparse.Namespace) -> None:
    from .data.filtered import write_pairs

    emit({"folders": write_pairs(args.out, args.filter, args.clip, args.flicker, args.size,
                                 args.seed, args.repeat, args.stretch,
                                 not args.no_progress)}, args.json)


def cmd_data_frames(args: argparse.Namespace) -> None:
    from .data.frames import split_frames
    from .data.pairs import READ_FRAMES

    report = split_frames(args.video, args.out, args.size,
                          READ_FRAMES if args.frames is None else args.frames, not args.no_progress)
    if report["frames"] < report["video_frames"]:
        print(f"note: the first {report['frames']} of the clip's {report['video_frames']} frames "
              f"(--frames; a lesson reads {READ_FRAMES} at most)", file=sys.stderr)
    then = f"lsd learn --pairs {Path(args.out).parent} ..."
    emit(report | {"next": f"write your look's frames to {report['target']}, numbered the same "
                           f"and the same size, then: {then}"}, args.json)


def add_learn(sub, data) -> None:
    """`lsd learn` on `sub`, `lsd data frames` and `pairs` on `data` (`lsd data`); nothing
    heavy is imported here: every `lsd` command builds these parsers."""
    ln = sub.add_parser("learn", help="teach a model a new look from paired videos "
                        "(DIR/<clip>/input.mp4 and target.mp4, any video, or folders of "
                        "images); writes OUT/model")
    ln.add_argument("--pairs", required=True, metavar="DIR", help="DIR/<clip>/ with an input and "
                    "a target, videos or folders of numbered images (docs/learn.md)")
    ln.add_argument("--name", required=True, help="the new look's name: its prompt")
    ln.add_argument("--prompt", action="append", help="another prompt for it; repeatable")
    ln.add_argument("--from", dest="source", metavar="CHECKPOINT", help=SHIPPED_DEFAULT)
    ln.add_argument("--out", required=True, help="run directory; the new model is OUT/model")
    ln.add_argument("--steps", type=int, default=300,
                    help="the denoiser's steps (default %(default)s)")
    ln.add_argument("--batch", type=int, default=6, help="clips a step, a third of them the "
                    "new look (default %(default)s)")
    ln.add_argument("--lr", type=float, help="the denoiser's peak learning rate (default 1e-3)")
    ln.add_argument("--head-steps", type=int, default=12000, help="the new look's output head's "
                    "steps, after the denoiser's (default %(default)s; 0: no head; "
                    "lsd.models.look_head)")
    ln.add_argument("--minutes", type=float, default=30.0, help="the lesson's time, reading "
                    "included: a CPU too slow for all the steps takes fewer, and says so "
                    "(default %(default)s; 0: no limit)")
    ln.add_argument("--seed", type=int, default=0)
    ln.add_argument("--resume", action="store_true", help="continue a stopped run from OUT/state")
    ln.add_argument("--json", action="store_true")
    ln.add_argument("--no-progress", action="store_true")
    ln.set_defaults(func=cmd_learn)

    frames = data.add_parser("frames", help="a clip as numbered images (OUT/input/), for a "
                             "per-frame tool to draw its targets from (OUT/target/: numbered "
                             "the same, the same size); then lsd learn. Run again, it goes on")
    frames.add_argument("--video", required=True, help="your clip: any video PyAV reads")
    frames.add_argument("--out", required=True, metavar="DIR", help="the clip's folder in your "
                        "pairs, e.g. pairs/walk")
    frames.add_argument("--size", type=int, default=512, help="short side at most, both sides "
                        "a multiple of 8 (default %(default)s; a lesson uses 256 of it)")
    frames.add_argument("--frames", type=int, help="the first N frames (default: as many as a "
                        "lesson reads, 5 min at 30 fps)")
    frames.add_argument("--json", action="store_true")
    frames.add_argument("--no-progress", action="store_true")
    frames.set_defaults(func=cmd_data_frames)

    pairs = data.add_parser("pairs", help="paired clips in an OpenCV filter's look, from real "
                            "clips that ship in packages (for lsd learn and lsd bench learn); "
                            "run again, it keeps the clips it already made")
    pairs.add_argument("--filter", required=True, help="stylization, pencil, edge_preserving "
                       "or an OpenCV colour map: ocean, jet, inferno, ... (lsd.data.filtered)")
    pairs.add_argument("--clip", action="append", required=True, metavar="NAME[:START:END]",
                       help="bikes, bigbuckbunny or carphone, optionally frames [START, END); "
                       "repeatable")
    pairs.add_argument("--flicker", action="store_true", help="the filter's parameters drawn "
                       "afresh every frame, as a per-frame diffusion pass flickers")
    pairs.add_argument("--size", type=int, default=256, help="short side at most (default 256)")
    pairs.add_argument("--stretch", action="store_true", help="bring the short side to --size "
                       "even if that enlarges (e.g. --size 1080: a phone's frames, to time a lesson)")
    pairs.add_argument("--repeat", type=int, default=1, help="each clip played forwards and "
                       "backwards in turn this many times (long pairs, to time a lesson)")
    pairs.add_argument("--seed", type=int, default=0)
    pairs.add_argument("--out", required=True)
    pairs.add_argument("--json", action="store_true")
    pairs.add_argument("--no-progress", action="store_true")
    pairs.set_defaults(func=cmd_data_pairs)
