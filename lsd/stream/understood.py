"""What a prompt was understood as: the looks whose training prompts its embedding lies
nearest (cosine similarity of the prompt encoder's outputs), the similarity being the
confidence. Below UNKNOWN the prompt names no look the model knows: a stream then keeps
the look it had (see `Stream.set_prompt`) and says so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..styles import STYLES
from .prompt_mix import parse_mix

# cosine below which a prompt is no known look; set between held-out paraphrases and
# prompts for looks LSD lacks (tests/data/prompts_unknown.txt; docs/journal.md)
UNKNOWN = 0.8


class Looks:
    """A model's looks, as its prompt encoder places their training prompts."""

    def __init__(self, model):
        self.model = model
        self.names = [n for n, s in STYLES.items() for _ in s.prompts]
        prompts = [p for s in STYLES.values() for p in s.prompts]
        with torch.no_grad():
            self.embeddings = F.normalize(model.text(prompts).float(), dim=-1)

    @torch.no_grad()
    def nearest(self, prompt: str) -> tuple[str, float]:
        """The look a plain prompt lies nearest, and the cosine similarity."""
        e = F.normalize(self.model.text([prompt]).float(), dim=-1)[0]
        sims = self.embeddings @ e.to(self.embeddings.device)
        best = int(sims.argmax())
        return self.names[best], round(float(sims[best]), 3)

    def understood(self, prompt: str) -> list[dict]:
        """Each part of the prompt (one, or a mix's) as {"look", "confidence", "weight"}."""
        return [{"look": look, "confidence": sim, "weight": round(w, 3)}
                for part, w in parse_mix(prompt) for look, sim in [self.nearest(part)]]


def looks_of(model) -> Looks:
    """The model's Looks, made once and kept on it (every stream on it shares them)."""
    if getattr(model, "looks", None) is None:
        model.looks = Looks(model)
    return model.looks


def known(understood: list[dict]) -> bool:
    return all(part["confidence"] >= UNKNOWN for part in understood)


def said(understood: list[dict]) -> str:
    """ "thermal 0.91", or "thermal 0.95 x0.5 + pencil_sketch 0.97 x0.5" for a mix."""
    if len(understood) == 1:
        return f"{understood[0]['look']} {understood[0]['confidence']:.2f}"
    return " + ".join(f"{p['look']} {p['confidence']:.2f} x{p['weight']:g}" for p in understood)
