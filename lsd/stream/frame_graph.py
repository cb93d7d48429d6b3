"""A frame's device work as one pure function of tensors, for a runtime that runs graphs.

A stream's step reads the history cache and writes the new frame into it. A graph runtime
(OpenVINO) wants neither state nor Python: it gets the cache's keys, values and key ages as
inputs and gives back, beside the image and the latent, the keys and values the frame
would have written; the caller writes those into the real cache (`commit`). `FrameCache`
is the stand-in that makes the streaming code do exactly that: it reads from the given
tensors and collects the writes, so the traced graph is the eager code itself, steps,
guidance and commit included, not a copy of it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models.history_cache import HistoryCache

CACHE_INPUTS = ("keys", "values", "key_ages")


class FrameCache:
    """A HistoryCache stand-in for one traced frame: reads `keys`/`values` as they are,
    collects what the frame writes, one (keys, values) per layer."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, key_ages: torch.Tensor):
        self.keys, self.values, self.ages = keys, values, key_ages
        self.written: list[tuple[torch.Tensor, torch.Tensor]] = []

    def layer(self, index: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heads = like.shape[1]  # a pruned layer uses its first heads
        return self.keys[index, :, :heads], self.values[index, :, :heads]

    def key_ages(self) -> torch.Tensor:
        return self.ages

    def write(self, index: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.written.append((keys, values))

    def advance(self) -> None:
        pass  # the caller's cache advances (commit)


class FrameFunction(nn.Module):
    """work(cache, **inputs) -> (z_in, image, z) as a function of tensors only:
    forward(*inputs, keys, values, key_ages) -> (z_in, image, z, keys_0.., values_0..).
    `model` is what `work` runs: a submodule here, so its weights are the graph's."""

    def __init__(self, work, names: list[str], model: nn.Module):
        super().__init__()
        self.work, self.names, self.model = work, list(names), model

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = dict(zip(self.names, tensors))
        cache = FrameCache(*tensors[len(self.names):])
        out = self.work(cache, **inputs)
        return (*out, *(k for k, _ in cache.written), *(v for _, v in cache.written))


def cache_inputs(cache: HistoryCache) -> list[torch.Tensor]:
    """The cache as the frame function reads it (keys, values, key ages)."""
    return [cache.keys, cache.values, cache.key_ages()]


def commit(cache: HistoryCache, written: list[torch.Tensor]) -> None:
    """Write a frame's per-layer keys then values (the frame function's extra outputs)
    into the cache, and age it, as the eager step does."""
    layers = len(written) // 2
    for i in range(layers):
        cache.write(i, written[i], written[layers + i])
    cache.advance()
