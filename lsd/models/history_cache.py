"""The history cache: keys and values of the last k frames, for every layer, in a ring
buffer of fixed size. A frame's keys and values are computed once (when the frame is
committed) and reused by every denoising step of the frames after it, so a step costs the
same at frame 10 and at frame 10,000,000, and memory never grows.

Slots carry an *age* instead of a frame number: age a means "written a frames before the
frame being generated now", 0 means empty. Ages stay in 0..k forever, so nothing in the
cache grows with the length of the stream.

The slot being written is a tensor, not a Python int, and writes are index copies: a
compiled streaming pass (`lsd.stream.compiled`) then sees the same graph at every frame
instead of one per slot.
"""

from __future__ import annotations

import torch


class HistoryCache:
    def __init__(self, layers: int, frames: int, tokens: int, heads: int | None = None):
        """heads: the most any layer has (a pruned model's layers differ); by default the
        first layer's."""
        self.layers, self.frames, self.tokens, self.heads = layers, frames, tokens, heads
        self.keys: torch.Tensor | None = None  # (layers, B, heads, slots * tokens, head_dim)
        self.values: torch.Tensor | None = None
        self.age = torch.zeros(frames, dtype=torch.long)
        self.slot = torch.zeros((), dtype=torch.long)  # where the next frame goes (the oldest)
        self.offsets = torch.arange(tokens)  # a slot's token positions, relative to its start

    def reset(self) -> None:
        """Forget the history. The buffers stay allocated but are zeroed too: a masked key
        gets zero attention weight, yet 0 * NaN is NaN, so a poisoned value must not stay."""
        self.age.zero_()
        self.slot.zero_()
        if self.keys is not None:
            self.keys.zero_()
            self.values.zero_()

    def _tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.age, self.slot, self.keys, self.values)
                if t is not None]

    def state(self) -> list[torch.Tensor]:
        """A copy of everything the cache holds (for `load_state`)."""
        return [t.clone() for t in self._tensors()]

    def load_state(self, state: list[torch.Tensor]) -> None:
        """Put back a `state()`, in place: the buffers keep their addresses (a captured CUDA
        graph reads and writes them there)."""
        for mine, saved in zip(self._tensors(), state, strict=True):
            mine.copy_(saved)

    @property
    def filled(self) -> int:
        return int((self.age > 0).sum())

    def allocate(self, batch: int, head_dim: int, dtype: torch.dtype, device: torch.device | str,
                 heads: int = 0) -> None:
        """Allocate the buffers now (else the first write does): a compiled pass then never
        sees an empty cache."""
        heads = max(heads, self.heads or 0)
        shape = (self.layers, batch, heads, self.frames * self.tokens, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros_like(self.keys)
        self.age, self.slot, self.offsets = (
            t.to(device) for t in (self.age, self.slot, self.offsets))

    def layer(self, index: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of one layer, (B, heads, frames * tokens, head_dim) with the heads
        of `like` (a (B, heads, N, head_dim) key); allocated on first use with its dtype,
        device and batch."""
        if self.keys is None:
            b, h, _, hd = like.shape
            self.allocate(b, hd, like.dtype, like.device, h)
        elif self.keys.shape[1] != like.shape[0]:
            raise ValueError(f"history cache holds batch {self.keys.shape[1]}, got {like.shape[0]}")
        heads = like.shape[1]
        return self.keys[index, :, :heads], self.values[index, :, :heads]

    def key_ages(self) -> torch.Tensor:
        """(frames * tokens,) the age of every cached key: 0 (empty) .. k."""
        return self.age.repeat_interleave(self.tokens)

    def write(self, index: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store the current frame's keys/values of one layer in the slot being replaced."""
        cached_k, cached_v = self.layer(index, keys)
        if self.frames:
            span = self.slot * self.tokens + self.offsets
            cached_k.index_copy_(2, span, keys)
            cached_v.index_copy_(2, span, values)

    def advance(self) -> None:
        """The committed frame becomes history: everyone ages by one, it gets age 1."""
        if self.frames == 0:
            return
        self.age.add_(self.age > 0)
        self.age.index_fill_(0, self.slot.view(1), 1)
        self.slot.add_(1).remainder_(self.frames)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._tensors())
