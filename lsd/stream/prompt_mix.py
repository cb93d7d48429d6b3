"""Mixed prompts: "thermal camera + pencil sketch" (equal parts) or "ink wash:0.7, sepia:0.3"
(weighted). A mix streams the weighted mean of its parts' prompt embeddings: a point on the
straight line a prompt switch blends along, held still.

A comma splits a prompt only where every part ends in ":WEIGHT", so an ordinary prompt with
commas ("flat colours, bold outlines") stays one prompt.
"""

from __future__ import annotations

import math
import re

WEIGHTED = re.compile(r"^(.*\S)\s*:\s*([0-9]*\.?[0-9]+)$")  # "ink wash:0.7"


def parse_mix(prompt: str) -> list[tuple[str, float]]:
    """[(part, weight)] with the weights summing to 1; a plain prompt is [(prompt, 1.0)]."""
    if " + " in prompt:
        parts = prompt.split(" + ")
    elif "," in prompt and all(WEIGHTED.match(p.strip()) for p in prompt.split(",")):
        parts = prompt.split(",")
    else:
        return [(prompt, 1.0)]
    mix = []
    for part in parts:
        part = part.strip()
        weighted = WEIGHTED.match(part)
        text, weight = (weighted[1], float(weighted[2])) if weighted else (part, 1.0)
        if not text:
            raise ValueError(f"empty part in the mixed prompt {prompt!r}")
        mix.append((text, weight))
    total = sum(w for _, w in mix)
    if not math.isfinite(total) or total <= 0:
        raise ValueError(f"the weights of {prompt!r} must add up to more than 0")
    return [(text, w / total) for text, w in mix]
