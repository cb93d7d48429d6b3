"""The whole model: codec (frames <-> latents), prompt encoder and causal denoiser, built
from one `ModelConfig`, saved and loaded as a checkpoint directory."""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from .. import __version__
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..config import ModelConfig, SampleConfig
from .codec import build_codec, upgraded_names
from .denoiser import CausalDenoiser
from .history_cache import HistoryCache
from .prompt_reader import PromptReader
from .upsampler import Upsampler
from .text import build_text_encoder, normalize_prompt


class LSDModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.codec = build_codec(config.codec)
        self.text = build_text_encoder(config.text)
        # one vector per look taught by `lsd learn` (config.text.learned), used instead of
        # the prompt encoder's embedding of its name and prompts
        learned = config.text.learned
        self.register_parameter("learned_looks", nn.Parameter(
            torch.zeros(len(learned), config.text.out_dim)) if learned else None)
        self.denoiser = CausalDenoiser(config.denoiser, config.latent_channels,
                                       config.latent_size, config.text.out_dim)
        self.reader = PromptReader(config.reader) if config.reader.looks else None
        self.upsampler = Upsampler(config.upsampler) if config.upsampler.channels else None
        self.checkpoint_config: dict = {}  # set by `load`

    @property
    def sample(self) -> SampleConfig:
        """How this model's streams sample: its checkpoint's `sample` section, else the
        defaults."""
        return SampleConfig.from_dict(self.checkpoint_config.get("sample") or {})

    def encode_prompts(self, prompts: list[str], code: torch.Tensor | None = None) -> torch.Tensor:
        """Prompt embeddings (B, E), moved by the stream's picks code where the model has a
        choice input and a code is given. A model with a prompt reader embeds a prompt it
        was not trained on as the canonical prompt of the look it reads it as."""
        if self.reader is not None:
            prompts = self.reader.rewritten(list(prompts))
        embedded = self.text(prompts)
        if self.config.text.learned:
            embedded = self._with_learned(prompts, embedded)
        return self.denoiser.with_choice(embedded, code)

    def _with_learned(self, prompts: list[str], embedded: torch.Tensor) -> torch.Tensor:
        """`embedded` with each prompt of a learnt look (its name, or a prompt the reader
        knows as that look's) replaced by the look's vector."""
        names = self.config.text.learned
        look = lambda p: self.reader.look_of(p) if self.reader is not None else normalize_prompt(p)
        which = [names.index(look(p)) if look(p) in names else -1 for p in prompts]
        if max(which) < 0:
            return embedded
        taught = torch.tensor([w >= 0 for w in which], device=embedded.device)[:, None]
        vectors = self.learned_looks[torch.tensor([max(w, 0) for w in which])].to(embedded)
        return torch.where(taught, vectors, embedded)

    def new_cache(self) -> HistoryCache:
        return self.denoiser.new_cache()

    def parameter_counts(self) -> dict[str, int]:
        parts = {"codec": self.codec, "text": self.text, "denoiser": self.denoiser,
                 "reader": self.reader or nn.Module(), "upsampler": self.upsampler or nn.Module()}
        counts = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
        counts["total"] = sum(counts.values())
        return counts

    def save(self, path: str | os.PathLike, extra_config: dict | None = None,
             extra_files: dict[str, str] | None = None, dtype: torch.dtype | None = None):
        """Atomic checkpoint: model.safetensors (weights and buffers, cast to `dtype` if
        given) + config.yaml, whose `model` section rebuilds this model; extra_config adds
        other top-level sections (training settings, provenance)."""
        config = {"lsd_version": __version__, "model": self.config.to_dict(), **(extra_config or {})}
        tensors = self.state_dict()
        if dtype is not None:
            tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        return save_checkpoint(path, tensors, config, extra_files)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
             dtype: torch.dtype | None = None) -> "LSDModel":
        tensors, config = load_checkpoint(path, device)
        tensors = upgraded_names(tensors)
        if "model" not in config:
            raise CheckpointError(f"{path}: config.yaml has no 'model' section")
        try:
            model_config = ModelConfig.from_dict(config["model"])
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: bad model config ({e})") from e
        with torch.device("meta"):  # the shapes the config asks for, allocating nothing
            expected = cls(model_config).state_dict()
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise CheckpointError(f"{path}: weights do not match the config (missing: "
                                  f"{', '.join(missing[:5]) or 'none'}; unexpected: "
                                  f"{', '.join(unexpected[:5]) or 'none'})")
        wrong = [k for k, v in tensors.items() if v.shape != expected[k].shape]
        if wrong:
            raise CheckpointError(f"{path}: tensor shapes do not match the config: "
                                  f"{', '.join(wrong[:5])}")
        broken = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
        if broken:
            raise CheckpointError(f"{path}: {len(broken)} weight tensors hold NaN or inf "
                                  f"(e.g. {broken[0]}): the model would output nothing")
        model = cls(model_config).to(device)
        # without a compute dtype the storage dtype stays (a bf16 checkpoint loads as bf16)
        dtypes = {v.dtype for v in tensors.values() if v.is_floating_point()}
        if dtype is None and len(dtypes) == 1:
            dtype = dtypes.pop()
        if dtype is not None:
            model = model.to(dtype)
        model.load_state_dict(tensors)  # copies, casting each tensor to the model's dtype
        model.checkpoint_config = config  # the other sections (sampling settings, provenance)
        return model.eval()


def load(path: str | os.PathLike, device: str | torch.device = "cpu",
         dtype: torch.dtype | None = None) -> LSDModel:
    """Rebuild a model from a checkpoint directory (eval mode; never unpickles), cast to the
    compute `dtype` (None: the checkpoint's storage dtype; lsd.precision decides one)."""
    return LSDModel.load(path, device, dtype)
