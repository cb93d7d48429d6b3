"""`lsd learn`: teach a model a new look from paired videos a user brings.

DIR holds one folder per clip with an input and a target, videos or folders of frames
(lsd.data.pairs checks them first). Their frames are squeezed to the model's size as a
Stream squeezes a camera's, and encoded once by the frozen codec. The 3-step student is
fine-tuned directly, with the objective it was distilled with (lsd.train.shortcut: every
frame generated against its clip's damaged, lightly noised history) at the step size it
samples with. Each batch holds two kinds of clip, a third and two thirds:

- the new look: the user's pairs; the target is the data's own velocity;
- an old frame look on the same footage: its reference renderer draws the history and the
  frames, and the target is what the model before the lesson predicts there, so the old
  looks keep drawing what they drew. Such a window weighs `Lesson.old_weight` (2) new ones.
  A look an earlier lesson taught is an old look too: the model before the lesson draws
  windows of the footage in it once, in place of a renderer (Footage.rehearse).

The new look's prompt embedding is a learnt vector (ModelConfig.text.learned), started at
the prompt encoder's embedding of its name (earlier lessons' vectors stay); the encoder and
the codec do not change, so every old prompt embeds as before. A model with an upsampler
then learns the look an output head of its own (lsd.train.look_head), which draws in place
of the upsampler's gains what the model's 128 px cannot carry (outlines, exact colour
maps); a stream draws with it only for prompts read as the new look, so the old looks draw
exactly as before. The prompt reader is retrained with the new look's name and prompts.
OUT/state is written every `save_every` steps (the output head's: every SAVE_EVERY) and at
Ctrl-C, and `--resume` continues from it, on the same name and pairs; OUT/model is a
checkpoint that `lsd run`, `lsd serve` and `lsd.Stream` take as it is. A lesson ends within
`Lesson.minutes`: a CPU too slow for every step takes fewer (fitted_share), and says so.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import is_checkpoint, load_checkpoint, read_config, save_checkpoint
from ..data.pairs import MIN_FRAMES, READ_FRAMES, check_pairs, misaligned
from ..io import list_images, read_frames, to_uint8
from ..metrics import psnr
from ..models import LSDModel, load, normalize_prompt
from ..models.upsampler import resize
from ..precision import autocast, decide
from ..styles import STYLES, get_style, style_names
from .clips import draw_windows, shrunk, to_frames
from .clips import to_uint8 as tensor_to_uint8
from .config import TrainConfig
from .diffusion_forcing import weighted_mse
from .decoder import look_as_streamed
from .look_head import HeadFootage, head_frames, head_step_seconds, head_windows, train_head
from .prompts import read_avoided, train_reader
from .shortcut import LATTICE, shortcut_distillation
from .trainer import _load_optimizer, _optimizer_tensors, lr_at

CLIP_FRAMES = 8  # frames of a training window: the history is 3
CARRIED_DB = 26.0  # redrawn this well, a look was learnt at 24 dB or more (journal)
LEARNT_DB = 28.0  # drawn where taught, new footage scored 1.7-7.8 dB lower (journal)
REDRAWN_FRAMES = 32  # frames of each clip the redrawing is measured on
REHEARSED = 48  # windows of each look an earlier lesson taught, drawn once before the steps
# fitting a lesson to its minutes (measured on 1 and 2 cores; journal)
TIMED_STEPS = 8  # denoiser steps timed (their median), after the first, before it is fitted
HEAD_STEP_COST = 0.016  # an output head's step in denoiser steps (crops drawn twice), until timed
HEAD_FRAMES_COST = 10  # drawing the frames the head learns from, in denoiser steps (7-8)
AFTER_HEAD_S = 30  # seconds after the head: scoring it, the reader's training, saving (about 16)


@dataclasses.dataclass
class Lesson:
    steps: int = 300  # 400: 11-20 % longer, the new looks within 0.26 dB either way (journal)
    batch: int = 6  # windows a step
    new_share: float = 1 / 3  # the new look's share; the rest old looks (half moved them more)
    old_weight: float = 2.0  # an old look's window weighs this against a new one (1: thermal fell 0.57 dB)
    lr: float = 1e-3
    vector_lr: float = 1e-2  # the new look's embedding moves faster than the weights
    warmup: int = 20
    save_every: int = 50
    head_steps: int = 12000  # the output head's, about 5 min on 2 AVX2 cores (0: none)
    head_lr: float = 2e-3
    reader_steps: int = 2000
    seed: int = 0
    minutes: float = 30.0  # the whole lesson's; a slower CPU's steps are cut to fit (0: no limit)


@torch.no_grad()
def encoded(model: LSDModel, frames: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Latents (T, C, h, w) in fp32 of uint8 frames, in chunks."""
    return torch.cat([model.codec.encode(to_frames(frames[i:i + 64]).to(dtype)).float()
                      for i in range(0, len(frames), 64)])


