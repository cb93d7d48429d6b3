"""Small image operations the styles are made of. Images are float32 (H, W, 3) in [0, 1].

Filter sizes are given for a 128-pixel short side and scaled with the frame, so a style
looks the same at any resolution. Every op is local and isotropic (or pointwise), so a
style built from them moves with the scene: its output obeys the scene's optical flow.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

REFERENCE_SIDE = 128
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def scale(img: np.ndarray) -> float:
    return min(img.shape[:2]) / REFERENCE_SIDE


def luminance(img: np.ndarray) -> np.ndarray:
    return img @ LUMA


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; sigma in pixels at 128 px, scaled to the frame."""
    s = sigma * scale(img)
    sigmas = (s, s, 0) if img.ndim == 3 else s
    return ndimage.gaussian_filter(img, sigmas, mode="nearest")


def edges(grey: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gradient magnitude of a smoothed grey image, about 1 on a hard black/white edge."""
    g = blur(grey, sigma)
    s = scale(grey)
    gx, gy = ndimage.sobel(g, 1, mode="nearest"), ndimage.sobel(g, 0, mode="nearest")
    # a unit step blurred with sigma has peak slope 1/(sigma*sqrt(2 pi)); sobel sums 8 of it
    return np.hypot(gx, gy) * (sigma * s * np.sqrt(2 * np.pi) / 8)


def soft_steps(x: np.ndarray, levels: int, sharpness: float = 8.0) -> np.ndarray:
    """Posterise [0, 1] into `levels` flat bands with smooth (not hard) transitions, so a
    pixel moving across a band edge changes gradually: no flicker from quantisation."""
    y = x * (levels - 1)
    base = np.floor(y)
    frac = y - base
    smooth = 1 / (1 + np.exp(-sharpness * (frac - 0.5)))
    return np.clip((base + smooth) / (levels - 1), 0.0, 1.0)


def gradient_map(value: np.ndarray, colours) -> np.ndarray:
    """Map a [0, 1] field through evenly spaced colour stops (piecewise linear)."""
    colours = np.asarray(colours, np.float32)
    stops = np.linspace(0.0, 1.0, len(colours))
    return np.stack([np.interp(value, stops, colours[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def mix(a: np.ndarray, b, weight: np.ndarray) -> np.ndarray:
    """a where weight is 0, b where it is 1; weight is (H, W)."""
    w = weight[..., None]
    return (a * (1 - w) + np.asarray(b, np.float32) * w).astype(np.float32)


def soft_palette(img: np.ndarray, palette: np.ndarray, temperature: float = 0.004) -> np.ndarray:
    """Snap every pixel to the nearest palette colour, softly (softmax over squared
    distances) so that the mapping stays continuous."""
    d = (img**2).sum(-1, keepdims=True) - 2 * img @ palette.T + (palette**2).sum(-1)
    w = np.exp(-(d - d.min(-1, keepdims=True)) / np.float32(temperature))
    w /= w.sum(-1, keepdims=True)
    return (w @ palette).astype(np.float32)
