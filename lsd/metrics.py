"""Video quality metrics on numpy frames.

Frames are HxWx3 (or HxW) arrays, uint8 or float, in the 0-255 range; every
function converts to float64 first so uint8 arithmetic never wraps around.
Fidelity (psnr, ssim), temporal consistency (warp_error, flicker), style
consistency (palette_distance, picked_share, main_colours) and small-detail survival
(decoration_f1).
"""

import math

import numpy as np
from scipy import ndimage

PEAK = 255.0  # white in 0-255 frames

# SSIM constants from Wang et al. 2004
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11-tap window, the paper's choice

# Rec.601 luma weights, what "brightness" means for flicker and decorations
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

PALETTE_MAX_SAMPLES = 4096  # k-means on a strided subsample keeps palette() fast
PALETTE_SEED = 0  # fixed seed: the same frame always gives the same palette


def _as_float(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame, dtype=np.float64)


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")


def _luminance(frame: np.ndarray) -> np.ndarray:
    """HxW luminance; greyscale frames are already luminance."""
    x = _as_float(frame)
    if x.ndim == 3 and x.shape[-1] == 3:
        return x @ LUMA_WEIGHTS
    if x.ndim == 3 and x.shape[-1] == 1:
        return x[..., 0]
    if x.ndim == 2:
        return x
    raise ValueError(f"expected HxW or HxWx3 frame, got shape {x.shape}")


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    """HxWx3 float frame; greyscale is replicated so colour code paths work on it."""
    x = _as_float(frame)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"expected HxW or HxWx3 frame, got shape {x.shape}")
    return x


# -----------------------------------------------------------------------------
# per-frame fidelity


def psnr(a: np.ndarray, b: np.ndarray, peak: float = PEAK) -> float:
    """Peak signal-to-noise ratio in dB; inf when the frames are identical."""
    a, b = _as_float(a), _as_float(b)
    _check_same_shape(a, b)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, peak: float = PEAK) -> float:
    """Gaussian-window SSIM (Wang et al.), averaged over the valid area and channels.

    Matches skimage's structural_similarity with gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False: population statistics, border of SSIM_RADIUS cropped.
    """
    a, b = _as_float(a), _as_float(b)
    _check_same_shape(a, b)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if min(a.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"frames must be at least {2 * SSIM_RADIUS + 1} px on each side")

    sigma = (SSIM_SIGMA, SSIM_SIGMA, 0.0)  # never blur across channels
    truncate = SSIM_RADIUS / SSIM_SIGMA  # scipy's window radius = int(truncate*sigma + 0.5)

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=sigma, truncate=truncate, mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b

    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    r = SSIM_RADIUS  # the border sees the padding, so it is left out
    return float(s[r:-r, r:-r].mean())


# -----------------------------------------------------------------------------
# temporal consistency


