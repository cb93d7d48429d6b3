"""Streaming: the engine (Stream), frame sources, output sinks and real-time pacing."""


def __getattr__(name):
    if name == "Stream":  # lazily: `lsd.stream.sources` must not import torch
        from .engine import Stream

        return Stream
    raise AttributeError(f"module 'lsd.stream' has no attribute {name!r}")


__all__ = ["Stream"]
