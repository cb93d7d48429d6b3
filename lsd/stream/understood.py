"""What a prompt was understood as: the look it asks for, with a confidence, and whether it
asks for a look at all.

A model with a prompt reader (`lsd prompts`; lsd.models.prompt_reader) reads the prompt:
the confidence is the reader's probability, and a prompt it reads as "none" is unknown.
A model without one falls back to the prompt encoder: the look whose training prompts the
embedding lies nearest, by cosine similarity, unknown below UNKNOWN. A stream keeps the
look it has when asked for an unknown one (see `Stream.set_prompt`), and says so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..styles import STYLES
from .prompt_mix import parse_mix

# cosine below which a prompt is no known look (models without a reader); set between
# held-out paraphrases and prompts for looks LSD lacks (docs/journal.md)
UNKNOWN = 0.8


class Looks:
    """A model's looks, as its prompt reader (or, lacking one, its encoder) tells them."""

    def __init__(self, model):
        self.model = model
        # the looks by name: the styles, and those taught by `lsd learn` (with their prompts)
        self.taught = {k: v for k, v in model.config.reader.looks.items()
                       if k in model.config.text.learned}
        self.all = [*STYLES, *self.taught]
        if model.reader is None:
            self.names = [n for n, s in STYLES.items() for _ in s.prompts]
            prompts = [p for s in STYLES.values() for p in s.prompts]
            with torch.no_grad():
                self.embeddings = F.normalize(model.text(prompts).float(), dim=-1)

    @torch.no_grad()
    def nearest(self, prompt: str) -> tuple[str, float, bool]:
        """The look a plain prompt asks for, the confidence, and whether it is a look at all."""
        if self.model.reader is not None:
            return self.model.reader.read([prompt])[0]
        e = F.normalize(self.model.text([prompt]).float(), dim=-1)[0]
        sims = self.embeddings @ e.to(self.embeddings.device)
        best = int(sims.argmax())
        confidence = round(float(sims[best]), 3)
        return self.names[best], confidence, confidence >= UNKNOWN

    def understood(self, prompt: str) -> list[dict]:
        """Each part of the prompt (one, or a mix's) as {"look", "confidence", "known",
        "weight"}."""
        return [{"look": look, "confidence": confidence, "known": is_look, "weight": round(w, 3)}
                for part, w in parse_mix(prompt)
                for look, confidence, is_look in [self.nearest(part)]]


def looks_of(model) -> Looks:
    """The model's Looks, made once and kept on it (every stream on it shares them)."""
    if getattr(model, "looks", None) is None:
        model.looks = Looks(model)
    return model.looks


def known(understood: list[dict]) -> bool:
    return all(part["known"] for part in understood)


def said(understood: list[dict]) -> str:
    """ "thermal 0.91", or "thermal 0.95 x0.5 + pencil_sketch 0.97 x0.5" for a mix."""
    if len(understood) == 1:
        return f"{understood[0]['look']} {understood[0]['confidence']:.2f}"
    return " + ".join(f"{p['look']} {p['confidence']:.2f} x{p['weight']:g}" for p in understood)