@torch.no_grad()
def redrawn_db(model: LSDModel, inputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean PSNR of the targets redrawn by the model's output path (encoded, decoded against
    the input, shown by the upsampler at their size) against themselves: about the most a
    look learnt by the denoiser alone can score (measured: 0.6-4.5 dB more than it reached;
    journal); its output head draws past it.
    inputs, targets: (T, H, W, 3) uint8 of one size, H and W multiples of
    lsd.config.CELL."""
    size, scores = tuple(model.config.frame_size), []
    dtype = next(model.parameters()).dtype
    for i in range(0, len(inputs), 8):
        x, y = to_frames(inputs[i:i + 8]), to_frames(targets[i:i + 8])
        small = lambda f: resize(f, size).to(dtype)
        drawn = model.codec.decode(model.codec.encode(small(y)), small(x)).float()
        up = model.upsampler
        shown = (resize(drawn, tuple(y.shape[-2:])) if up is None
                 else up(drawn.to(dtype), x.to(dtype)))
        scores += [min(psnr(a, b), 60.0) for a, b in zip(tensor_to_uint8(shown), targets[i:i + 8])]
    return round(float(np.mean(scores)), 2)


class Footage:
    """The pairs at the model's size with their latents; windows of it as training clips;
    and the frames the output head learns from at the size a stream shows them."""

    def __init__(self, model: LSDModel, pairs: list[dict], dtype: torch.dtype, progress: bool,
                 shown: dict[int, set[int]] | None = None):
        """`shown`: clip -> the frame numbers also kept at the shown size (the upsampler's;
        the model's own without one), so that a clip is decoded once (at 1080p, decoding
        is most of the reading)."""
        size = tuple(model.config.frame_size)
        self.model, self.dtype = model, dtype
        self.inputs, self.targets, self.z_in, self.z0 = [], [], [], []
        self.shown = []  # per clip: {frame number: (input, target)} at the shown size
        self.warnings = []  # a pair whose target looks shifted or another clip's
        bar = tqdm(total=2 * sum(p["frames"] for p in pairs), desc="reading pairs", unit="frame",
                   disable=not progress)
        up = model.upsampler
        for c, pair in enumerate(pairs):
            keep = (shown or {}).get(c, set())
            big = size if up is None else up.shown_size((pair["height"], pair["width"]))
            (x, x_big), (y, y_big) = (self._read(pair[k], pair["frames"], size, keep, big, bar)
                                      for k in ("input", "target"))
            if len(x) != len(y):  # the headers agreed; the streams did not
                raise ValueError(f"{pair['target']} decodes to {len(y)} frames but "
                                 f"{Path(pair['input']).name} to {len(x)}")
            warning = misaligned(pair, x, y)
            if warning:
                self.warnings.append(warning)
            self.inputs.append(x)
            self.targets.append(y)
            self.z_in.append(encoded(model, x, dtype))
            self.z0.append(encoded(model, y, dtype))
            self.shown.append({f: (x_big[f], y_big[f]) for f in x_big if f in y_big})
        bar.close()
        self.frames = sum(len(x) for x in self.inputs)
        self.old_looks = style_names("frame")
        self.rehearsed = {}  # a look taught before: [(window, its frames, their latents)]

    @staticmethod
    def _read(path: str, frames: int, size: tuple[int, int], keep: set[int],
              big: tuple[int, int] | None, bar: tqdm) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """A clip's first `frames` shrunk to `size`, and those numbered in `keep` to `big`."""
        small, kept = [], {}
        for i, frame in enumerate(read_frames(path, frames)):
            small.append(shrunk(frame, size))
            if i in keep:
                kept[i] = shrunk(frame, big)
            bar.update()
        return np.stack(small), kept

    @torch.no_grad()
    def rehearse(self, looks: list[str], g: torch.Generator, progress: bool):
        """Make the looks earlier lessons taught old looks of this one. They have no
        renderer, so windows of this footage drawn by the model before the lesson, as a
        stream draws them, stand in for one; their targets in `batch` are that model's
        predictions, as every old look's are."""
        for look in looks:
            wins = self.windows(REHEARSED, g)
            z_in = torch.stack([self.cut(self.z_in, c, s) for c, s in wins])
            z0 = look_as_streamed(self.model, z_in, look,
                                  f"drawing {look!r} as it was" if progress else None).float()
            small = to_frames(np.stack([self.cut(self.inputs, c, s) for c, s in wins]))
            frames = tensor_to_uint8(self.model.codec.decode(z0.to(self.dtype), small.to(self.dtype)))
            self.rehearsed[look] = list(zip(wins, frames, z0))
        self.old_looks = [*self.old_looks, *looks]

    @staticmethod
    def cut(arrays: list, c: int, s: int):
        """Clip c's frames (or latents) of the training window starting at frame s."""
        return arrays[c][s:s + CLIP_FRAMES]

    def windows(self, n: int, g: torch.Generator, frames: int = CLIP_FRAMES) -> list[tuple[int, int]]:
        """n random (clip, first frame) windows of `frames` frames."""
        return draw_windows([len(x) for x in self.inputs], n, g, frames)

    @torch.no_grad()
    def batch(self, name: str, new: int, old: int, g: torch.Generator) -> tuple[dict, torch.Tensor]:
        """A batch of `new` windows in the new look and `old` in old looks drawn at random
        (their targets rendered now), as lsd.train.shortcut takes it; and which are new."""
        cut = self.cut
        wins = self.windows(new + old, g)
        looks = [name] * new + [self.old_looks[int(i)] for i in
                                torch.randint(len(self.old_looks), (old,), generator=g)]
        inputs, z_in, targets, z0 = [], [], [], []
        for (c, s), look in zip(wins, looks):
            if look in self.rehearsed:  # one of the windows drawn in it before the steps
                pick = int(torch.randint(REHEARSED, (), generator=g))
                (c, s), drawn, latents = self.rehearsed[look][pick]
            elif look == name:
                drawn, latents = cut(self.targets, c, s), cut(self.z0, c, s)
            else:
                render = get_style(look).renderer()
                drawn = to_uint8(np.stack([render(f.astype(np.float32) / 255.0)
                                           for f in cut(self.inputs, c, s)]))
                latents = encoded(self.model, drawn, self.dtype)
            inputs.append(cut(self.inputs, c, s))
            z_in.append(cut(self.z_in, c, s))
            targets.append(drawn)
            z0.append(latents)
        clips = {"input": to_frames(np.stack(inputs)), "target": to_frames(np.stack(targets)),
                 "z_in": torch.stack(z_in), "z0": torch.stack(z0), "styles": looks,
                 "prompts": [look if look == name or look in self.rehearsed
                             else get_style(look).prompts[0] for look in looks]}
        return clips, torch.tensor([look == name for look in looks])


