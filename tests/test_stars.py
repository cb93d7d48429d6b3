"""bench.stars: whether a star_glitter stream kept the stars its frame 0 showed."""

import numpy as np

from lsd.bench.stars import followed, star_points, stars_kept
from lsd.data import VAL_SEED_START, World, paired_stream, world_config
from lsd.io import to_uint8
from lsd.styles.memory import StarField, StarGlitter

SEED, FRAMES = VAL_SEED_START + 109, 150


def test_star_points_are_the_stars_centres():
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[...] = (20, 30, 90)
    frame[4:7, 10:13] = (255, 240, 200)  # a 3x3 star centred at (11, 5)
    frame[20, 25] = (255, 240, 200)
    x, y = star_points(frame)
    assert sorted(zip(x.tolist(), y.tolist())) == [(11.0, 5.0), (25.0, 20.0)]


def test_the_targets_keep_their_stars_and_nothing_else_passes_for_them():
    stream = list(paired_stream(SEED, "star_glitter", frames=FRAMES))
    first, last = stream[0].target, stream[-1].target
    kept = stars_kept({"": (first, last)}, SEED, FRAMES)
    assert kept["stars_first"] > 10 and kept["stars_last"] > 5
    assert kept["stars_kept_f1"] > 0.8
    other = list(paired_stream(SEED + 1, "star_glitter", frames=FRAMES))[-1].target
    assert stars_kept({"": (first, other)}, SEED, FRAMES)["stars_kept_f1"] < 0.2  # another stream's
    night = to_uint8(StarGlitter.night(stream[0].input / 255.0))
    assert stars_kept({"": (night, last)}, SEED, FRAMES)["stars_kept_f1"] == 0.0  # none drawn: none kept
    # frame 0's stars moved off as if glued elsewhere: not kept
    shifted = np.roll(last, 9, axis=1)
    assert stars_kept({"": (first, shifted)}, SEED, FRAMES)["stars_kept_f1"] < 0.3


def test_followed_stars_move_with_the_background_and_stay_in_view():
    stream = list(paired_stream(SEED, "star_glitter", frames=FRAMES))
    [(_, x, y)], shown = followed([stream[0].target], SEED, FRAMES)
    world = World(SEED, world_config(128))
    stars = StarField(*star_points(stream[0].target))
    for t in range(FRAMES):
        scene = world.frame(t)
        screen = stars.follow(scene)
    assert len(x) > 0 and set(zip(x, y)) <= set(zip(screen[0], screen[1]))
    assert (scene.background_visible[np.round(y).astype(int), np.round(x).astype(int)] >= 0.5).all()
    assert shown[np.round(y).astype(int), np.round(x).astype(int)].all()  # seen at frame 0
    assert 0 < shown.mean() < 1 and not shown[scene.background_visible < 0.5].any()
