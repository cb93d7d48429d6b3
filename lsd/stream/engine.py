"""`lsd.Stream`: one frame in, one frame out, forever, in constant memory.

    stream = Stream.from_pretrained("checkpoints/lsd-tiny", prompt="ink wash painting")
    out = stream.step(frame)            # HxWx3 uint8 in; out at out_size (the aspect kept)
    stream.set_prompt("thermal camera", blend_frames=12)

A step: resize the frame to the model's size (stretching if the aspect differs; the output
is stretched back, so geometry survives), encode, `steps` denoising steps against the
history cache, commit the new frame into the cache, decode, and draw the output at the
output size (the model's upsampler, where it has one; else a resize). The latency in
`stats` covers all of it. Nothing grows with the stream: the cache is a ring buffer and the
latency window is a fixed-length deque.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections import OrderedDict, deque

import numpy as np
import torch

from ..config import CELL, SampleConfig, on_grid
from ..diffusion import commit_frame, generate_frame
from ..models import LSDModel, load
from ..models.upsampler import SMALLEST_SIDE, output_size, resize
from ..precision import Precision, decide
from ..styles.picks import null_code, picks_code
from .backends import decide_backend
from .compiled import compile_streaming
from .cuda_graph import GraphedStep
from .drawing import Drawing
from .look_motion import grey
from .openvino_step import OpenVINOGraph, OpenVINOStep
from .prompt_mix import parse_mix
from .understood import known, looks_of, said

LATENCY_WINDOW = 1000  # frames the latency percentiles are taken over
PROMPT_CACHE = 32  # prompt embeddings kept (switching back to a recent prompt is free)
MAX_PROMPT = 200  # characters a prompt may have (a model reads its first text.max_bytes bytes)


def check_device(device: str | torch.device) -> torch.device:
    """The device, or a clear error when this torch cannot run on it."""
    try:
        device = torch.device(device)
    except RuntimeError:  # "banana"
        raise ValueError(f"unknown device {str(device)!r}: use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but this torch sees no CUDA device "
                         f"(torch {torch.__version__}); use --device cpu")
    return device


class Stream:
    def __init__(self, model: LSDModel, prompt: str = "", sample: SampleConfig | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
                 seed: int = 0, backend: str | None = None, cuda_graph: bool | None = None,
                 out_size: int | None = None):
        """`sample`: how each frame is sampled (None: the checkpoint's, `model.sample`; a
        command line changes it with `model.sample.but(steps=...)`). `out_size`: the output's
        short side (the input's aspect kept); None: the model's upsampler's size where it
        has one (lsd.models.upsampler) or the input's, whichever is smaller; else the input
        frame's own size."""
        self.sample = model.sample if sample is None else sample
        if self.sample.guided and not model.config.denoiser.choice:
            raise ValueError("sample.choice_guidance needs a model with a choice input (denoiser.choice)")
        # settle k: the first frame after an empty history is sampled k extra times, each
        # pass reading the one before as history, before it is shown. A pick made from the
        # noise alone (pop_art's palette) comes out as a patchwork of several; the passes
        # can pull it toward one, as the model was trained to mend a damaged history, before
        # later frames copy it. Costs k frames' work once.
        self._settled = False  # has the history's first frame been settled?
        self.device = check_device(device)
        # the compute dtype: as told (a torch dtype, or a --dtype name), else lsd.precision's
        self.precision = (Precision(dtype, "as told") if isinstance(dtype, torch.dtype)
                          else decide(self.device, dtype))
        self.backend = decide_backend(self.device, backend)  # what runs the frames
        # torch's dtype: OpenVINO gets an fp32 graph and computes it in the compute dtype
        openvino = self.backend.name == "openvino"
        self.dtype = dtype = torch.float32 if openvino else self.precision.dtype
        self.model = model.to(self.device, dtype).eval()
        self.size = tuple(model.config.frame_size)
        if out_size is not None and (not isinstance(out_size, int)
                                     or not on_grid(out_size, SMALLEST_SIDE)):
            raise ValueError(f"out_size must be a multiple of {CELL} from {SMALLEST_SIDE} on, "
                             f"not {out_size!r}")
        self.out_size = out_size  # None: the default (shown_size)
        self._look: torch.Tensor | None = None  # the last coarse look shown (upsampler)
        self._grey: torch.Tensor | None = None  # the grey of the input it was drawn from
        self.cache = model.new_cache()
        if self.backend.name == "compile":  # the first step takes the compile time
            compile_streaming(self.model, self.cache)
        self._openvino: OpenVINOStep | None = None  # built on the first frame
        # and the upsampler's, for its frame size: the gains' (None) and each output head's
        self._drawings: dict[int | None, OpenVINOGraph] = {}
        # on by default on a GPU; on the CPU the flag runs the same static-buffer code
        # without a graph (lsd.stream.cuda_graph), for tests
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else bool(cuda_graph)
        self._graphed: GraphedStep | None = None  # captured on the first frame
        self.seed = seed
        self.g = torch.Generator().manual_seed(seed)
        # a model with a choice input is told the stream's picks, the same for every frame
        # and prompt
        self.code = (torch.from_numpy(picks_code(seed))[None]
                     if model.config.denoiser.choice else None)
        # choice guidance (lsd.diffusion.guidance) steers away from the prompt told no picks
        self._choice_shift = None  # what the picks add to a prompt embedding beyond no picks
        if self.sample.guided:
            with torch.no_grad():  # the projection is linear: the shift is that of the difference
                self._choice_shift = self.model.denoiser.with_choice(
                    torch.zeros(1, self.model.text.out_dim, device=self.device, dtype=dtype),
                    self.code - torch.from_numpy(null_code())[None])
        self._embeddings: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.prompt = prompt
        self._embedding = self._embed(prompt)
        self.looks = looks_of(self.model)
        self._understand(prompt)
        self._mix = self._mix_of(self.understood)
        # (embedding, mix) from, to; frames done, total
        self._blend: tuple[tuple, tuple, int, int] | None = None
        self._latency_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.frames = 0
        self.dropped = 0  # set by a live runner that skipped camera frames
        self.recoveries = 0  # steps that produced NaN/inf and were redone with no history

    @property
    def steps(self) -> int:
        return self.sample.steps

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, prompt: str = "", steps: int | None = None,
                        device: str | torch.device = "cpu", **kwargs) -> "Stream":
        """A stream on the checkpoint at `path`, sampled as it says (with `steps` steps, if
        given)."""
        model = load(path, check_device(device))
        return cls(model, prompt, model.sample.but(steps=steps), device, **kwargs)

    # -- prompts -----------------------------------------------------------------------------

    @torch.no_grad()
    def _embed(self, prompt: str) -> torch.Tensor:
        """The prompt's embedding; a mix ("a + b", "a:0.7, b:0.3") is its parts' weighted mean."""
        if prompt in self._embeddings:
            self._embeddings.move_to_end(prompt)
        else:
            mix = parse_mix(prompt)
            texts = [text for text, _ in mix]
            weights = torch.tensor([w for _, w in mix], device=self.device)[:, None]
            parts = self.model.encode_prompts(texts, self.code)
            self._embeddings[prompt] = (weights.to(parts.dtype) * parts).sum(0, keepdim=True)
            if len(self._embeddings) > PROMPT_CACHE:
                self._embeddings.popitem(last=False)
        return self._embeddings[prompt]

    def _understand(self, prompt: str, understood: list[dict] | None = None) -> None:
        """What `prompt` was understood as (lsd.stream.understood), and a warning where it
        names no look the model knows; a first prompt is then played as its nearest look."""
        self.understood = understood or self.looks.understood(prompt)
        self.warning = None if known(self.understood) else (
            f"{prompt!r} names no look LSD knows (nearest: {said(self.understood)}); "
            f"playing the nearest. Known looks: {', '.join(self.looks.all)}")

    def _mix_of(self, understood: list[dict]) -> torch.Tensor:
        """(1, heads): how much of each learnt look's output head a prompt draws with
        (lsd.models.look_head): the weights of its parts read as that look."""
        heads = self.model.config.upsampler.heads if self.model.upsampler is not None else []
        mix = torch.zeros(1, len(heads))
        for part in understood:
            if part["look"] in heads:
                mix[0, heads.index(part["look"])] += part["weight"]
        return mix

    def set_prompt(self, prompt: str, blend_frames: int = 12) -> None:
        """Switch prompt; the embedding moves in a straight line from where it is now to the
        new one over `blend_frames` frames (0 or 1: at once), so the picture never jumps. A
        prompt that names no look the model knows is not switched to: the stream keeps the
        look it has, and `warning` says so."""
        understood = self.looks.understood(prompt)
        if not known(understood):
            self.understood = understood
            self.warning = (f"{prompt!r} names no look LSD knows (nearest: {said(understood)}); "
                            f"still playing {self.prompt!r}. Known looks: {', '.join(self.looks.all)}")
            return
        target = (self._embed(prompt), self._mix_of(understood))
        self.prompt = prompt
        self._understand(prompt, understood)  # read once
        if blend_frames <= 1:
            (self._embedding, self._mix), self._blend = target, None
        else:
            self._blend = ((self._embedding, self._mix), target, 0, int(blend_frames))

    def _next_embedding(self) -> torch.Tensor:
        """The prompt embedding of this frame (and its heads' mix, `_mix`), blended."""
        if self._blend is not None:
            start, end, done, total = self._blend
            done += 1
            self._embedding, self._mix = (torch.lerp(a, b, done / total) for a, b in zip(start, end))
            self._blend = None if done >= total else (start, end, done, total)
        return self._embedding

    # -- frames ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the history (a scene change, a new camera); the prompt stays."""
        self.cache.reset()
        self._settled = False
        self._look = self._grey = None

    @torch.no_grad()
    def rebuild_history(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Make the history these (input frame, output frame) pairs, oldest first: reset the
        cache, then encode each output and commit it against its input with the current
        prompt, as `step` commits. For experiments on the history (`lsd bench corruption`).
        `step` commits the sampled latent itself, not the encoding of its decoded 8-bit
        frame, so rebuilding from the stream's own outputs matches it only up to the codec's
        round trip. The sampling noise generator is not touched."""
        self.cache.reset()
        self._settled = True  # a history made here is not settled over
        g = torch.Generator().manual_seed(self.seed + self.frames)  # for noised commits only
        # a last-step commit holds the frame at the last step's level, told that step size
        sample = self.sample
        level, d = sample.context_t, 0.0
        if sample.commit == "last_step":
            level = 1 / sample.steps
            d = level if sample.shortcut else 0.0
        for frame, output in pairs[max(0, len(pairs) - self.cache.frames):]:
            z_in = self.model.codec.encode(self._to_model(frame)[0])
            latent = self.model.codec.encode(self._to_model(output)[0])
            ctx = torch.randn(z_in.shape, generator=g).to(self.device, self.dtype) if level > 0 else None
            commit_frame(self.model.denoiser, self.cache, latent, z_in, self._embedding, level, ctx, d)

    def shown_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The (height, width) a frame of `frame_hw` is shown at (see out_size)."""
        up = self.model.upsampler
        if self.out_size:
            return output_size(frame_hw, self.out_size)
        if up is None:
            return tuple(frame_hw)
        return up.shown_size(frame_hw)

    def _to_model(self, frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frame at the model's size, in the model's dtype, and (for an upsampler) at the
        output size in fp32; the second is shrunk from the camera frame in uint8 (a 720p
        frame turned to floats first costs milliseconds) and the first from it."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"Stream.step wants an HxWx3 uint8 frame, got {frame.dtype} "
                             f"{tuple(frame.shape)}")
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None]
        shown = None
        if self.model.upsampler is not None:
            size = self.shown_size(frame.shape[:2])
            shown = x = resize(x, size).float() / 255.0
        else:
            x = x.float() / 255.0
        x = resize(x, self.size)
        # one memory layout whether resized or not: a compiled encoder would recompile on it
        return x.to(self.dtype).contiguous(), shown

    def _to_frame(self, x: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        x = resize(x.float(), size)
        x = (x[0].clamp(0, 1) * 255).round().to(torch.uint8)
        return x.permute(1, 2, 0).cpu().numpy()

    def _shares(self) -> list[tuple[int | None, float]]:
        """The drawings this frame is drawn by, and each one's share: a taught look's output
        head (lsd.models.look_head) for the part of the prompt read as that look, the
        upsampler's gains (None) for the rest."""
        mix = self._mix[0].tolist()
        return [(head, w) for head, w in [(None, 1 - sum(mix)), *enumerate(mix)] if w > 1e-3]

    def _drawing(self, head: int | None, inputs: dict[str, torch.Tensor]):
        """inputs -> (frame shown, coarse look, grey), drawn with `head` (None: the gains):
        lsd.stream.drawing, eager or through an OpenVINO graph for these inputs' shapes."""
        up = self.model.upsampler
        if self.backend.name != "openvino":
            return lambda tensors: Drawing(up, head)(**tensors)
        if head not in self._drawings or not self._drawings[head].takes(inputs):
            # the old looks' drawing and each taught look's, compiled together (shared by the
            # model's streams): a prompt switch then never waits for a compile (~0.5 s)
            self._drawings = {h: OpenVINOGraph(lambda h=h: Drawing(up, h), up, inputs,
                                               self.precision.dtype,
                                               ("drawing", up.look_size, up.look_memory, h))
                              for h in (None, *range(len(up.heads)))}
        return self._drawings[head]

    def _drawn(self, image: torch.Tensor, frame: np.ndarray,
               shown: torch.Tensor | None) -> np.ndarray:
        """The model's output as the frame shown: drawn by the upsampler from it and the
        input at the output size (`shown`), where the model has one; else stretched. A
        prompt read as several looks (a mix, a switch's blend) is drawn by each of their
        drawings in its share."""
        up = self.model.upsampler
        if up is None:
            return self._to_frame(image, self.shown_size(frame.shape[:2]))
        if self._look is None:
            self._look, self._grey = up.coarse(image.float()), grey(shown)
        inputs = {"image": image, "last": self._look, "frame": shown, "before": self._grey}
        drawn = [(w, *self._drawing(head, inputs)(inputs)) for head, w in self._shares()]
        _, out, self._look, self._grey = drawn[0]  # the looks and greys are the same
        if len(drawn) > 1:
            total = sum(w for w, *_ in drawn)
            out = (sum(w * o.float() for w, o, *_ in drawn) / total).round().to(torch.uint8)
        return out.cpu().numpy()

    def _work(self, cache, x: torch.Tensor, prompt: torch.Tensor, noise: torch.Tensor,
              ctx: torch.Tensor | None = None,
              unguided: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A frame's device work: encode, sample against `cache` (guided away from
        `unguided`, if given) and commit, decode. Returns (input latent, output image,
        output latent)."""
        z_in = self.model.codec.encode(x)
        z = generate_frame(self.model.denoiser, cache, z_in, prompt, noise, self.sample, ctx,
                           unguided)
        return z_in, self.model.codec.decode(z, x), z

    def _run(self, x: torch.Tensor, prompt: torch.Tensor):
        """_work on noise from the stream's CPU generator, through the graph if on."""
        cfg = self.model.config
        shape = (x.shape[0], cfg.latent_channels, *cfg.latent_size)
        draw = lambda: torch.randn(shape, generator=self.g).to(self.device, self.dtype)
        inputs = {"x": x, "prompt": prompt, "noise": draw()}
        if self.sample.context_t > 0:
            inputs["ctx"] = draw()
        if self._choice_shift is not None:  # the prompt without the picks, to guide away from
            inputs["unguided"] = prompt - self._choice_shift
        if self.cache.keys is None and (self.cuda_graph or self.backend.name == "openvino"):
            # a graph needs the buffers' shapes (and CUDA's, their final addresses)
            head_dim = self.model.denoiser.cfg.head_dim
            self.cache.allocate(x.shape[0], head_dim, self.dtype, self.device)
        if self.backend.name == "openvino":
            if self._openvino is None or list(inputs) != self._openvino.names:
                self._openvino = OpenVINOStep(self._work, self.model, inputs, self.cache,
                                              self.precision.dtype, dataclasses.astuple(self.sample))
            return self._openvino(**inputs)
        if not self.cuda_graph:
            return self._work(self.cache, **inputs)
        if self._graphed is None:
            self._graphed = GraphedStep(functools.partial(self._work, self.cache), inputs,
                                        self.cache)
        return self._graphed(**inputs)

    def _sample(self, x: torch.Tensor, prompt: torch.Tensor):
        """_run, after the settling passes if the history is new."""
        if not self._settled:
            self._settled = True
            for _ in range(self.sample.settle):
                self._run(x, prompt)
        return self._run(x, prompt)

    @torch.no_grad()
    def step(self, frame: np.ndarray) -> np.ndarray:
        """The output frame for this input frame (same size), generated now: no lag."""
        t0 = time.perf_counter()
        (x, shown), prompt = self._to_model(frame), self._next_embedding()
        z_in, image, z = self._sample(x, prompt)
        if not torch.isfinite(z).all():
            # a poisoned history would poison every later frame: drop it and redo this one
            self.recoveries += 1
            self.reset()
            z_in, image, z = self._sample(x, prompt)
            if not torch.isfinite(z).all():
                self.reset()
                # nothing sane came out: show the input's latent, try again next frame
                image = self.model.codec.decode(z_in, x)
        out = self._drawn(image, frame, shown)
        self._latency_ms.append((time.perf_counter() - t0) * 1000)
        self.frames += 1
        return out

    @property
    def last_ms(self) -> float:
        return self._latency_ms[-1] if self._latency_ms else math.nan

    @property
    def stats(self) -> dict:
        ms = np.array(self._latency_ms) if self._latency_ms else np.array([math.nan])
        p = lambda q: round(float(np.percentile(ms, q)), 2)
        return {"frames": self.frames, "dropped": self.dropped, "recoveries": self.recoveries,
                "ms_p50": p(50), "ms_p95": p(95), "ms_p99": p(99),
                "latency_window": len(self._latency_ms), "steps": self.steps,
                "prompt": self.prompt, "understood_as": said(self.understood),
                "warning": self.warning, "cache_bytes": self.cache.nbytes(),
                **self.precision.to_dict(), **self.backend.to_dict()}
