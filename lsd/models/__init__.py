"""The LSD model: codec, prompt encoder, causal denoiser with its history cache."""

from .codec import Codec, ConvCodec, PatchCodec, build_codec
from .denoiser import CausalDenoiser
from .history_cache import HistoryCache
from .lsd_model import LSDModel, load
from .text import ByteTextEncoder, build_text_encoder, normalize_prompt

__all__ = ["Codec", "ConvCodec", "PatchCodec", "build_codec", "CausalDenoiser",
           "HistoryCache", "LSDModel", "load", "ByteTextEncoder", "build_text_encoder",
           "normalize_prompt"]
