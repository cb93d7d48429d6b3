"""The prompt reader: which look a prompt asks for, however it is phrased.

The denoiser only knows the prompt embeddings it was trained with, and the byte-level
prompt encoder places a phrasing it never saw almost anywhere. The reader is a fastText-style
classifier over hashed words, word pairs and character n-grams (typos and Chinese share
most of their n-grams with the right phrasing), with one class per look and one for
"none of them". A prompt the model was trained on is left as it is; any other is read and
replaced by its look's canonical prompt, so the denoiser only ever sees embeddings it knows
and the trained looks stay exactly as they were. `lsd prompts` trains it.
"""

from __future__ import annotations

import re
import zlib

import torch
import torch.nn as nn

from ..config import ReaderConfig
from .text import normalize_prompt

NONE = "none"  # the class of prompts that name no look the model has


def grams(prompt: str, buckets: int) -> list[int]:
    """Hashed features of a prompt: its words, word pairs, the 2-5 character n-grams of each
    word (with its edges marked), and each CJK character on its own."""
    words = re.findall(r"\w+", normalize_prompt(prompt))
    feats = ["w:" + w for w in words] + ["b:" + a + " " + b for a, b in zip(words, words[1:])]
    for w in words:
        edged = f"<{w}>"
        feats += ["c:" + edged[i:i + n] for n in (2, 3, 4, 5) for i in range(len(edged) - n + 1)]
        feats += ["u:" + c for c in w if ord(c) >= 0x2E80]
    # crc32, not hash(): the same prompt must hash alike in every process
    return [zlib.crc32(f.encode("utf-8")) % buckets for f in feats] or [0]


class PromptReader(nn.Module):
    def __init__(self, cfg: ReaderConfig):
        super().__init__()
        self.looks = dict(cfg.looks)
        self.classes = [*self.looks, NONE]
        self.known = {normalize_prompt(p): look for look, ps in self.looks.items() for p in ps}
        self.buckets = cfg.buckets
        self.embed = nn.EmbeddingBag(cfg.buckets, cfg.dim, mode="mean")
        nn.init.normal_(self.embed.weight, std=0.01)  # an unseen n-gram adds next to nothing
        self.out = nn.Linear(cfg.dim, len(self.classes))

    def forward(self, prompts: list[str]) -> torch.Tensor:
        """(B, looks + 1) logits, the last for "none"."""
        ids = [grams(p, self.buckets) for p in prompts]
        starts = torch.tensor([0] + [len(i) for i in ids[:-1]]).cumsum(0)
        flat = torch.tensor([i for row in ids for i in row])
        dev = self.out.weight.device
        return self.out(self.embed(flat.to(dev), starts.to(dev))).float()

    @torch.no_grad()
    def read(self, prompts: list[str]) -> list[tuple[str, float, bool]]:
        """Per prompt: the look it most likely asks for, that probability, and whether it
        asks for a look at all (that look outweighs "none"). A trained prompt is its own
        look, surely."""
        out = [None] * len(prompts)
        unfamiliar = []
        for i, p in enumerate(prompts):
            look = self.look_of(p)
            if look is not None:
                out[i] = (look, 1.0, True)
            else:
                unfamiliar.append(i)
        if unfamiliar:
            probs = self([prompts[i] for i in unfamiliar]).softmax(-1)
            for i, p in zip(unfamiliar, probs):
                best = int(p[:-1].argmax())
                out[i] = (self.classes[best], round(float(p[best]), 3), bool(p[best] > p[-1]))
        return out

    def look_of(self, prompt: str) -> str | None:
        """The look whose trained prompt this is, if it is one."""
        return self.known.get(normalize_prompt(prompt))

    def rewritten(self, prompts: list[str]) -> list[str]:
        """Each prompt as the prompt encoder should see it: a trained prompt as it is, any
        other as the canonical prompt of the look it is read as."""
        return [p if self.look_of(p) else self.looks[look][0]
                for p, (look, _, _) in zip(prompts, self.read(prompts))]
