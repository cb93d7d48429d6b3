"""Did a `star_glitter` stream keep its stars? The stars a model drew on frame 0, followed
through the world to the last frame as the style glues its own (styles.memory.StarField),
against the stars the last frame shows. The model picks its own stars at frame 0 (it is
not told the target's), so this, not F1 against the target, says whether it kept them."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data import World, world_config
from ..metrics import decoration_mask
from ..styles.memory import STAR_SPOT, StarField

STAR_TOLERANCE = 2.0  # px: a star this near where one was expected is that star
SEEN = 0.5  # a star counts as in view where at least this much background shows


def star_points(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) centres of a frame's stars (STAR_SPOT's warm bright spots), in pixels."""
    mask = decoration_mask(frame, **STAR_SPOT)
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    y, x = np.array(ndimage.center_of_mass(mask, labels, range(1, n + 1))).T
    return x, y


def in_view(scene, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which screen points are in the frame and on background in view (not behind a sprite)."""
    h, w = scene.background_visible.shape
    inside = (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)
    seen = np.zeros(len(x), bool)
    seen[inside] = scene.background_visible[np.round(y[inside]).astype(int),
                                            np.round(x[inside]).astype(int)] >= SEEN
    return seen


def followed(firsts: list[np.ndarray], seed: int, frames: int):
    """Each first frame's star count and its stars (x, y) where they must be on frame
    `frames - 1` of world `seed` if kept (those in view), and a mask of that frame's pixels whose background was
    in view at frame 0: the stars a model may add elsewhere (on background a sprite hid) are
    its own. The world is walked once for all of them."""
    h, w = firsts[0].shape[:2]
    world = World(seed, world_config((h, w)))
    scene = world.frame(0)
    gy, gx = np.mgrid[0:h, 0:w].reshape(2, -1).astype(float)
    keep = in_view(scene, gx, gy)
    ground = StarField(gx[keep], gy[keep])
    fields = [StarField(*star_points(first)) for first in firsts]
    for t in range(frames):
        scene = world.frame(t)
        for field in (ground, *fields):
            field.follow(scene)
    gx, gy = ground.screen[:2]
    seen = in_view(scene, gx, gy)
    mask = np.zeros((h, w), bool)
    mask[np.round(gy[seen]).astype(int), np.round(gx[seen]).astype(int)] = True
    # a zoom spreads the followed pixels apart: close the gaps, no further than a star may be off
    r = int(np.ceil(STAR_TOLERANCE))
    mask = ndimage.binary_closing(mask, np.ones((2 * r + 1, 2 * r + 1), bool), border_value=1) & \
        (scene.background_visible >= SEEN)
    stars = [(field.screen.shape[1], *field.screen[:2, in_view(scene, *field.screen[:2])])
             for field in fields]
    return stars, mask


def stars_kept(ends: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, frames: int) -> dict:
    """For each named (first, last) pair of frames of world `seed`: F1 of the last frame's
    stars, on background that frame 0 showed, against the first's followed to it (within
    STAR_TOLERANCE px), with how many stars each frame shows; keys prefixed by the name. A
    frame 0 with no stars keeps none: 0; a stream where none is left to find and none is
    found says nothing: None (left out of an average)."""
    stars, shown = followed([first for first, _ in ends.values()], seed, frames)
    return {f"{name}{k}": v for (name, (_, last)), (n, ex, ey) in zip(ends.items(), stars)
            for k, v in kept_score(n, last, ex, ey, shown).items()}


def kept_score(n_first: int, last: np.ndarray, ex: np.ndarray, ey: np.ndarray,
               shown: np.ndarray) -> dict:
    """stars_kept's numbers for one pair: `n_first` stars on the first frame, where they
    must be on the last (ex, ey)."""
    fx, fy = star_points(last)
    # floats, so that streams are averaged (bench.quality.average)
    counts = {"stars_first": float(n_first), "stars_last": float(len(fx))}
    if counts["stars_first"] == 0:
        return {**counts, "stars_kept_f1": 0.0}
    on_shown = shown[np.clip(np.round(fy).astype(int), 0, shown.shape[0] - 1),
                     np.clip(np.round(fx).astype(int), 0, shown.shape[1] - 1)]
    fx, fy = fx[on_shown], fy[on_shown]
    if len(ex) == 0 and len(fx) == 0:
        return {**counts, "stars_kept_f1": None}
    if len(ex) == 0 or len(fx) == 0:
        return {**counts, "stars_kept_f1": 0.0}
    near = np.hypot(ex[:, None] - fx[None, :], ey[:, None] - fy[None, :]) <= STAR_TOLERANCE
    recall, precision = near.any(axis=1).mean(), near.any(axis=0).mean()
    f1 = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    return {**counts, "stars_kept_f1": round(float(f1), 3)}