def warp(frame: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward bilinear warp: warped[y, x] = frame[y + flow[y,x,1], x + flow[y,x,0]].

    Returns (warped float64 frame, inside mask). Samples falling outside the frame
    are clamped to the edge and flagged False in `inside` so callers can drop them.
    """
    x = _as_float(frame)
    flow = np.asarray(flow, dtype=np.float64)
    h, w = x.shape[:2]
    if flow.shape != (h, w, 2):
        raise ValueError(f"flow must be {(h, w, 2)}, got {flow.shape}")

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = xs + flow[..., 0]
    sy = ys + flow[..., 1]
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    sx = np.clip(sx, 0, w - 1)
    sy = np.clip(sy, 0, h - 1)

    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    wx = sx - x0
    wy = sy - y0
    if x.ndim == 3:  # broadcast the weights over channels
        wx, wy = wx[..., None], wy[..., None]

    top = x[y0, x0] * (1 - wx) + x[y0, x1] * wx
    bottom = x[y1, x0] * (1 - wx) + x[y1, x1] * wx
    return top * (1 - wy) + bottom * wy, inside


def warp_error(
    frame_t: np.ndarray,
    frame_next: np.ndarray,
    flow: np.ndarray,
    occluded: np.ndarray | None = None,
) -> float:
    """Mean |frame_next(p + flow(p)) - frame_t(p)| over pixels with a correspondence.

    `flow` is the forward flow t -> t+1. Occluded pixels and samples that leave the
    frame are skipped; nan when nothing is left to compare.
    """
    a = _as_float(frame_t)
    _check_same_shape(a, _as_float(frame_next))
    warped, valid = warp(frame_next, flow)
    if occluded is not None:
        valid = valid & ~np.asarray(occluded, dtype=bool)
    if not valid.any():
        return math.nan
    err = np.abs(warped - a)
    if err.ndim == 3:
        err = err.mean(axis=-1)
    return float(err[valid].mean())


def warp_error_sequence(
    frames: list[np.ndarray] | np.ndarray,
    flows: list[np.ndarray] | np.ndarray,
    occluded: list[np.ndarray] | np.ndarray | None = None,
) -> float:
    """Mean warp_error over consecutive pairs; flows[i] (and occluded[i]) map i -> i+1."""
    n_pairs = len(frames) - 1
    if len(flows) < n_pairs:
        raise ValueError(f"need {n_pairs} flows for {len(frames)} frames, got {len(flows)}")
    errors = []
    for i in range(n_pairs):
        occ = None if occluded is None else occluded[i]
        e = warp_error(frames[i], frames[i + 1], flows[i], occ)
        if not math.isnan(e):
            errors.append(e)
    return float(np.mean(errors)) if errors else math.nan


def _block_edges(n: int, blocks: int) -> np.ndarray:
    """Start indices of `blocks` near-equal, non-empty runs covering range(n)."""
    blocks = min(blocks, n)  # a frame smaller than the grid uses its own pixels
    return np.linspace(0, n, blocks + 1).round().astype(np.int64)[:-1]


def flicker(frames: list[np.ndarray] | np.ndarray, grid: int = 8) -> float:
    """Mean |B[t+1] - 2B[t] + B[t-1]| of grid x grid block-mean luminance.

    The second difference ignores steady motion and slow fades (a linear ramp
    scores 0) and catches brightness that jumps back and forth between frames.
    """
    if len(frames) < 3:
        raise ValueError("flicker needs at least 3 frames")
    lum = np.stack([_luminance(f) for f in frames])  # T, H, W
    _, h, w = lum.shape
    rows, cols = _block_edges(h, grid), _block_edges(w, grid)
    sums = np.add.reduceat(np.add.reduceat(lum, rows, axis=1), cols, axis=2)
    counts = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))
    blocks = sums / counts
    return float(np.abs(np.diff(blocks, n=2, axis=0)).mean())


# -----------------------------------------------------------------------------
# style consistency


def _sq_dists(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """N x K squared Euclidean distances."""
    return ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)


def palette(frame: np.ndarray, k: int = 8, iters: int = 10) -> np.ndarray:
    """Deterministic k-means colour palette, (k', 3) with k' <= k (empty clusters dropped).

    k-means++ init with a fixed seed; it stops early when every sampled pixel
    already coincides with a centre, so a 3-colour frame yields exactly 3 colours.
    """
    pixels = _as_rgb(frame).reshape(-1, 3)
    stride = max(1, math.ceil(len(pixels) / PALETTE_MAX_SAMPLES))
    x = pixels[::stride]

    rng = np.random.default_rng(PALETTE_SEED)
    centres = [x[rng.integers(len(x))]]
    d2 = _sq_dists(x, np.array(centres))[:, 0]
    while len(centres) < k:
        total = d2.sum()
        if total == 0:  # fewer distinct colours than k
            break
        c = x[rng.choice(len(x), p=d2 / total)]
        centres.append(c)
        d2 = np.minimum(d2, ((x - c) ** 2).sum(axis=-1))
    centres = np.array(centres)

    for _ in range(iters):
        label = _sq_dists(x, centres).argmin(axis=1)
        counts = np.bincount(label, minlength=len(centres))
        sums = np.zeros_like(centres)
        np.add.at(sums, label, x)
        keep = counts > 0
        new = sums[keep] / counts[keep, None]
        if new.shape == centres.shape and np.allclose(new, centres):
            centres = new
            break
        centres = new
    return centres


def _mean_nearest(pixels: np.ndarray, colours: np.ndarray) -> float:
    return float(np.sqrt(_sq_dists(pixels, colours).min(axis=1)).mean())


def palette_distance(a: np.ndarray, b: np.ndarray, k: int = 8) -> float:
    """Symmetric mean distance (RGB 0-255) from each frame's pixels to the other's palette.

    Low when both frames draw from the same colours, whatever their layout.
    """
    pa, pb = _as_rgb(a).reshape(-1, 3), _as_rgb(b).reshape(-1, 3)
    return 0.5 * (_mean_nearest(pa, palette(b, k)) + _mean_nearest(pb, palette(a, k)))


def _nearest_option(frame: np.ndarray, options: np.ndarray) -> np.ndarray:
    """Each pixel's nearest of `options` (K x 3, RGB 0-255), as an index, flattened."""
    return _sq_dists(_as_rgb(frame).reshape(-1, 3), _as_float(options)).argmin(axis=1)


def picked_share(frame: np.ndarray, options: np.ndarray, picked) -> float:
    """Share of a frame's pixels whose nearest colour among `options` (K x 3, RGB 0-255) is
    one of the `picked` indices: how much of the frame is drawn in the colours a stream
    picked from a known set, whatever the layout and however mottled."""
    return float(np.isin(_nearest_option(frame, options), picked).mean())


def main_colours(frame: np.ndarray, options: np.ndarray, n: int, among) -> set[int]:
    """The (up to) `n` of the `among` indices that most of a frame's pixels are nearest to (among
    all `options`, K x 3, RGB 0-255): which colours a frame is drawn in, read back as a
    choice, so that two frames' choices can be compared whatever their content."""
    among = np.asarray(among)
    counts = np.bincount(_nearest_option(frame, options), minlength=len(options))[among]
    order = np.argsort(-counts, kind="stable")[:n]
    return set(among[order[counts[order] > 0]].tolist())  # a colour no pixel is near is not one


# -----------------------------------------------------------------------------
# small bright details


def tophat(channel: np.ndarray, radius: int) -> np.ndarray:
    """How far each pixel of (..., H, W) rises above its surroundings: opening with a (2r+1)
    square removes spots narrower than that, so the channel minus its opening is high
    exactly on such spots."""
    size = (1,) * (channel.ndim - 2) + (2 * radius + 1,) * 2  # each image on its own
    return channel - ndimage.grey_opening(channel, size=size)


DETAIL_RADIUS, DETAIL_FULL = 2, 40.0  # a spot this narrow (px) and this much brighter (0-255)
# than what is around it counts fully as a small detail (the luminance top-hat)


def small_details(frames: np.ndarray) -> np.ndarray:
    """(..., H, W) in [0, 1]: how much each pixel of (..., H, W, 3) frames (0-255) is a small
    bright detail (a star, a thin bright line) rather than part of a larger area. A loss
    averaged over a frame hardly sees a few such pixels; weighing them brings them back."""
    rise = tophat(np.asarray(frames, np.float32) @ LUMA_WEIGHTS.astype(np.float32), DETAIL_RADIUS)
    return np.clip(rise / DETAIL_FULL, 0, 1)


def decoration_mask(frame: np.ndarray, radius: int = 2, threshold: float = 40.0,
                    warmer: float | None = None) -> np.ndarray:
    """Small bright decorations: luminance white top-hat above `threshold`. With `warmer`,
    a spot must also rise that much above its surroundings in red minus blue: decorations
    warmer than their picture (star_glitter's warm-white stars on a blue night), which
    the picture's own bright details, bluer the brighter they are, never are."""
    mask = tophat(_luminance(frame), radius) > threshold
    if warmer is not None:
        rgb = _as_rgb(frame)
        mask &= tophat(rgb[..., 0] - rgb[..., 2], radius) > warmer
    return mask


def decoration_f1(
    output: np.ndarray,
    target: np.ndarray,
    tolerance: int = 1,
    radius: int = 2,
    threshold: float = 40.0,
    warmer: float | None = None,
) -> float:
    """F1 of output decorations against target ones (decoration_mask), allowing
    `tolerance` px misplacement."""
    pred = decoration_mask(output, radius, threshold, warmer)
    true = decoration_mask(target, radius, threshold, warmer)
    if not pred.any() and not true.any():
        return 1.0
    if not pred.any() or not true.any():
        return 0.0
    if tolerance > 0:
        square = np.ones((2 * tolerance + 1, 2 * tolerance + 1), dtype=bool)
        true_near = ndimage.binary_dilation(true, structure=square)
        pred_near = ndimage.binary_dilation(pred, structure=square)
    else:
        true_near, pred_near = true, pred
    precision = (pred & true_near).sum() / pred.sum()
    recall = (true & pred_near).sum() / true.sum()
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))
