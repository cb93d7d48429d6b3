"""Tests for lsd.metrics: every case has an answer known in closed form."""

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from lsd import metrics

H, W = 48, 64


def smooth_image(seed: int, shape: tuple[int, ...] = (H, W, 3)) -> np.ndarray:
    """Random but spatially smooth 0-255 image, like natural-image content."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(3, 3, 0)[: len(shape)])
    x = (x - x.min()) / (x.max() - x.min())
    return 255.0 * x


def ramp_image(dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Linear in (x, y) per channel, moved by (dx, dy): bilinear sampling reproduces it exactly."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    xs, ys = xs - dx, ys - dy
    return np.stack([2.0 * xs + 1.0 * ys, 0.5 * xs + 3.0 * ys, 100.0 + xs - ys], axis=-1)


def constant_flow(dx: float, dy: float) -> np.ndarray:
    flow = np.zeros((H, W, 2))
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def star_frame(points: list[tuple[int, int]], size: int = 3) -> np.ndarray:
    """Dark frame with small white squares (the 'stars') at the given top-left corners."""
    f = np.full((H, W, 3), 20, dtype=np.uint8)
    for y, x in points:
        f[y : y + size, x : x + size] = 255
    return f


STARS = [(5, 5), (10, 30), (30, 50), (40, 12)]

# ----------------------------------------------------------------------------- psnr / ssim


def test_psnr_identical_is_inf():
    f = smooth_image(0).astype(np.uint8)
    assert metrics.psnr(f, f) == math.inf


@pytest.mark.parametrize("c", [1, 5, 17])
def test_psnr_constant_offset(c):
    a = np.random.default_rng(1).integers(0, 200, size=(H, W, 3), dtype=np.uint8)
    b = a + np.uint8(c)  # stays below 255, so no wrap-around
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(255 / c), abs=1e-9)
    assert metrics.psnr(b, a) == pytest.approx(20 * math.log10(255 / c), abs=1e-9)


def test_ssim_identical_is_one():
    f = smooth_image(2)
    assert metrics.ssim(f, f) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_ssim_matches_skimage(seed):
    a = smooth_image(seed)
    b = np.clip(a + np.random.default_rng(seed).normal(0, 20, a.shape), 0, 255)
    ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255, channel_axis=-1,
    )
    assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-3)
    # greyscale and uint8 paths too
    a8, b8 = a[..., 0].astype(np.uint8), b[..., 0].astype(np.uint8)
    ref = structural_similarity(
        a8, b8, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert metrics.ssim(a8, b8) == pytest.approx(ref, abs=1e-3)


def test_ssim_decreases_with_noise():
    a = smooth_image(5)
    rng = np.random.default_rng(5)
    noise = rng.normal(size=a.shape)
    scores = [metrics.ssim(a, a + s * noise) for s in (0, 5, 20, 60)]
    assert all(x > y for x, y in zip(scores, scores[1:]))


# ----------------------------------------------------------------------------- warping


def test_warp_zero_flow_is_identity():
    f = smooth_image(6)
    warped, inside = metrics.warp(f, np.zeros((H, W, 2), dtype=np.float32))
    np.testing.assert_allclose(warped, f)
    assert inside.all()


def test_warp_inside_mask_and_clamp():
    f = ramp_image()
    warped, inside = metrics.warp(f, constant_flow(3.0, 0.0))
    assert inside[:, : W - 3].all() and not inside[:, W - 3 :].any()
    np.testing.assert_allclose(warped[:, W - 1], f[:, W - 1])  # clamped to the edge


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, -3), (3, 1), (-2, -1)])
def test_warp_error_integer_shift_is_zero(dx, dy):
    a = smooth_image(7)
    b = np.roll(a, shift=(dy, dx), axis=(0, 1))  # content at p moves to p + (dx, dy)
    assert metrics.warp_error(a, b, constant_flow(dx, dy)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("dx, dy", [(0.5, 0.0), (1.25, -0.75), (-2.3, 0.4)])
def test_warp_error_fractional_shift_of_ramp_is_zero(dx, dy):
    a, b = ramp_image(), ramp_image(dx, dy)
    assert metrics.warp_error(a, b, constant_flow(dx, dy)) == pytest.approx(0.0, abs=1e-9)


def test_warp_error_wrong_flow_is_large():
    a = smooth_image(8)
    b = np.roll(a, shift=(0, 4), axis=(0, 1))
    right = metrics.warp_error(a, b, constant_flow(4, 0))
    wrong = metrics.warp_error(a, b, constant_flow(-4, 0))
    assert right == pytest.approx(0.0, abs=1e-9)
    assert wrong > 5.0


def test_warp_error_ignores_occluded_pixels():
    a = smooth_image(9)
    b = a.copy()
    occluded = np.zeros((H, W), dtype=bool)
    occluded[10:20, 15:40] = True
    b[occluded] = 255.0 - b[occluded]  # garbage only where there is no correspondence
    flow = np.zeros((H, W, 2))
    assert metrics.warp_error(a, b, flow) > 1.0
    assert metrics.warp_error(a, b, flow, occluded) == 0.0
    assert math.isnan(metrics.warp_error(a, b, flow, np.ones((H, W), dtype=bool)))


def test_warp_error_sequence():
    a = smooth_image(10)
    frames = [np.roll(a, shift=(0, i), axis=(0, 1)) for i in range(4)]
    flows = [constant_flow(1, 0)] * 4  # one extra flow is ignored
    assert metrics.warp_error_sequence(frames, flows) == pytest.approx(0.0, abs=1e-9)
    # pair 1 -> 2 is 10 off everywhere; fully occluded, it is skipped (nan) rather than averaged
    frames[2:] = [f + 10.0 for f in frames[2:]]
    assert metrics.warp_error_sequence(frames, flows) == pytest.approx(10.0 / 3)
    occ = [np.zeros((H, W), bool), np.ones((H, W), bool), np.zeros((H, W), bool)]
    assert metrics.warp_error_sequence(frames, flows, occ) == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- flicker


def test_flicker_constant_and_ramp_are_zero():
    f = smooth_image(11)
    assert metrics.flicker([f] * 5) == 0.0
    ramp = [np.clip(f * 0.5 + 10 * t, 0, 255) for t in range(6)]  # linear fade, no clipping
    assert metrics.flicker(ramp) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("a, b", [(50, 80), (200, 10)])
def test_flicker_alternating(a, b):
    frames = [np.full((H, W, 3), a if t % 2 == 0 else b, dtype=np.uint8) for t in range(7)]
    assert metrics.flicker(frames) == pytest.approx(2 * abs(a - b))


def test_flicker_small_frames_and_greyscale():
    frames = [np.full((5, 3), v, dtype=np.float64) for v in (0, 10, 0, 10)]
    assert metrics.flicker(frames, grid=8) == pytest.approx(20.0)


def test_flicker_needs_three_frames():
    with pytest.raises(ValueError):
        metrics.flicker([np.zeros((H, W, 3))] * 2)


# ----------------------------------------------------------------------------- palette


def three_colour_image() -> np.ndarray:
    colours = np.array([[255, 0, 0], [0, 128, 255], [30, 200, 40]], dtype=np.uint8)
    labels = (np.arange(H * W) * 7 // 5) % 3  # uneven, interleaved layout
    return colours[labels].reshape(H, W, 3), colours


def test_palette_recovers_three_colours():
    img, colours = three_colour_image()
    pal = metrics.palette(img, k=8)
    assert pal.shape == (3, 3)
    got = pal[np.lexsort(pal.T[::-1])]
    want = colours[np.lexsort(colours.T[::-1])].astype(np.float64)
    np.testing.assert_allclose(got, want)


def test_palette_is_deterministic():
    f = smooth_image(12)
    np.testing.assert_array_equal(metrics.palette(f), metrics.palette(f))
    assert metrics.palette(f, k=5).shape[0] <= 5


def test_palette_distance_known_values():
    img, _ = three_colour_image()
    assert metrics.palette_distance(img, img) == pytest.approx(0.0, abs=1e-9)
    red = np.zeros((H, W, 3), dtype=np.uint8)
    red[..., 0] = 255
    blue = np.zeros((H, W, 3), dtype=np.uint8)
    blue[..., 2] = 255
    assert metrics.palette_distance(red, blue) == pytest.approx(255 * math.sqrt(2))


def test_picked_share_counts_pixels_nearest_a_picked_colour():
    options = np.array([[255, 0, 0], [0, 0, 255], [0, 255, 0]])
    frame = np.zeros((4, 4, 3), np.uint8)
    frame[:, :2] = (200, 30, 30)  # nearest red
    frame[:, 2:] = (20, 40, 220)  # nearest blue
    frame[0, 3] = (10, 250, 10)  # nearest green: 1 pixel of 16
    assert metrics.picked_share(frame, options, [0, 1]) == pytest.approx(15 / 16)
    assert metrics.picked_share(frame, options, [0]) == pytest.approx(8 / 16)
    assert metrics.picked_share(frame, options, [2]) == pytest.approx(1 / 16)


def test_main_colours_reads_the_choice_back():
    options = np.array([[255, 0, 0], [0, 0, 255], [0, 255, 0], [0, 0, 0]])
    frame = np.zeros((4, 4, 3), np.uint8)  # 4 px nearest black (index 3)
    frame[1:, :2] = (200, 30, 30)  # 6 px nearest red
    frame[1:, 2:] = (20, 40, 220)  # 6 px nearest blue ...
    frame[3, 3] = (10, 250, 10)  # ... but one of them nearest green
    assert metrics.main_colours(frame, options, 2, range(3)) == {0, 1}  # black not among
    assert metrics.main_colours(frame, options, 1, range(3)) == {0}  # 6 red beat 5 blue
    assert metrics.main_colours(frame, options, 3, range(4)) == {0, 1, 3}
    assert metrics.main_colours(frame, options, 3, [2]) == {2}
    assert metrics.main_colours(frame[1:, :2], options, 3, range(3)) == {0}  # none near: not read


def test_palette_distance_ignores_layout():
    img, _ = three_colour_image()
    shuffled = img.reshape(-1, 3)[np.random.default_rng(0).permutation(H * W)].reshape(H, W, 3)
    assert metrics.palette_distance(img, shuffled) == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- decorations


def test_decoration_mask_finds_stars_only():
    f = star_frame(STARS)
    mask = metrics.decoration_mask(f)
    assert mask.sum() == 9 * len(STARS)
    big = np.full((H, W, 3), 20, dtype=np.uint8)
    big[10:30, 10:30] = 255  # a large bright area is not a decoration
    assert not metrics.decoration_mask(big).any()


def test_warm_decorations_exclude_bright_cool_spots():
    f = np.zeros((H, W, 3), np.uint8)
    f[...] = (30, 50, 120)  # a blue night
    f[5:8, 5:8] = (255, 245, 200)  # a warm-white star
    f[20:23, 20:23] = (160, 190, 255)  # a bright blue detail
    plain = metrics.decoration_mask(f)
    warm = metrics.decoration_mask(f, warmer=20.0)
    assert plain[5:8, 5:8].all() and plain[20:23, 20:23].all()
    assert warm[5:8, 5:8].all() and warm.sum() == 9


def test_decoration_f1_cases():
    stars = star_frame(STARS)
    shifted = star_frame([(y + 1, x - 1) for y, x in STARS])
    far = star_frame([(y + 2, x + 8) for y, x in STARS[:2]] + [(20, 20)])
    empty = star_frame([])
    assert metrics.decoration_f1(stars, stars) == 1.0
    assert metrics.decoration_f1(shifted, stars, tolerance=1) == 1.0
    assert metrics.decoration_f1(shifted, stars, tolerance=0) < 1.0
    assert metrics.decoration_f1(far, stars) == pytest.approx(0.0, abs=1e-9)
    assert metrics.decoration_f1(empty, empty) == 1.0
    assert metrics.decoration_f1(empty, stars) == 0.0
    assert metrics.decoration_f1(stars, empty) == 0.0


def test_small_details_are_narrow_bright_spots_only():
    frame = np.full((1, 24, 24, 3), 40, np.uint8)
    frame[0, 3:5, 3:5] = 200  # a star
    frame[0, 10:22, 10:22] = 220  # a large bright area
    frame[0, 6, 12:20] = 120  # a thin line, 80 brighter than around it
    d = metrics.small_details(frame)[0]
    assert d.shape == (24, 24) and d[3:5, 3:5].min() == 1.0 and d[6, 13:19].min() == 1.0
    assert d[11:21, 11:21].max() == 0.0 and d[0, 20] == 0.0  # inside a large area, or flat