def redrawn_pairs(model: LSDModel, footage: Footage) -> float:
    """redrawn_db over the first REDRAWN_FRAMES frames of each clip, at the size a stream
    shows them (`footage` kept them: first_frames)."""
    scores = []
    for shown in footage.shown:
        firsts = [shown[f] for f in range(REDRAWN_FRAMES) if f in shown]
        scores.append(redrawn_db(model, *(np.stack(frames) for frames in zip(*firsts))))
    return round(float(np.mean(scores)), 2)


def within_reading(pairs: str, clips: list[dict]) -> tuple[list[dict], str | None]:
    """The clips, each cut to the same first share of its frames (never under MIN_FRAMES) if
    they hold more than READ_FRAMES in all, and the warning that says so."""
    total = sum(c["frames"] for c in clips)
    cut = [c | {"frames": min(c["frames"], max(MIN_FRAMES, c["frames"] * READ_FRAMES // total))}
           for c in clips]
    read = sum(c["frames"] for c in cut)
    if read == total:
        return clips, None
    return cut, (f"{pairs} holds {total} frames of pairs; a lesson reads about {READ_FRAMES} "
                 f"(5 min at 30 fps), so it reads {read}, the first {read / total:.0%} of each "
                 f"clip: cut the clips to choose which parts")


def first_frames(clips: list[dict]) -> dict[int, set[int]]:
    """clip -> the frame numbers redrawn_pairs scores."""
    return {c: set(range(min(REDRAWN_FRAMES, clip["frames"]))) for c, clip in enumerate(clips)}


def _with_new_look(source: LSDModel, name: str, prompts: list[str], head: bool) -> LSDModel:
    """`source` grown by one learnt look vector, started at the encoder's embedding of `name`,
    and (`head`) an output head for it, drawing nothing yet."""
    cfg = source.config
    text = dataclasses.replace(cfg.text, learned=[*cfg.text.learned, name])
    looks = {k: list(s.prompts) for k, s in STYLES.items()} | cfg.reader.looks  # a reader for all
    reader = dataclasses.replace(cfg.reader, looks=looks | {name: [name, *prompts]})
    up = cfg.upsampler
    if head:
        up = dataclasses.replace(up, heads=[*up.heads, name])
    model = LSDModel(dataclasses.replace(cfg, text=text, reader=reader, upsampler=up)).float()
    state = {k: v.float() for k, v in source.state_dict().items() if not k.startswith("reader.")}
    with torch.no_grad():
        start = source.text([name]).float()
        old = state.pop("learned_looks", torch.zeros(0, start.shape[1]))
        state["learned_looks"] = torch.cat([old, start])
    model.load_state_dict(state, strict=False)  # the reader is retrained at the end
    model.checkpoint_config = source.checkpoint_config
    return model


def taught_from(clips: list[dict]) -> list[list]:
    """What a stopped lesson keeps of its pairs, so that it goes on only on them: each clip's
    name, frames, size and bytes (a target made again is another file; a frame folder's are
    its frames', not tools' leftovers beside them such as a .DS_Store)."""
    size = lambda p: sum(f.stat().st_size for f in ([p] if p.is_file() else list_images(p)))
    return [[c["name"], c["frames"], c["width"], c["height"],
             size(Path(c["input"])) + size(Path(c["target"]))] for c in clips]


def in_denoiser_steps(steps: int, head_steps: int, fixed: float = 0.0) -> float:
    """`steps` denoiser steps, `head_steps` head steps and `fixed` denoiser steps' worth of
    other work, counted in denoiser steps."""
    return steps + head_steps * HEAD_STEP_COST + fixed


def fitted_share(left_s: float, step_s: float, steps: int, head_steps: int, fixed: float) -> float:
    """The share of the `steps` denoiser steps and `head_steps` head steps still to take that
    fits in `left_s` seconds at `step_s` a denoiser step, with `fixed` denoiser steps' worth
    of other work after them (1: all of them)."""
    work = in_denoiser_steps(steps, head_steps)
    room = left_s / step_s - fixed
    return 1.0 if work <= 0 else min(1.0, max(0.0, room / work))


def check_name(name: str, source: LSDModel, prompts: list[str]) -> str:
    key = normalize_prompt(name)
    if not key or len(key) > 40:
        raise ValueError("--name must be 1-40 characters")
    said = [normalize_prompt(p) for p in prompts]
    if not all(said):  # an empty prompt would teach the reader nothing
        raise ValueError("--prompt must not be empty")
    taken = {normalize_prompt(p): look for look, s in STYLES.items() for p in (look, *s.prompts)}
    taken |= {normalize_prompt(p): look for look, ps in source.config.reader.looks.items()
              for p in (look, *ps)}
    for p in (key, *said):
        if p in taken:
            raise ValueError(f"{p!r} already names the look {taken[p]!r}: pick another --name "
                             f"or --prompt")
    return key


def learn(pairs: str, name: str, out: str, source: str, prompts: list[str] | None = None,
          lesson: Lesson | None = None, resume: bool = False, progress: bool = True) -> dict:
    """Write OUT/model: `source` that also draws the look of the pairs in DIR for `name`
    (and `prompts`)."""
    lesson, prompts, t0 = lesson or Lesson(), list(prompts or []), time.time()
    out = Path(out)
    if (out / "model").exists() and not (resume and (out / "state").exists()):
        raise FileExistsError(f"{out / 'model'} exists (a finished lesson): pick another --out")
    if (out / "state").exists() and not resume:
        raise FileExistsError(f"{out / 'state'} holds an unfinished lesson: add --resume to go "
                              f"on, or delete it to start again")
    if out.exists() and not out.is_dir():  # found now, not at the first save minutes later
        raise ValueError(f"--out {out} is a file: give a folder for the lesson")
    if lesson.steps < 1 or lesson.batch < 2 or lesson.head_steps < 0 or lesson.minutes < 0:
        raise ValueError("--steps must be at least 1, --batch at least 2, --head-steps and "
                         "--minutes at least 0")
    if not lesson.lr > 0:
        raise ValueError(f"--lr must be above 0, not {lesson.lr:g}")
    warnings = []

    def warn(text: str):  # said as soon as it is known, above the progress bar, and kept
        warnings.append(text)
        tqdm.write(f"warning: {text}", file=sys.stderr)

    clips, too_long = within_reading(pairs, check_pairs(pairs))
    if too_long:
        warn(too_long)
    stamp = taught_from(clips)
    resuming = resume and is_checkpoint(out / "state")
    if resume and not resuming:  # a mistyped --out would start again unsaid
        warn(f"{out / 'state'} holds no stopped lesson: --resume starts a new one")
    if resuming:  # checked before the minutes of reading
        stopped = read_config(out / "state")
        if [stopped.get("name"), stopped.get("pairs")] != [normalize_prompt(name), stamp]:
            raise ValueError(f"{out / 'state'} is a lesson of {stopped.get('name')!r} on other "
                             f"pairs or another --name: give its own, or delete it to start again")
    before = load(source)
    if not before.sample.shortcut:
        raise ValueError(f"{source} is not a few-step student (sample.shortcut): learn from "
                         f"a shipped student")
    key = check_name(name, before, prompts)
    precision = decide("cpu")
    stored = next(before.text.parameters()).dtype  # what did not change is saved bit for bit
    torch.manual_seed(lesson.seed)  # the new head's first weights
    head = before.upsampler is not None and lesson.head_steps > 0
    model = _with_new_look(before, key, prompts, head)  # copies the weights: `before` now computes
    reference = before.to(precision.dtype).requires_grad_(False)
    g = torch.Generator().manual_seed(lesson.seed)
    # the output head's windows, drawn now so that its frames are read in the one pass
    wins = head_windows([c["frames"] for c in clips], g) if head else []
    shown = first_frames(clips)
    for c, frames in head_frames(wins).items():
        shown[c] |= frames
    footage = Footage(reference, clips, precision.dtype, progress, shown)
    footage.rehearse(before.config.text.learned, g, progress)
    redrawn = redrawn_pairs(model, footage)
    for text in footage.warnings:  # before the minutes of training
        warn(text)
    if redrawn < CARRIED_DB and not head:
        warn(f"the model's codec and upsampler redraw these targets at only {redrawn} dB, and "
             f"a learnt look scores 0.6-4.5 dB below that (thin lines and colours far from "
             f"the model's own are lost)")
    cfg = TrainConfig.from_dict(before.checkpoint_config.get("train") or {"objective": "shortcut"})
    cfg.model, cfg.sample = model.config, before.sample
    model.requires_grad_(False).train()
    weights = list(model.denoiser.parameters())
    for p in [*weights, model.learned_looks]:
        p.requires_grad_(True)
    only_new = torch.zeros_like(model.learned_looks[:, :1])
    only_new[-1] = 1  # the looks earlier lessons taught keep their vectors
    model.learned_looks.register_hook(lambda grad: grad * only_new)
    opt = torch.optim.AdamW([{"params": weights, "lr_scale": 1.0},
                             {"params": [model.learned_looks], "lr_scale": lesson.vector_lr / lesson.lr}],
                            lr=lesson.lr, betas=(0.9, 0.99), weight_decay=0.0)
    step, losses, head_start, plan = 0, [], None, None
    if resuming:
        tensors, meta = load_checkpoint(out / "state")
        model.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("weights.")})
        _load_optimizer(opt, tensors)
        g.set_state(tensors["rng"])
        step, losses, plan = int(meta["step"]), list(meta["losses"]), meta.get("plan")
        if "head_step" in meta:  # stopped in the output head's steps
            head_start = {"step": int(meta["head_step"]), "losses": meta["head_losses"],
                          "optim": {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}}
    asked = lesson
    if plan:  # a stopped lesson keeps the steps it was fitted to
        lesson = dataclasses.replace(lesson, steps=plan[0], head_steps=plan[1])
    fitted = bool(plan) or not lesson.minutes  # no limit: nothing to fit, on --resume either
    deadline = t0 + 60 * lesson.minutes if lesson.minutes else None  # of this run
    schedule = dataclasses.replace(cfg.optim, steps=lesson.steps, warmup=lesson.warmup, lr=lesson.lr)
    d_steps = LATTICE // before.sample.steps  # the step size a stream samples with
    new = min(lesson.batch - 1, max(1, round(lesson.batch * lesson.new_share)))
    bar = tqdm(total=lesson.steps, initial=step, desc=f"learning {key!r}", disable=not progress)

    def save_state(rng: torch.Tensor, head: dict | None = None):
        """`head`: the output head's progress (train_head's), once the denoiser's is done."""
        tensors = {f"weights.{k}": v for k, v in model.state_dict().items()}
        meta = {"step": step, "losses": losses, "name": key, "pairs": stamp,
                "plan": [lesson.steps, lesson.head_steps] if fitted else None}
        if head:
            tensors |= {f"head.{k}": v for k, v in head["optim"].items()}
            meta |= {"head_step": head["step"], "head_losses": head["losses"]}
        save_checkpoint(out / "state", tensors | _optimizer_tensors(opt) | {"rng": rng}, meta)

    def fit(steps: int, head_steps: int):
        """From here the lesson takes `steps` and `head_steps` (kept in OUT/state)."""
        nonlocal lesson, schedule, fitted
        lesson = dataclasses.replace(lesson, steps=steps, head_steps=head_steps)
        schedule, fitted = dataclasses.replace(schedule, steps=steps), True

    def said_if_cut(took: int, of: int, whose: str):
        if took < of:
            warn(f"this CPU fits {took} of {whose} {of} steps in --minutes {lesson.minutes:g}: "
                 f"the look is learnt less well than in more minutes")

    def still_to_do() -> tuple[int, int, int]:
        """fitted_share's and in_denoiser_steps's counts: the denoiser's and the head's steps
        still to take, and drawing the head's frames in denoiser steps."""
        return lesson.steps - step, lesson.head_steps * head, HEAD_FRAMES_COST * head

    def said_when_it_ends(step_s: float):
        """The whole lesson's end, which no one phase's progress bar shows."""
        left = step_s * in_denoiser_steps(*still_to_do()) + AFTER_HEAD_S
        at = time.strftime("%H:%M", time.localtime(time.time() + left + 30))  # nearest minute
        tqdm.write(f"the lesson should end in about {left / 60:.1f} min, at {at}", file=sys.stderr)

    ends = []  # of this run's steps, until the lesson is fitted
    try:
        while step < lesson.steps:
            at_start = g.get_state()  # a step cut short is taken again from here
            for group in opt.param_groups:
                group["lr"] = lr_at(step, schedule) * group["lr_scale"]
            batch, taught = footage.batch(key, new, lesson.batch - new, g)
            with autocast("cpu", precision):
                inputs, target, weight = shortcut_distillation(
                    model, batch, cfg, g, forced_d=d_steps, reference=reference, taught=taught,
                    reference_weight=lesson.old_weight)
                pred = model.denoiser(inputs["z_t"], inputs["z_in"], inputs["t"], inputs["d"],
                                      model.encode_prompts(inputs["prompts"]),
                                      history=inputs["history"])
            loss = weighted_mse(pred, target, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(weights, 1.0)
            opt.step()
            step += 1
            losses.append(round(loss.item(), 5))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if not fitted:  # once, in the lr's warm-up (a state with no plan stopped before)
                ends.append(time.time())
                if len(ends) == 1 + TIMED_STEPS:  # the first step warms up: not timed
                    step_s = float(np.median(np.diff(ends)))
                    left = deadline - time.time() - AFTER_HEAD_S
                    share = fitted_share(left, step_s, *still_to_do())
                    fit(step + int((lesson.steps - step) * share), int(lesson.head_steps * share))
                    said_if_cut(lesson.steps, asked.steps, "the denoiser's")
                    said_when_it_ends(step_s)
                    bar.total = lesson.steps
            if step % lesson.save_every == 0 or step == lesson.steps:
                save_state(g.get_state())  # the last: a stop in the head's minute loses no step
    except KeyboardInterrupt:
        save_state(at_start)  # Ctrl-C keeps the work: --resume picks up here
        raise
    finally:
        bar.close()
    model.requires_grad_(False).eval()
    drawn = head_loss = None
    if head:
        data = HeadFootage(model, footage, key, wins, progress)
        footage.shown = None  # HeadFootage holds its own copies: not twice for the head's minutes
        index = model.config.upsampler.heads.index(key)
        if deadline and head_start is None:  # fitted again, its own steps timed: up to all asked
            room = deadline - time.time() - AFTER_HEAD_S
            fits = int(room / head_step_seconds(model, index, data))
            fit(step, min(asked.head_steps, max(0, fits)))
            said_if_cut(lesson.head_steps, asked.head_steps, "its output head's")
        head_losses = train_head(model, index, data, lesson.head_steps, lesson.head_lr, g, progress,
                                 head_start, lambda done, rng: save_state(rng, done))
        head_loss = round(float(np.mean(head_losses[-50:])), 5) if head_losses else None
        drawn = data.drawn_db(model.upsampler, index)
        if drawn < LEARNT_DB:
            warn(f"the new look is drawn at only {drawn} dB on the frames it was taught on "
                 f"(footage it was not taught on scores lower)")
    # the reader again, with the new look, never trained on what the source's avoided
    held_out = (before.checkpoint_config.get("prompts") or {}).get("avoided") or []
    model.reader, _ = train_reader(model.config.reader, lesson.reader_steps, seed=lesson.seed,
                                   avoided=read_avoided([p for p in held_out if Path(p).is_file()]),
                                   progress=progress)
    report = {"source": str(source), "pairs": str(pairs), "name": key, "prompts": prompts,
              "clips": len(clips), "frames": footage.frames, "redrawn_db": redrawn,
              "warning": "; ".join(warnings) or None, **dataclasses.asdict(lesson),
              "final_loss": round(float(np.mean(losses[-20:])), 5), "head_final_loss": head_loss,
              "drawn_db": drawn, **precision.to_dict(),
              "seconds": round(time.time() - t0, 1)}
    extra = {k: v for k, v in before.checkpoint_config.items() if k not in ("lsd_version", "model")}
    model.save(out / "model", extra | {"learn": report}, dtype=stored)
    if (out / "state").exists():
        shutil.rmtree(out / "state")  # finished: nothing to resume
    return {"model": str(out / "model"), **report}
