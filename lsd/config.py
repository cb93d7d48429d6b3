"""Model configuration: plain dataclasses, read from and written to YAML.

A config is plain values (nanoGPT style). `from_dict` is strict: an unknown key is an
error naming the key, so a typo in a YAML file never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ALIGN = 64  # matrix dimensions are multiples of this by default (tensor cores, AVX-512)
CELL = 4  # pixels on a side of the grid both the upsampler's gains and a head draw on


def on_grid(side: int, least: int = CELL) -> bool:
    """Whether an output side fits the grid: a multiple of CELL, at least `least`."""
    return side >= least and side % CELL == 0


@dataclass
class CodecConfig:
    kind: str = "conv"  # conv: a small learned codec | patches: pixel space, no parameters
    factor: int = 8  # the latent is this many times smaller than the frame on each side
    latent_channels: int = 8  # for kind=patches this is forced to 3 * factor**2
    channels: tuple[int, ...] = (64, 128)  # conv widths at 1/4 and 1/8 of the frame size
    blocks: int = 1  # residual blocks per stage
    # the decoder also sees the input frame (conv only): the sharp edges a 16x smaller
    # latent cannot hold are in the camera frame, which every output is generated from
    sees_input: bool = False


@dataclass
class TextConfig:
    kind: str = "bytes"  # bytes: UTF-8 bytes + a small transformer, trained with the model
    dim: int = 128
    depth: int = 2
    heads: int = 2
    max_bytes: int = 96  # longer prompts are cut (a Chinese character is 3 bytes)
    out_dim: int = 256  # the prompt embedding's size
    # looks taught by `lsd learn`: each one's prompt embedding is a learnt vector (the
    # encoder's own output for its name lies near the old looks', which it must not move)
    learned: list[str] = field(default_factory=list)


@dataclass
class ReaderConfig:
    # look -> its prompts (the first canonical) for a trained prompt reader; empty: none
    looks: dict[str, list[str]] = field(default_factory=dict)
    buckets: int = 16384  # hashed n-gram features
    dim: int = 32


@dataclass
class UpsamplerConfig:
    # a model's output drawn at the camera's resolution (lsd.models.upsampler); 0: none,
    # the 128-px output is stretched
    channels: int = 0
    blocks: int = 2
    out_size: int = 256  # the output's short side by default
    look_size: int = 0  # the model's output is shrunk to this first (0: kept as it is)
    # the share of the shown coarse look that is the last frame's (a running mean, moved
    # along the camera's motion: its frame-to-frame noise averages out, the camera's
    # detail does not lag)
    look_memory: float = 0.0
    # looks taught by `lsd learn` that have an output head of their own (lsd.models.look_head)
    heads: list[str] = field(default_factory=list)
    head_channels: int = 24  # cheaper than the gains it replaces (journal)
    head_blocks: int = 4


@dataclass
class DenoiserConfig:
    dim: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: int = 4
    patch: int = 2  # latent pixels per token side (2: 64 tokens for a 128x128 frame)
    history: int = 3  # k: a frame attends to itself and the k frames before it
    choice: bool = False  # told the stream's picks on every frame (styles/picks.py)
    # per-block widths left by structured pruning (`lsd prune`); empty: every block has
    # `heads` heads and an MLP of dim * mlp_ratio. A head is always dim // heads wide.
    block_heads: tuple[int, ...] = ()
    block_mlp: tuple[int, ...] = ()

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def heads_of(self, block: int) -> int:
        return self.block_heads[block] if self.block_heads else self.heads

    def mlp_of(self, block: int) -> int:
        return self.block_mlp[block] if self.block_mlp else self.dim * self.mlp_ratio


@dataclass
class ModelConfig:
    name: str = "tiny"
    frame_size: tuple[int, int] = (128, 128)  # (height, width)
    codec: CodecConfig = field(default_factory=CodecConfig)
    text: TextConfig = field(default_factory=TextConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    upsampler: UpsamplerConfig = field(default_factory=UpsamplerConfig)

    def __post_init__(self):
        self.validate()

    @property
    def latent_size(self) -> tuple[int, int]:
        f = self.codec.factor
        return self.frame_size[0] // f, self.frame_size[1] // f

    @property
    def latent_channels(self) -> int:
        ae = self.codec
        return 3 * ae.factor ** 2 if ae.kind == "patches" else ae.latent_channels

    @property
    def tokens_per_frame(self) -> int:
        h, w = self.latent_size
        return (h // self.denoiser.patch) * (w // self.denoiser.patch)

    def validate(self) -> None:
        d, ae = self.denoiser, self.codec
        step = ae.factor * d.patch
        if any(s <= 0 or s % step for s in self.frame_size):
            raise ValueError(f"frame_size {tuple(self.frame_size)} must be positive multiples "
                             f"of codec.factor * denoiser.patch = {step}")
        if ae.kind not in ("conv", "patches"):
            raise ValueError(f"codec.kind must be 'conv' or 'patches', not {ae.kind!r}")
        if ae.sees_input and ae.kind != "conv":
            raise ValueError("codec.sees_input needs codec.kind 'conv'")
        if ae.kind == "conv" and ae.factor != 8:
            raise ValueError("the conv codec downsamples by exactly 8 (codec.factor)")
        if d.dim % d.heads:
            raise ValueError(f"denoiser.dim {d.dim} is not divisible by heads {d.heads}")
        if d.history < 0:
            raise ValueError(f"denoiser.history must be >= 0, not {d.history}")
        if not isinstance(d.choice, bool):  # the old CVAE code's size, say
            raise ValueError(f"denoiser.choice must be true or false, not {d.choice!r}")
        for name, widths, most in (("block_heads", d.block_heads, d.heads),
                                   ("block_mlp", d.block_mlp, None)):
            if widths and (len(widths) != d.depth
                           or any(w < 1 or (most and w > most) for w in widths)):
                raise ValueError(f"denoiser.{name} {list(widths)} must give one width in "
                                 f"1..{most or 'any'} per block ({d.depth} blocks) or be empty")
        if any(not isinstance(p, list) or not p or not all(isinstance(x, str) for x in p)
               for p in self.reader.looks.values()):
            raise ValueError("reader.looks must map each look to a non-empty list of prompts")
        up = self.upsampler
        if not 0 <= up.look_memory < 1:
            raise ValueError(f"upsampler.look_memory must be in [0, 1), not {up.look_memory}")
        if up.channels < 0 or up.blocks < 0 or not on_grid(up.out_size):
            raise ValueError("upsampler: channels and blocks must be >= 0 and out_size a "
                             f"positive multiple of {CELL}, not {up}")
        if not set(up.heads) <= set(self.text.learned) or (up.heads and not up.channels):
            raise ValueError(f"upsampler.heads {up.heads} must be learnt looks (text.learned) "
                             f"of a model with an upsampler")
        if self.text.dim % self.text.heads:
            raise ValueError(f"text.dim {self.text.dim} is not divisible by heads {self.text.heads}")

    def unaligned(self, align: int = ALIGN) -> list[str]:
        """Names of matrix dimensions that are not multiples of `align` (empty when all are)."""
        d, t = self.denoiser, self.text
        dims = {"denoiser.dim": d.dim, "denoiser.head_dim": d.head_dim, "text.dim": t.dim,
                "text.head_dim": t.dim // t.heads, "text.out_dim": t.out_dim}
        for i in range(d.depth):
            dims[f"denoiser.blocks[{i}].mlp"] = d.mlp_of(i)
        if self.codec.kind == "conv":
            dims.update({f"codec.channels[{i}]": c
                         for i, c in enumerate(self.codec.channels)})
        return [name for name, v in dims.items() if v % align]

    def to_dict(self) -> dict:
        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return build_dataclass(cls, data, "model")

    @staticmethod
    def upgraded(data: dict) -> dict:
        """An older checkpoint's model section in today's names: `autoencoder` is `codec`,
        its `guide` is `sees_input`."""
        rename = lambda d, old, new: {new if k == old else k: v for k, v in d.items()}
        if "autoencoder" in data and "codec" not in data:
            data = rename(data, "autoencoder", "codec")
            if isinstance(data["codec"], dict):
                data["codec"] = rename(data["codec"], "guide", "sees_input")
        return data


PRESETS = {
    # CPU real time: 9.1 M parameters in all (7.6 M denoiser), 64 tokens a frame at 128x128
    "tiny": ModelConfig(),
    # a GPU size (~230 M denoiser parameters); only constructed and stepped in tests here
    "base": ModelConfig(
        name="base", frame_size=(256, 256),
        codec=CodecConfig(channels=(128, 256), blocks=2),
        text=TextConfig(dim=256, depth=4, heads=4, out_dim=1024),
        denoiser=DenoiserConfig(dim=1024, depth=12, heads=16, patch=2, history=4)),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
    return ModelConfig.from_dict(PRESETS[name].to_dict())  # a fresh copy


def with_overrides(config: ModelConfig, overrides: list[str]) -> ModelConfig:
    """A copy with dotted `key=value` settings applied, e.g. ["denoiser.patch=1"]; values
    are read as YAML scalars, and the result is checked like any config."""
    data = config.to_dict()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad setting {item!r}: expected KEY=VALUE, e.g. denoiser.patch=1")
        *parents, leaf = key.strip().split(".")
        node = data
        for name in parents:
            if not isinstance(node.get(name), dict):
                raise ValueError(f"bad setting {item!r}: no section {name!r}")
            node = node[name]
        node[leaf] = yaml.safe_load(value)
    return ModelConfig.from_dict(data)


def load_yaml(path: str | Path, cls, _seen: tuple[Path, ...] = ()) -> dict:
    """A YAML mapping describing the dataclass `cls`. A `base: other.yaml` key
    (relative to this file) reads that file first and this one's keys override it: a
    section (a dataclass field) key by key, any other value whole. So a config states only
    what differs from its base."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top of the YAML file")
    if "base" not in data:
        return data
    base = path.parent / str(data.pop("base"))
    if base.resolve() in _seen:
        raise ValueError(f"{path}: its base {base} leads back to itself")
    return merged(cls, load_yaml(base, cls, (*_seen, path.resolve())), data)


