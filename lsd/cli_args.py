"""What every command line shares: printing a result, and the arguments that mean the same
everywhere (--dtype, --backend, a list of styles)."""

from __future__ import annotations

import argparse
import json
import math

# what --checkpoint (lsd learn: --from) is when not given: lsd.stream.runner.default_checkpoint
SHIPPED_DEFAULT = ("default: the shipped checkpoint this CPU keeps up with (lsd-tiny, or "
                   "lsd-tiny-pruned without native bf16)")


def emit(result: dict, as_json: bool) -> None:
    if as_json:  # strict JSON: a value that is no number (NaN, inf) is null
        print(json.dumps(finite(result), allow_nan=False))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


def finite(value):
    """`value` with every float that is NaN or infinite replaced by None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def add_out_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-size", type=int, metavar="N", help="the output's short side in "
                        "pixels (default: the checkpoint's upsampler's size; without one, "
                        "the input's size)")


def styles_arg(text: str | None) -> list[str] | None:
    """A comma-separated list of style names, each checked (None: all)."""
    from .styles import get_style

    styles = text.split(",") if text else None
    for name in styles or []:
        get_style(name)  # a typo fails now, not after minutes of rollout
    return styles


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


def add_dtype(p: argparse.ArgumentParser) -> None:
    """--dtype, for every command that runs a model (lsd.precision decides on auto)."""
    from .precision import CHOICES

    p.add_argument("--dtype", choices=CHOICES, help="compute dtype (default auto: bfloat16 "
                   "where this CPU runs it natively and faster, else float32; bfloat16 on "
                   "CUDA; the LSD_DTYPE variable sets it too)")


def add_backend(p: argparse.ArgumentParser) -> None:
    """--backend, for every command that streams (lsd.stream.backends decides on auto)."""
    from .stream.backends import CHOICES

    p.add_argument("--backend", choices=CHOICES, help="what runs the frames (default auto: "
                   "openvino on a CPU where it is installed, else eager; compile: "
                   "torch.compile, the first frame waits a minute; LSD_BACKEND sets it too)")
