"""Memory styles: the target depends on the past of the stream, so a model can only get
it right by using its history window. Each renderer is stateful: one per stream, called
frame by frame in order.
"""

from __future__ import annotations

import numpy as np

from .base import Renderer, Style
from .ops import blur, edges, gradient_map, luminance, mix, scale, soft_steps
from .picks import OPTIONS, PICKS, stream_picks

# --- (a) a per-stream random choice made at frame 0 and kept forever --------------------

POP_COLOURS = np.array([
    (0.05, 0.05, 0.2), (0.9, 0.1, 0.15), (1.0, 0.85, 0.0), (0.0, 0.6, 0.95),
    (1.0, 0.4, 0.7), (0.1, 0.8, 0.3), (1.0, 0.5, 0.0), (0.55, 0.2, 0.85),
    (0.0, 0.85, 0.8), (0.98, 0.96, 0.9), (0.35, 0.15, 0.05), (0.7, 0.95, 0.2),
], np.float32)
POP_BANDS = PICKS
POP_OUTLINE = (0.0, 0.0, 0.0)  # edges are drawn in black over any stream's palette
assert len(POP_COLOURS) == OPTIONS


def pop_palette(seed: int) -> np.ndarray:
    """The stream's palette: its picks (styles/picks.py), POP_BANDS distinct colours in
    random order (11,880 choices)."""
    return POP_COLOURS[stream_picks(seed)]


def pop_colours(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every colour a pop_art frame can be drawn in (the options and the outlines' black),
    RGB 0-255, and the indices of those this stream's picks allow."""
    options = np.concatenate([POP_COLOURS, [POP_OUTLINE]]) * 255
    return options, np.append(stream_picks(seed), OPTIONS)


def make_pop_art(seed: int) -> Renderer:
    palette = pop_palette(seed)

    def render(frame: np.ndarray, scene=None) -> np.ndarray:
        grey = luminance(blur(frame, 1.0))
        bands = soft_steps(np.clip((grey - 0.1) / 0.8, 0, 1), POP_BANDS, 30.0)
        flat = gradient_map(bands, palette)
        outline = np.clip(3.0 * edges(luminance(frame), 1.0) - 0.5, 0, 1)
        return mix(flat, POP_OUTLINE, outline)

    return render


# --- (b) decorations placed at random at frame 0, then glued to the background ----------

NIGHT = ((0.01, 0.02, 0.08), (0.12, 0.2, 0.45), (0.65, 0.75, 1.0))
STAR_COLOUR = (1.0, 0.97, 0.8)
STARS_PER_128_SQUARE = (25, 45)
STAR_SIGMA = 0.7  # pixels at 128 px
# what `lsd bench quality` counts as a star (metrics.decoration_mask): a spot 15 brighter
# and 20 warmer (red minus blue, 0-255) than what is around it. The night alone has none:
# its bright details are bluer, not warmer
STAR_SPOT = {"threshold": 15.0, "warmer": 20.0}


class StarField:
    """Screen points glued to a world's background: they move with it, and on a scene cut
    stay where they were on screen and stick to the new background from there. `follow`
    each frame of the world in order, from the one the points were seen on."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.screen = np.stack([x, y, np.ones(len(x))])  # (3, n) last screen positions
        self.world: np.ndarray | None = None  # (3, n) homogeneous world positions

    def follow(self, scene) -> np.ndarray:
        """The points' (3, n) screen positions on this frame (`scene`: a WorldFrame)."""
        if self.world is None or scene.cut:  # (re-)anchor where they are on screen
            self.world = np.linalg.solve(scene.screen_from_world, self.screen)
        self.screen = scene.screen_from_world @ self.world
        return self.screen


class StarGlitter:
    """Stars sprinkled over frame 0, then stuck to the background (a StarField): they move
    with it, hide behind sprites, and on a scene cut stay where they were on screen and
    stick to the new background from there."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 0x57A])
        self.stars: StarField | None = None

    def _start(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        lo, hi = STARS_PER_128_SQUARE
        n = int(self.rng.integers(lo, hi + 1) * h * w / 128**2)
        self.stars = StarField(self.rng.uniform(0, w - 1, n), self.rng.uniform(0, h - 1, n))
        self.brightness = self.rng.uniform(0.6, 1.0, n)

    def __call__(self, frame: np.ndarray, scene=None) -> np.ndarray:
        if scene is None:
            raise ValueError("style 'star_glitter' needs the synthetic world's geometry (a WorldFrame)")
        if self.stars is None:
            self._start(frame)
        screen = self.stars.follow(scene)
        stars = splat(frame.shape[:2], screen[0], screen[1], self.brightness,
                      STAR_SIGMA * scale(frame))
        return mix(self.night(frame), STAR_COLOUR, np.clip(stars * scene.background_visible, 0, 1))

    @staticmethod
    def night(frame: np.ndarray) -> np.ndarray:
        """The picture the stars are drawn over: the frame as a blue night."""
        return gradient_map(np.clip(luminance(frame), 0, 1), NIGHT)


def splat(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, weight: np.ndarray,
          sigma: float) -> np.ndarray:
    """Sum of small Gaussian dots at sub-pixel positions (peak = weight)."""
    h, w = shape
    r = int(np.ceil(3 * sigma))
    d = np.arange(-r, r + 1)
    ix = np.floor(x)[:, None, None] + d[None, None, :]
    iy = np.floor(y)[:, None, None] + d[None, :, None]
    g = np.exp(-((ix - x[:, None, None]) ** 2 + (iy - y[:, None, None]) ** 2) / (2 * sigma**2))
    g = g * weight[:, None, None]
    ix, iy = np.broadcast_arrays(ix, iy)
    ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    canvas = np.zeros(shape, np.float32)
    np.add.at(canvas, (iy[ok].astype(int), ix[ok].astype(int)), g[ok])
    return canvas


# --- (c) integration over time -------------------------------------------------------------

EXPOSURE_RATE = 0.3  # share of the new frame in the running exposure: trails of ~3 frames


def make_long_exposure(seed: int) -> Renderer:
    state: dict[str, np.ndarray] = {}

    def render(frame: np.ndarray, scene=None) -> np.ndarray:
        prev = state.get("exposure")
        if prev is None or prev.shape != frame.shape:
            prev = frame
        state["exposure"] = (prev * (1 - EXPOSURE_RATE) + frame * EXPOSURE_RATE).astype(np.float32)
        return state["exposure"]

    return render


MEMORY_STYLES = (
    Style("pop_art", "memory", ("pop art", "波普艺术", "Warhol pop art", "bold pop-art poster"),
          "four flat colour bands plus outlines; the four colours are drawn per stream at "
          "frame 0 and kept forever", make_pop_art, consistency="palette"),
    Style("star_glitter", "memory", ("glitter stars", "星光闪闪", "sparkling stars", "starry glitter"),
          "a night grade with stars sprinkled at frame 0 that stay glued to the background",
          StarGlitter, consistency="decorations", needs_scene=True,
          not_learnt="draws a night grade but no stars: a 128-px model with 16-px tokens does "
                     "not carry sub-token stars that move with the picture (docs/journal.md)"),
    Style("long_exposure", "memory", ("long exposure", "长曝光", "motion trails",
                                      "long-exposure photo"),
          "a running exposure: moving things leave trails", make_long_exposure,
          consistency="psnr"),
)
