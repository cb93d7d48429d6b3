"""Frame styles: the target is a function of the current frame alone."""

from __future__ import annotations

import numpy as np

from .base import frame_style
from .ops import blur, edges, gradient_map, luminance, mix, soft_palette, soft_steps

PAPER = (0.96, 0.94, 0.88)
INK = (0.07, 0.07, 0.09)


@frame_style("ink_wash", ("ink-wash painting", "水墨画", "sumi-e ink painting",
                          "Chinese ink wash", "black ink on rice paper"),
             "grey washes in a few tones with dark brush edges on warm paper")
def ink_wash(x: np.ndarray) -> np.ndarray:
    grey = luminance(blur(x, 1.0))
    tone = soft_steps(np.clip((grey - 0.15) / 0.7, 0, 1), 3, 8.0)  # ink, wash, paper
    ink = np.clip(0.9 * (1 - tone) ** 1.2 + 2.0 * edges(grey, 1.0), 0, 1)
    return blur(mix(np.broadcast_to(np.float32(PAPER), x.shape), INK, ink), 0.6)


INFERNO = ((0.0, 0.0, 0.02), (0.26, 0.04, 0.41), (0.58, 0.15, 0.4),
           (0.87, 0.32, 0.23), (0.98, 0.64, 0.04), (0.99, 1.0, 0.64))


@frame_style("thermal", ("thermal camera", "热成像", "infrared heat vision",
                         "FLIR thermal image", "heat map"),
             "blurred brightness through an inferno heat palette")
def thermal(x: np.ndarray) -> np.ndarray:
    heat = np.clip(luminance(blur(x, 1.5)) * 1.1, 0, 1) ** 0.9
    return gradient_map(heat, INFERNO)


@frame_style("pencil_sketch", ("pencil sketch", "铅笔素描", "graphite drawing",
                               "hand-drawn sketch"),
             "graphite strokes along edges with light tonal shading on paper")
def pencil_sketch(x: np.ndarray) -> np.ndarray:
    grey = luminance(x)
    lines = np.clip(2.5 * edges(grey, 0.8) - 0.05, 0, 1)  # graphite strokes along edges
    shade = 0.55 + 0.45 * soft_steps(blur(grey, 1.5), 4, 6.0)  # light tonal shading
    return gradient_map(shade * (1 - 0.85 * lines), ((0.15, 0.15, 0.17), (0.95, 0.95, 0.92)))


RETRO_PALETTE = np.array([  # a 16-colour 8-bit console palette
    (0, 0, 0), (29, 43, 83), (126, 37, 83), (0, 135, 81), (171, 82, 54), (95, 87, 79),
    (194, 195, 199), (255, 241, 232), (255, 0, 77), (255, 163, 0), (255, 236, 39),
    (0, 228, 54), (41, 173, 255), (131, 118, 156), (255, 119, 168), (255, 204, 170),
], np.float32) / 255


@frame_style("retro_palette", ("8-bit retro palette", "像素风配色", "retro game colours",
                               "pixel-art colours", "16-colour console look"),
             "colours snapped to a 16-colour console palette, with dark outlines")
def retro_palette(x: np.ndarray) -> np.ndarray:
    snapped = soft_palette(blur(x, 0.7), RETRO_PALETTE)
    outline = np.clip(2.5 * edges(luminance(x), 1.0) - 0.3, 0, 1)
    return mix(snapped, RETRO_PALETTE[1], outline)


@frame_style("cartoon", ("cartoon", "卡通", "cel-shaded animation", "comic book colours",
                         "animated cartoon"),
             "smoothed, posterised saturated colours with black ink outlines")
def cartoon(x: np.ndarray) -> np.ndarray:
    smooth = blur(x, 1.5)
    grey = luminance(smooth)[..., None]
    vivid = np.clip(grey + 2.0 * (smooth - grey), 0, 1)  # boost saturation
    flat = soft_steps(vivid, 3, 12.0)
    outline = np.clip(4.0 * edges(luminance(x), 1.2) - 0.3, 0, 1)
    return mix(flat, (0.05, 0.05, 0.05), outline)


NEON_BASE = ((0.02, 0.0, 0.06), (0.25, 0.02, 0.35), (0.85, 0.1, 0.6), (0.2, 0.95, 1.0))


@frame_style("cyberpunk_neon", ("cyberpunk neon", "赛博朋克霓虹", "neon city at night",
                                "synthwave neon glow"),
             "dark purple-magenta-cyan grade with glowing neon edges")
def cyberpunk_neon(x: np.ndarray) -> np.ndarray:
    grey = luminance(x)
    base = gradient_map(np.clip(grey, 0, 1) ** 1.4, NEON_BASE)
    e = edges(grey, 0.8)
    glow = np.clip(3.0 * blur(e, 2.0), 0, 1)
    lit = mix(base, (1.0, 0.2, 0.9), 0.7 * glow)
    return mix(lit, (0.6, 1.0, 1.0), np.clip(2.5 * e - 0.2, 0, 1))


PHOSPHOR = ((0.0, 0.03, 0.0), (0.1, 0.55, 0.12), (0.55, 1.0, 0.55), (0.9, 1.0, 0.9))


@frame_style("night_vision", ("night vision", "夜视仪", "night-vision goggles",
                              "green night scope"),
             "amplified brightness in green phosphor")
def night_vision(x: np.ndarray) -> np.ndarray:
    gain = np.clip(1.6 * luminance(blur(x, 0.8)), 0, 1) ** 0.7
    return gradient_map(gain, PHOSPHOR)


SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]],
                 np.float32)


@frame_style("sepia", ("sepia photo", "老照片", "old photograph", "vintage sepia",
                       "antique photo"),
             "sepia tone, faded contrast and slight softness of an old print")
def sepia(x: np.ndarray) -> np.ndarray:
    toned = np.clip(blur(x, 0.6) @ SEPIA.T, 0, 1)
    return (0.08 + 0.82 * toned).astype(np.float32)


FRAME_STYLES = (ink_wash, thermal, pencil_sketch, retro_palette, cartoon, cyberpunk_neon,
                night_vision, sepia)