def merged(cls, base: dict, over: dict) -> dict:
    """`base` with `over`'s keys put in; a field of `cls` that is itself a dataclass (a
    section) is merged key by key, any other value (a list, a mapping of weights) replaced."""
    hints = typing.get_type_hints(cls)
    out = dict(base)
    for key, value in over.items():
        kind = hints.get(key)
        section = (dataclasses.is_dataclass(kind) and isinstance(value, dict)
                   and isinstance(out.get(key), dict))
        out[key] = merged(kind, out[key], value) if section else value
    return out


# -----------------------------------------------------------------------------
# dataclass <-> plain dict


def plain(value):
    """Tuples become lists so YAML stays plain (no python/tuple tags)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def build_dataclass(cls, data, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    if hasattr(cls, "upgraded"):  # an older file's names
        data = cls.upgraded(data)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build_dataclass(hint, value, f"{where}.{name}")
        elif hint is bool and not isinstance(value, bool):
            raise ValueError(f"{where}.{name}: expected true or false, got {value!r}")
        elif typing.get_origin(hint) is tuple:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{where}.{name}: expected a list, got {value!r}")
            kwargs[name] = tuple(value)
        elif hint is float and isinstance(value, str) and _float_or_none(value) is not None:
            kwargs[name] = _float_or_none(value)  # PyYAML reads 5e-4 (no dot) as a string
        elif hint in (int, float, str) and not _is_a(value, hint):
            raise ValueError(f"{where}.{name}: expected {hint.__name__}, got {value!r}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _is_a(value, kind) -> bool:
    if isinstance(value, bool):  # YAML's yes/no must not pass as 1/0
        return False
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


@dataclass
class SampleConfig:
    """How a stream samples each frame: written by training into a checkpoint's `sample`
    section, read back by `LSDModel.sample`, changed by the command line's flags."""
    steps: int = 3  # denoising steps a frame
    context_t: float = 0.0  # noise level history frames are committed at
    shortcut: bool = False  # a distilled student is told the step size d
    # clean: one extra pass writes the finished frame into the history; last_step: the
    # last denoising step writes it (one pass a frame fewer; history at level 1/steps)
    commit: str = "clean"
    settle: int = 0  # extra passes that settle a stream's first frame before it is shown
    choice_guidance: float = 1.0  # classifier-free guidance on the picks code; 1: off
    choice_guidance_t_min: float = 0.0  # ... on the steps from level 1 down to this; 0: all

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"sample.steps must be >= 1, not {self.steps}")
        if self.commit not in COMMITS:
            raise ValueError(f"sample.commit must be one of {', '.join(COMMITS)}, not {self.commit!r}")
        if self.settle < 0:
            raise ValueError(f"sample.settle must be >= 0, not {self.settle}")
        if self.choice_guidance < 0:
            raise ValueError(f"sample.choice_guidance must be >= 0, not {self.choice_guidance}")
        if not 0 <= self.choice_guidance_t_min < 1:
            raise ValueError(f"sample.choice_guidance_t_min must be in [0, 1), "
                             f"not {self.choice_guidance_t_min}")

    @property
    def guided(self) -> bool:
        return self.choice_guidance != 1.0

    def but(self, **changes) -> "SampleConfig":
        """A copy with the changes that are not None (a command line's unset flags are)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict) -> "SampleConfig":
        return build_dataclass(cls, data, "sample")


COMMITS = ("clean", "last_step")
