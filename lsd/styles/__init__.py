"""The style registry: every style the synthetic world can render a target in."""

from __future__ import annotations

from .base import Renderer, Style
from .frame import FRAME_STYLES
from .memory import MEMORY_STYLES

STYLES: dict[str, Style] = {s.name: s for s in FRAME_STYLES + MEMORY_STYLES}


def get_style(name: str) -> Style:
    if name not in STYLES:
        raise KeyError(f"unknown style {name!r}; known styles: {', '.join(STYLES)}")
    return STYLES[name]


def style_names(kind: str | None = None) -> list[str]:
    return [n for n, s in STYLES.items() if kind is None or s.kind == kind]


__all__ = ["Renderer", "Style", "STYLES", "get_style", "style_names"]
