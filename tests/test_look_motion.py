"""The look memory follows the camera: Lucas-Kanade finds a known shift of the input, the
last look is moved by it, and the memory is forgotten where the input changed."""

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from lsd.stream.look_motion import backward_flow, followed, moved


def smooth_picture(seed: int, size: int = 96) -> np.ndarray:
    noise = np.random.default_rng(seed).random((size, size))
    picture = ndimage.gaussian_filter(noise, 3)
    return (picture - picture.min()) / (picture.max() - picture.min())


def as_grey(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(picture.astype(np.float32))[None, None]


def panned(picture: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The picture's content moved by (dx, dy) px, cropped to its centre 64x64."""
    moved_picture = ndimage.shift(picture, (dy, dx), order=3, mode="nearest")
    return moved_picture[16:80, 16:80]


def test_lucas_kanade_finds_a_sub_pixel_pan():
    picture = smooth_picture(0)
    for dx, dy in [(2.5, -1.5), (-4.0, 3.0), (0.3, 0.0)]:
        before, now = as_grey(panned(picture, 0, 0)), as_grey(panned(picture, dx, dy))
        flow = backward_flow(before, now)[0, :, 8:-8, 8:-8]  # away from the borders
        # now(p) = before(p - d): each pixel of now was d behind in before
        assert abs(flow[0].median() + dx) < 0.25, (dx, dy, flow[0].median())
        assert abs(flow[1].median() + dy) < 0.25, (dx, dy, flow[1].median())


def test_a_still_camera_keeps_the_whole_memory_in_place():
    grey = as_grey(smooth_picture(1)[:64, :64])
    last = torch.rand(1, 3, 32, 32)
    moved_last, keep = followed(last, grey, grey)
    assert torch.allclose(moved_last, last, atol=1e-4)
    assert keep.min() > 0.99


def test_the_memory_follows_a_pan_and_forgets_a_cut():
    picture = smooth_picture(2)
    before, now = as_grey(panned(picture, 0, 0)), as_grey(panned(picture, 4, 2))
    # the look is the input's own picture at 32 px, in colour: it moves with the input
    look = lambda grey: F.interpolate(grey, size=(32, 32), mode="area").expand(1, 3, 32, 32)
    moved_last, keep = followed(look(before), before, now)
    inner = (..., slice(4, -4), slice(4, -4))
    error_followed = (moved_last - look(now))[inner].abs().mean()
    error_kept = (look(before) - look(now))[inner].abs().mean()
    assert error_followed < 0.3 * error_kept
    assert keep[inner].mean() > 0.8

    cut = as_grey(smooth_picture(3)[:64, :64])
    _, keep_cut = followed(look(before), before, cut)
    assert keep_cut.mean() < 0.5 * keep[inner].mean()


def test_moved_by_zero_is_the_image_and_by_a_pixel_is_the_neighbour():
    image = torch.rand(1, 3, 8, 10)
    assert torch.allclose(moved(image, torch.zeros(1, 2, 8, 10)), image, atol=1e-6)
    right = moved(image, torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 8, 10))
    assert torch.allclose(right[..., :-1], image[..., 1:], atol=1e-5)
